// Package scenario generates labelled authentication histories for the
// scorer: attacks (push fatigue, spray across users with history and
// across dormant accounts, impossible travel) and a benign population
// (commutes, flights at airliner speed, mobile-carrier IP jumps, VPN use,
// a class of new hires signing in for the first time through one office
// NAT). Everything is deterministic for a seed.
package scenario

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/pushbackhq/pushback/pkg/geo"
	"github.com/pushbackhq/pushback/services/scoring"
)

// Event is one observation for one user, with its label.
type Event struct {
	User string
	Obs  scoring.Observation
	// Attack names the attack the event belongs to ("" when benign).
	Attack string
	// Push numbers the attack's pushes from 1 (0 for other events).
	Push int
}

// City is a place users live in or travel to.
type City struct {
	Name     string
	Country  string
	Lat, Lon float64
	// ISP and Carrier are the home broadband and mobile networks.
	ISP, Carrier uint32
}

// Cities the population lives in and flies between.
var Cities = []City{
	{"New York", "US", 40.7128, -74.0060, 7922, 21928},
	{"Los Angeles", "US", 34.0522, -118.2437, 7018, 21928},
	{"Chicago", "US", 41.8781, -87.6298, 7922, 22394},
	{"Dallas", "US", 32.7767, -96.7970, 7018, 22394},
	{"Seattle", "US", 47.6062, -122.3321, 7922, 21928},
	{"Toronto", "CA", 43.6532, -79.3832, 812, 577},
	{"Mexico City", "MX", 19.4326, -99.1332, 8151, 28403},
	{"São Paulo", "BR", -23.5505, -46.6333, 28573, 26599},
	{"London", "GB", 51.5074, -0.1278, 2856, 12576},
	{"Paris", "FR", 48.8566, 2.3522, 3215, 51207},
	{"Berlin", "DE", 52.5200, 13.4050, 3320, 3209},
	{"Madrid", "ES", 40.4168, -3.7038, 3352, 12430},
	{"Stockholm", "SE", 59.3293, 18.0686, 3301, 1257},
	{"Warsaw", "PL", 52.2297, 21.0122, 5617, 12912},
	{"Dubai", "AE", 25.2048, 55.2708, 5384, 15802},
	{"Mumbai", "IN", 19.0760, 72.8777, 9829, 55836},
	{"Bangalore", "IN", 12.9716, 77.5946, 24560, 55836},
	{"Singapore", "SG", 1.3521, 103.8198, 7473, 4773},
	{"Tokyo", "JP", 35.6762, 139.6503, 2516, 9605},
	{"Sydney", "AU", -33.8688, 151.2093, 1221, 4804},
	{"Auckland", "NZ", -36.8485, 174.7633, 9500, 9790},
	{"Johannesburg", "ZA", -26.2041, 28.0473, 3741, 37457},
}

// VPN exits: a commercial VPN on a hosting network.
var vpnExits = []struct {
	City City
	ASN  uint32
	Org  string
}{
	{Cities[8], 9009, "M247 Europe SRL"},
	{Cities[9], 9009, "M247 Europe SRL"},
	{Cities[10], 60068, "Datacamp Limited"},
	{Cities[0], 9009, "M247 Ltd"},
}

// Benign describes the benign population.
type Benign struct {
	Users int
	Days  int
	Start time.Time
	Seed  uint64
	// Shares of users with each habit.
	Commuters, Travellers, VPNUsers, Mobile float64
	// FlightsPerTravellerDay is the chance a traveller flies on a given day.
	FlightsPerTravellerDay float64
	// NewHires start on the first day at the head office (HQ): accounts
	// with no history, each enrolling a phone and signing in for the first
	// time through the office's one NAT address, arriving over
	// HireArrivals from 08:30 local time. From the second day they live as
	// the rest of the population does, with HQ as their office. They draw
	// from their own random stream, so adding them leaves every other
	// user's history as it was.
	NewHires     int
	HireArrivals time.Duration
}

// HQ is the head office new hires start at, and HQNAT the one address its
// network reaches the identity provider from.
var (
	HQ    = Cities[0]
	HQNAT = scoring.ClientInfo{IP: "172.16.200.1", ASN: 64512, Lat: 40.7506, Lon: -73.9935, AccuracyKm: 5, HasGeo: true, Country: "US", City: "New York"}
)

// DefaultBenign is the population the tests run: 10,000 users for a week,
// and a class of 60 new hires who start at HQ on the Monday morning.
func DefaultBenign() Benign {
	return Benign{Users: 10000, Days: 7, Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), Seed: 1,
		Commuters: 0.6, Travellers: 0.1, VPNUsers: 0.1, Mobile: 0.5, FlightsPerTravellerDay: 0.25,
		NewHires: 60, HireArrivals: 90 * time.Minute}
}

type person struct {
	id                     string
	home                   City
	homeIP, officeIP       string
	officeLat, officeLon   float64
	laptop, phone          string
	commuter, traveller    bool
	vpn, mobile            bool
	at                     City      // where the person is today
	free                   time.Time // no login before (in the air)
	carrierLat, carrierLon float64
	// hire starts on the first day; novice until the first approved push
	// (new to the authenticator app: slower, and more often too late).
	hire, novice bool
}

// Generate returns the benign population's events in time order.
func (b Benign) Generate() []Event {
	// r is the stream of the person being generated: main for the
	// population, hires for the new hires.
	main, hires := rand.New(rand.NewPCG(b.Seed, 0x5eed)), rand.New(rand.NewPCG(b.Seed, 0x41e5))
	r := main
	var out []Event
	seq := 0
	emit := func(p *person, kind scoring.ObservationKind, at time.Time, ci scoring.ClientInfo, responder scoring.ClientInfo) {
		seq++
		out = append(out, Event{User: p.id, Obs: scoring.Observation{ID: fmt.Sprint("b", seq), Kind: kind, At: at, Client: ci, Responder: responder}})
	}
	// A push login: the attempt, the push, and its answer from the phone.
	pushLogin := func(p *person, at time.Time, ci, phone scoring.ClientInfo) {
		if at.Before(p.free) {
			return // still travelling
		}
		emit(p, scoring.ObsAttempt, at, ci, scoring.ClientInfo{})
		emit(p, scoring.ObsPushSent, at.Add(time.Second), ci, scoring.ClientInfo{})
		late, answer, slowest := 0.02, 5, 40
		if p.novice {
			late, answer, slowest = 0.1, 10, 50
		}
		if r.Float64() < late {
			// The phone was in another room: the push times out and the
			// user asks for another one.
			emit(p, scoring.ObsPushTimedOut, at.Add(5*time.Minute), ci, scoring.ClientInfo{})
			at = at.Add(5*time.Minute + time.Duration(r.IntN(120))*time.Second)
			emit(p, scoring.ObsAttempt, at, ci, scoring.ClientInfo{})
			emit(p, scoring.ObsPushSent, at.Add(time.Second), ci, scoring.ClientInfo{})
		}
		answered := at.Add(time.Duration(answer+r.IntN(slowest)) * time.Second)
		emit(p, scoring.ObsPushApproved, answered, ci, phone)
		emit(p, scoring.ObsLoginSucceeded, answered.Add(time.Second), ci, scoring.ClientInfo{})
		p.free = answered.Add(time.Second)
		p.novice = false
	}
	people := make([]*person, b.Users)
	for i := range people {
		home := Cities[r.IntN(len(Cities))]
		p := &person{
			id: fmt.Sprintf("user%05d", i), home: home, at: home,
			homeIP: fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff), officeIP: fmt.Sprintf("172.16.%d.%d", r.IntN(4), r.IntN(250)),
			laptop: fmt.Sprint("laptop-", i), phone: fmt.Sprint("phone-", i),
			commuter: r.Float64() < b.Commuters, traveller: r.Float64() < b.Travellers,
			vpn: r.Float64() < b.VPNUsers, mobile: r.Float64() < b.Mobile,
		}
		// The office is 5-40 km from home; the carrier's gateway for the
		// region up to 400 km away.
		p.officeLat, p.officeLon = offset(r, home.Lat, home.Lon, 5+r.Float64()*35)
		p.carrierLat, p.carrierLon = offset(r, home.Lat, home.Lon, r.Float64()*400)
		people[i] = p
	}
	r = hires
	for j := range b.NewHires {
		i := b.Users + j
		p := &person{
			id: fmt.Sprintf("hire%04d", j), home: HQ, at: HQ,
			homeIP: fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff), officeIP: HQNAT.IP,
			officeLat: HQNAT.Lat, officeLon: HQNAT.Lon,
			laptop: fmt.Sprint("laptop-", i), phone: fmt.Sprint("phone-", i),
			commuter: true, mobile: r.Float64() < b.Mobile, vpn: r.Float64() < b.VPNUsers,
			hire: true, novice: true,
		}
		p.carrierLat, p.carrierLon = offset(r, HQ.Lat, HQ.Lon, r.Float64()*400)
		people = append(people, p)
	}
	for day := range b.Days {
		midnight := b.Start.Add(time.Duration(day) * 24 * time.Hour)
		for _, p := range people {
			r = main
			if p.hire {
				r = hires
			}
			c := p.at
			local := func(h float64) time.Time {
				// Hours in the city's own time, roughly from its longitude.
				return midnight.Add(time.Duration((h - c.Lon/15) * float64(time.Hour))).Add(time.Duration(r.IntN(1800)) * time.Second)
			}
			homeCI := scoring.ClientInfo{IP: p.homeIP, DeviceID: p.laptop, ASN: c.ISP, Lat: jitter(r, c.Lat), Lon: jitter(r, c.Lon), AccuracyKm: 10 + float64(r.IntN(40)), HasGeo: true, Country: c.Country, City: c.Name}
			if c != p.home {
				homeCI.IP = fmt.Sprintf("192.0.2.%d", r.IntN(250)) // hotel
			}
			phone := p.phoneAt(r, c)
			office := scoring.ClientInfo{IP: p.officeIP, DeviceID: p.laptop, ASN: 64512, Lat: p.officeLat, Lon: p.officeLon, AccuracyKm: 5, HasGeo: true, Country: c.Country, City: c.Name}
			if p.hire && day == 0 {
				// The first day: IT hands over the laptop, the hire enrols
				// the authenticator app and signs in for the first time,
				// all through the office NAT; again after lunch.
				arrive := midnight.Add(time.Duration((8.5 - c.Lon/15) * float64(time.Hour))).Add(time.Duration(r.Int64N(int64(b.HireArrivals) + 1)))
				enrolled := arrive.Add(time.Duration(60+r.IntN(120)) * time.Second)
				emit(p, scoring.ObsFactorEnrolled, enrolled, office, phone)
				pushLogin(p, enrolled.Add(time.Duration(30+r.IntN(90))*time.Second), office, phone)
				pushLogin(p, local(13.5), office, phone)
			} else {
				morning := local(7.5)
				pushLogin(p, morning, homeCI, phone)
				if p.commuter && c == p.home && day%7 < 5 {
					pushLogin(p, morning.Add(time.Duration(45+r.IntN(60))*time.Minute), office, phone)
				}
			}
			if p.mobile {
				// A login from the phone itself: the carrier's gateway may be
				// hundreds of km away, with an accuracy radius to match.
				pushLogin(p, local(13), phone, phone)
			}
			if p.vpn && r.Float64() < 0.5 {
				exit := vpnExits[r.IntN(len(vpnExits))]
				vpnCI := scoring.ClientInfo{IP: fmt.Sprintf("185.%d.%d.%d", exit.ASN%250, r.IntN(4), r.IntN(250)), DeviceID: p.laptop, ASN: exit.ASN, ASOrg: exit.Org,
					Lat: exit.City.Lat, Lon: exit.City.Lon, AccuracyKm: 100, HasGeo: true, Country: exit.City.Country, City: exit.City.Name}
				pushLogin(p, local(15), vpnCI, phone)
			}
			pushLogin(p, local(19), homeCI, phone)
			if !p.traveller {
				continue
			}
			var dest City
			switch {
			case c != p.home && r.Float64() < 0.4:
				dest = p.home
			case c == p.home && r.Float64() < b.FlightsPerTravellerDay:
				dest = Cities[r.IntN(len(Cities))]
			}
			if dest.Name == "" || dest == c {
				continue
			}
			km := geo.DistanceKm(c.Lat, c.Lon, dest.Lat, dest.Lon)
			// Door to door: to the airport, boarding, the flight at an
			// airliner's block speed, and out of the arrival airport.
			depart := local(20.5)
			flight := time.Duration(km/850*float64(time.Hour)) + 30*time.Minute
			if flight > 3*time.Hour && r.Float64() < 0.5 {
				// In-flight wifi: egress at a satellite ground station.
				sat := scoring.ClientInfo{IP: "164.86.38.26", DeviceID: p.laptop, ASN: 22351, ASOrg: "INTELSAT GLOBAL SERVICE CORPORATION",
					Lat: 38.953, Lon: -77.2295, HasGeo: true, Country: "US", City: "Tysons Corner"}
				pushLogin(p, depart.Add(2*time.Hour+flight/2), sat, sat)
			}
			land := depart.Add(2*time.Hour + flight + 45*time.Minute)
			// No login from the destination before landing.
			p.at, p.free = dest, land
			arr := scoring.ClientInfo{IP: fmt.Sprintf("198.18.%d.%d", r.IntN(250), r.IntN(250)), DeviceID: p.laptop, ASN: dest.Carrier,
				Lat: jitter(r, dest.Lat), Lon: jitter(r, dest.Lon), AccuracyKm: 50, HasGeo: true, Country: dest.Country, City: dest.Name}
			pushLogin(p, land, arr, p.phoneAt(r, dest))
		}
	}
	slices.SortStableFunc(out, func(a, b Event) int { return a.Obs.At.Compare(b.Obs.At) })
	return out
}

func (p *person) phoneAt(r *rand.Rand, c City) scoring.ClientInfo {
	lat, lon := p.carrierLat, p.carrierLon
	if c != p.home {
		lat, lon = offset(r, c.Lat, c.Lon, r.Float64()*400)
	}
	return scoring.ClientInfo{IP: fmt.Sprintf("100.64.%d.%d", r.IntN(250), r.IntN(250)), DeviceID: p.phone, ASN: c.Carrier,
		Lat: lat, Lon: lon, AccuracyKm: 100 + float64(r.IntN(400)), HasGeo: true, Country: c.Country, City: c.Name}
}

// jitter moves a coordinate by up to ~5 km, as GeoIP does within a city.
func jitter(r *rand.Rand, v float64) float64 { return v + (r.Float64()-0.5)*0.1 }

// offset returns a point km away from (lat, lon) in a random direction.
func offset(r *rand.Rand, lat, lon, km float64) (float64, float64) {
	bearing := r.Float64() * 2 * math.Pi
	dLat := km / 111.2 * math.Cos(bearing)
	dLon := km / (111.2 * math.Max(0.1, math.Cos(lat*math.Pi/180))) * math.Sin(bearing)
	return lat + dLat, lon + dLon
}

// Fatigue is a push-bombing attack: n pushes spaced by spacing from an
// attacker, each denied or left to time out, then (when approve is set)
// the tired user approves.
func Fatigue(user string, start time.Time, n int, spacing time.Duration, approve bool, attacker scoring.ClientInfo) []Event {
	var out []Event
	for i := range n {
		at := start.Add(time.Duration(i) * spacing)
		out = append(out,
			Event{User: user, Attack: "fatigue", Push: i + 1, Obs: scoring.Observation{ID: fmt.Sprint(user, "-fa-", i), Kind: scoring.ObsAttempt, At: at, Client: attacker}},
			Event{User: user, Attack: "fatigue", Obs: scoring.Observation{ID: fmt.Sprint(user, "-fs-", i), Kind: scoring.ObsPushSent, At: at.Add(time.Second), Client: attacker}})
		answer := scoring.ObsPushTimedOut
		if i%3 == 1 {
			answer = scoring.ObsPushDenied
		}
		if i < n-1 || !approve {
			out = append(out, Event{User: user, Attack: "fatigue", Obs: scoring.Observation{ID: fmt.Sprint(user, "-fr-", i), Kind: answer, At: at.Add(min(spacing-time.Second, 20*time.Second)), Client: attacker}})
		}
	}
	if approve {
		at := start.Add(time.Duration(n-1)*spacing + 15*time.Second)
		out = append(out, Event{User: user, Attack: "fatigue", Obs: scoring.Observation{ID: user + "-fok", Kind: scoring.ObsPushApproved, At: at, Client: attacker}})
	}
	return out
}

// Spray is one attacker pushing to many users from one IP.
func Spray(users []string, start time.Time, spacing time.Duration, attacker scoring.ClientInfo) []Event {
	var out []Event
	for i, u := range users {
		out = append(out, Event{User: u, Attack: "spray", Push: i + 1, Obs: scoring.Observation{ID: fmt.Sprint(u, "-spray"), Kind: scoring.ObsAttempt, At: start.Add(time.Duration(i) * spacing), Client: attacker}})
	}
	return out
}

// DormantSpray is a sprayer working through accounts nobody answers for
// (leavers, service accounts, hires who never started) and so has no
// history to compare the source with: one push each, sent and left to
// time out. The sprayer rotates through ips, all on attacker's network
// (none: attacker.IP alone).
func DormantSpray(users []string, start time.Time, spacing time.Duration, attacker scoring.ClientInfo, ips ...string) []Event {
	if len(ips) == 0 {
		ips = []string{attacker.IP}
	}
	var out []Event
	for i, u := range users {
		ci := attacker
		ci.IP = ips[i%len(ips)]
		at := start.Add(time.Duration(i) * spacing)
		out = append(out,
			Event{User: u, Attack: "dormant-spray", Push: i + 1, Obs: scoring.Observation{ID: fmt.Sprint(u, "-da"), Kind: scoring.ObsAttempt, At: at, Client: ci}},
			Event{User: u, Attack: "dormant-spray", Obs: scoring.Observation{ID: fmt.Sprint(u, "-ds"), Kind: scoring.ObsPushSent, At: at.Add(time.Second), Client: ci}},
			Event{User: u, Attack: "dormant-spray", Obs: scoring.Observation{ID: fmt.Sprint(u, "-dt"), Kind: scoring.ObsPushTimedOut, At: at.Add(5 * time.Minute), Client: ci}})
	}
	slices.SortStableFunc(out, func(a, b Event) int { return a.Obs.At.Compare(b.Obs.At) })
	return out
}

// Travel is a victim's login at home followed, after gap, by the
// attacker's push attempt from far away.
func Travel(user string, start time.Time, gap time.Duration, home, attacker scoring.ClientInfo) []Event {
	return []Event{
		{User: user, Obs: scoring.Observation{ID: user + "-home", Kind: scoring.ObsLoginSucceeded, At: start, Client: home}},
		{User: user, Attack: "travel", Push: 1, Obs: scoring.Observation{ID: user + "-far", Kind: scoring.ObsAttempt, At: start.Add(gap), Client: attacker}},
	}
}
