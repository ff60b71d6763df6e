// Package scenario generates labelled authentication histories for the
// scorer: attacks (push fatigue from abroad, from the victim's own ISP and
// paced, spray across users with history and across dormant accounts,
// impossible travel) and a benign population (commutes, flights at
// airliner speed, mobile-carrier IP jumps, VPN use, phones that miss
// pushes and users who switch phones, a class of new hires signing in for
// the first time through one office NAT). Everything is deterministic for
// a seed.
package scenario

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/pushbackhq/pushback/pkg/geo"
	"github.com/pushbackhq/pushback/services/scoring/engine"
)

// Event is one observation for one user, with its label.
type Event struct {
	User string
	Obs  engine.Observation
	// Attack names the attack the event belongs to ("" when benign).
	Attack string
	// Push numbers the attack's pushes from 1 (0 for other events).
	Push int
	// Habit names the benign behaviour a benign event belongs to when it
	// is one the scorer must tell from an attack (HabitFlakyPhone,
	// HabitNewPhone); "" otherwise.
	Habit string
}

// Benign habits that look like an attack's pushes.
const (
	// HabitFlakyPhone: the phone misses 1-3 pushes (no notification, in
	// another room) and the user approves a retry a few minutes later,
	// all from their usual device, network and place.
	HabitFlakyPhone = "flaky phone"
	// HabitNewPhone: the user enrols a new phone at home; the pushes of
	// the next sign-in still go to the old one and time out, and the user
	// approves on the new one.
	HabitNewPhone = "new phone"
)

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
	// Retries is the share of sign-ins from the user's usual context (the
	// laptop at home or in the office, once the user has signed in before)
	// in which the phone misses 1-3 pushes before the user approves a
	// retry (HabitFlakyPhone). PhoneSwitches is the share of users who
	// enrol a new phone during the week (HabitNewPhone). Both draw from
	// each user's own random stream, so they leave every other user's
	// history as it was.
	Retries, PhoneSwitches float64
}

// HQ is the head office new hires start at, and HQNAT the one address its
// network reaches the identity provider from.
var (
	HQ    = Cities[0]
	HQNAT = engine.ClientInfo{IP: "172.16.200.1", ASN: 64512, Lat: 40.7506, Lon: -73.9935, AccuracyKm: 5, HasGeo: true, Country: "US", City: "New York"}
)

// DefaultBenign is the population the tests run: 10,000 users for a week,
// a class of 60 new hires who start at HQ on the Monday morning, 4% of
// sign-ins from home or the office (about 3% of all sign-ins) on a phone
// that misses pushes, and 1% of users who switch phones during the week.
func DefaultBenign() Benign {
	return Benign{Users: 10000, Days: 7, Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), Seed: 1,
		Commuters: 0.6, Travellers: 0.1, VPNUsers: 0.1, Mobile: 0.5, FlightsPerTravellerDay: 0.25,
		NewHires: 60, HireArrivals: 90 * time.Minute, Retries: 0.04, PhoneSwitches: 0.01}
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
	landed                 time.Time // the last flight's landing
	carrierLat, carrierLon float64
	// hire starts on the first day; novice until the first approved push
	// (new to the authenticator app: slower, and more often too late).
	hire, novice bool
	// own is the person's stream for the habits added later (missed
	// pushes, a new phone), so that they change no one else's history;
	// signedIn is set by the first approved push; switchDay is the day
	// the person enrols newPhone (-1: never).
	own       *rand.Rand
	signedIn  bool
	switchDay int
	newPhone  string
	// signedInHome and signedInOffice are set once the person signed in
	// from there.
	signedInHome, signedInOffice bool
}

// Places a person signs in from, for the habits of the usual ones.
const (
	elsewhere = iota
	atHome
	atOffice
)

// Generate returns the benign population's events in time order.
func (b Benign) Generate() []Event {
	return b.generate(nil)
}

// generate returns the population's events and those more adds (it sees
// the people once their week is generated), in time order.
func (b Benign) generate(more func(people []*person) []Event) []Event {
	// r is the stream of the person being generated: main for the
	// population, hires for the new hires.
	main, hires := rand.New(rand.NewPCG(b.Seed, 0x5eed)), rand.New(rand.NewPCG(b.Seed, 0x41e5))
	r := main
	out := make([]Event, 0, (b.Users+b.NewHires)*b.Days*13)
	seq := 0
	habit := ""
	emit := func(p *person, kind engine.ObservationKind, at time.Time, ci engine.ClientInfo, responder engine.ClientInfo) {
		seq++
		out = append(out, Event{User: p.id, Habit: habit, Obs: engine.Observation{ID: fmt.Sprint("b", seq), Kind: kind, At: at, Client: ci, Responder: responder}})
	}
	// A push login: misses pushes first (misses of them, which the phone
	// never shows and which time out after 5 minutes, as Okta's do), then
	// the attempt, the push, and its answer from the phone.
	login := func(p *person, at time.Time, ci, phone engine.ClientInfo, misses int) {
		if at.Before(p.free) {
			return // still travelling
		}
		for range misses {
			emit(p, engine.ObsAttempt, at, ci, engine.ClientInfo{})
			emit(p, engine.ObsPushSent, at.Add(time.Second), ci, engine.ClientInfo{})
			emit(p, engine.ObsPushTimedOut, at.Add(5*time.Minute+time.Second), ci, engine.ClientInfo{})
			if p.own.IntN(2) == 0 {
				// The user waits for the push to expire, then asks again.
				at = at.Add(5*time.Minute + time.Duration(10+p.own.IntN(110))*time.Second)
			} else {
				// Nothing shows on the phone: the user asks for another.
				at = at.Add(time.Duration(30+p.own.IntN(120)) * time.Second)
			}
		}
		emit(p, engine.ObsAttempt, at, ci, engine.ClientInfo{})
		emit(p, engine.ObsPushSent, at.Add(time.Second), ci, engine.ClientInfo{})
		late, answer, slowest := 0.02, 5, 40
		if p.novice {
			late, answer, slowest = 0.1, 10, 50
		}
		if r.Float64() < late {
			// The phone was in another room: the push times out and the
			// user asks for another one.
			emit(p, engine.ObsPushTimedOut, at.Add(5*time.Minute), ci, engine.ClientInfo{})
			at = at.Add(5*time.Minute + time.Duration(r.IntN(120))*time.Second)
			emit(p, engine.ObsAttempt, at, ci, engine.ClientInfo{})
			emit(p, engine.ObsPushSent, at.Add(time.Second), ci, engine.ClientInfo{})
		}
		answered := at.Add(time.Duration(answer+r.IntN(slowest)) * time.Second)
		emit(p, engine.ObsPushApproved, answered, ci, phone)
		emit(p, engine.ObsLoginSucceeded, answered.Add(time.Second), ci, engine.ClientInfo{})
		p.free = answered.Add(time.Second)
		p.novice, p.signedIn = false, true
	}
	// where says whether the sign-in is from home or the office: once the
	// person signed in from there, it is their usual context (the laptop
	// on a network they use), where the phone may miss pushes.
	pushLogin := func(p *person, at time.Time, ci, phone engine.ClientInfo, where int) {
		usual := where == atHome && p.signedInHome || where == atOffice && p.signedInOffice
		misses := 0
		if usual && !at.Before(p.free) && b.Retries > 0 && p.own.Float64() < b.Retries {
			misses, habit = 1+p.own.IntN(3), HabitFlakyPhone
		}
		free := p.free
		login(p, at, ci, phone, misses)
		habit = ""
		if p.free != free {
			p.signedInHome, p.signedInOffice = p.signedInHome || where == atHome, p.signedInOffice || where == atOffice
		}
	}
	// switchPhone: the user enrols a new phone on the laptop at home, then
	// signs in; the first pushes still go to the old phone and time out.
	switchPhone := func(p *person, at time.Time, ci, phone engine.ClientInfo) {
		if at.Before(p.free) {
			return
		}
		habit = HabitNewPhone
		phone.DeviceID = p.newPhone
		emit(p, engine.ObsFactorEnrolled, at.Add(-time.Duration(5+p.own.IntN(15))*time.Minute), ci, phone)
		login(p, at, ci, phone, 1+p.own.IntN(2))
		p.phone, p.switchDay = p.newPhone, -1
		habit = ""
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
	// The habits added later draw from each person's own stream.
	ownStream := func(p *person, i int) {
		p.own = rand.New(rand.NewPCG(b.Seed^0xf1a4e, uint64(i)))
		p.switchDay, p.newPhone = -1, fmt.Sprint("phone-", i, "-new")
		if b.Days > 1 && p.own.Float64() < b.PhoneSwitches {
			p.switchDay = 1 + p.own.IntN(b.Days-1)
		}
	}
	for i, p := range people {
		ownStream(p, i)
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
		ownStream(p, i)
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
			homeCI := engine.ClientInfo{IP: p.homeIP, DeviceID: p.laptop, ASN: c.ISP, Lat: jitter(r, c.Lat), Lon: jitter(r, c.Lon), AccuracyKm: 10 + float64(r.IntN(40)), HasGeo: true, Country: c.Country, City: c.Name}
			if c != p.home {
				homeCI.IP = fmt.Sprintf("192.0.2.%d", r.IntN(250)) // hotel
			}
			phone := p.phoneAt(r, c)
			office := engine.ClientInfo{IP: p.officeIP, DeviceID: p.laptop, ASN: 64512, Lat: p.officeLat, Lon: p.officeLon, AccuracyKm: 5, HasGeo: true, Country: c.Country, City: c.Name}
			if p.hire && day == 0 {
				// The first day: IT hands over the laptop, the hire enrols
				// the authenticator app and signs in for the first time,
				// all through the office NAT; again after lunch.
				arrive := midnight.Add(time.Duration((8.5 - c.Lon/15) * float64(time.Hour))).Add(time.Duration(r.Int64N(int64(b.HireArrivals) + 1)))
				enrolled := arrive.Add(time.Duration(60+r.IntN(120)) * time.Second)
				emit(p, engine.ObsFactorEnrolled, enrolled, office, phone)
				pushLogin(p, enrolled.Add(time.Duration(30+r.IntN(90))*time.Second), office, phone, atOffice)
				pushLogin(p, local(13.5), office, phone, atOffice)
			} else {
				morning := local(7.5)
				if p.switchDay >= 0 && day >= p.switchDay && c == p.home && p.signedInHome {
					switchPhone(p, morning, homeCI, phone)
				} else {
					pushLogin(p, morning, homeCI, phone, p.from(c))
				}
				if p.commuter && c == p.home && day%7 < 5 {
					pushLogin(p, morning.Add(time.Duration(45+r.IntN(60))*time.Minute), office, p.phoneAs(phone), atOffice)
				}
			}
			phone = p.phoneAs(phone)
			if p.mobile {
				// A login from the phone itself: the carrier's gateway may be
				// hundreds of km away, with an accuracy radius to match.
				pushLogin(p, local(13), phone, phone, elsewhere)
			}
			if p.vpn && r.Float64() < 0.5 {
				exit := vpnExits[r.IntN(len(vpnExits))]
				vpnCI := engine.ClientInfo{IP: fmt.Sprintf("185.%d.%d.%d", exit.ASN%250, r.IntN(4), r.IntN(250)), DeviceID: p.laptop, ASN: exit.ASN, ASOrg: exit.Org,
					Lat: exit.City.Lat, Lon: exit.City.Lon, AccuracyKm: 100, HasGeo: true, Country: exit.City.Country, City: exit.City.Name}
				pushLogin(p, local(15), vpnCI, phone, elsewhere)
			}
			pushLogin(p, local(19), homeCI, phone, p.from(c))
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
			if next := p.landed.Add(3 * time.Hour); depart.Before(next) {
				// Not before the last flight has landed and the traveller
				// is back at the airport. A flight west across the date
				// line lands after the evening of its day in the
				// destination's time; leaving again that evening put the
				// traveller in two places faster than any airliner.
				depart = next
			}
			flight := time.Duration(km/850*float64(time.Hour)) + 30*time.Minute
			if flight > 3*time.Hour && r.Float64() < 0.5 {
				// In-flight wifi: egress at a satellite ground station.
				sat := engine.ClientInfo{IP: "164.86.38.26", DeviceID: p.laptop, ASN: 22351, ASOrg: "INTELSAT GLOBAL SERVICE CORPORATION",
					Lat: 38.953, Lon: -77.2295, HasGeo: true, Country: "US", City: "Tysons Corner"}
				pushLogin(p, depart.Add(2*time.Hour+flight/2), sat, sat, elsewhere)
			}
			land := depart.Add(2*time.Hour + flight + 45*time.Minute)
			// No login from the destination before landing.
			p.at, p.free, p.landed = dest, land, land
			arr := engine.ClientInfo{IP: fmt.Sprintf("198.18.%d.%d", r.IntN(250), r.IntN(250)), DeviceID: p.laptop, ASN: dest.Carrier,
				Lat: jitter(r, dest.Lat), Lon: jitter(r, dest.Lon), AccuracyKm: 50, HasGeo: true, Country: dest.Country, City: dest.Name}
			pushLogin(p, land, arr, p.phoneAt(r, dest), elsewhere)
		}
	}
	if more != nil {
		out = append(out, more(people)...)
	}
	sortByTime(out)
	return out
}

// sortByTime sorts events by time, stably (as slices.SortStableFunc does)
// but by moving each event once: a week of a population is most of a
// million events of a few hundred bytes.
func sortByTime(events []Event) {
	idx := make([]int32, len(events))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(a, b int32) int {
		if c := events[a].Obs.At.Compare(events[b].Obs.At); c != 0 {
			return c
		}
		return int(a - b)
	})
	// Apply the permutation in place, cycle by cycle: position i takes
	// the event at idx[i].
	for i := range idx {
		if idx[i] < 0 {
			continue
		}
		tmp, j := events[i], i
		for {
			k := int(idx[j])
			idx[j] = -1
			if k == i {
				events[j] = tmp
				break
			}
			events[j] = events[k]
			j = k
		}
	}
}

// from is where a sign-in on the laptop in city c comes from.
func (p *person) from(c City) int {
	if c == p.home {
		return atHome
	}
	return elsewhere
}

// phoneAs is ci as the person's phone: the one enrolled now (ci may have
// been drawn before a switch).
func (p *person) phoneAs(ci engine.ClientInfo) engine.ClientInfo {
	ci.DeviceID = p.phone
	return ci
}

func (p *person) phoneAt(r *rand.Rand, c City) engine.ClientInfo {
	lat, lon := p.carrierLat, p.carrierLon
	if c != p.home {
		lat, lon = offset(r, c.Lat, c.Lon, r.Float64()*400)
	}
	return engine.ClientInfo{IP: fmt.Sprintf("100.64.%d.%d", r.IntN(250), r.IntN(250)), DeviceID: p.phone, ASN: c.Carrier,
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
func Fatigue(user string, start time.Time, n int, spacing time.Duration, approve bool, attacker engine.ClientInfo) []Event {
	return FatigueAttack{User: user, Start: start, Pushes: n, Spacing: spacing, Approve: approve, Attacker: attacker}.Events()
}

// FatigueAttack is push bombing: Pushes pushes Spacing apart from Attacker,
// each denied or left to time out; then, with Approve, the worn-down user
// approves the last one on Phone, or, with Fraud, reports it as fraud.
type FatigueAttack struct {
	// Name labels the events (Event.Attack); "fatigue" when empty.
	Name     string
	User     string
	Start    time.Time
	Pushes   int
	Spacing  time.Duration
	Attacker engine.ClientInfo
	// Phone is the victim's phone, which answers (the approval's
	// responder); zero when the identity provider does not report it.
	Phone          engine.ClientInfo
	Approve, Fraud bool
}

// Events returns the attack's events.
func (f FatigueAttack) Events() []Event {
	name, user, attacker, n := f.Name, f.User, f.Attacker, f.Pushes
	if name == "" {
		name = "fatigue"
	}
	var out []Event
	for i := range n {
		at := f.Start.Add(time.Duration(i) * f.Spacing)
		out = append(out,
			Event{User: user, Attack: name, Push: i + 1, Obs: engine.Observation{ID: fmt.Sprint(user, "-fa-", i), Kind: engine.ObsAttempt, At: at, Client: attacker}},
			Event{User: user, Attack: name, Obs: engine.Observation{ID: fmt.Sprint(user, "-fs-", i), Kind: engine.ObsPushSent, At: at.Add(time.Second), Client: attacker}})
		answer := engine.ObsPushTimedOut
		if i%3 == 1 {
			answer = engine.ObsPushDenied
		}
		if i < n-1 || !f.Approve {
			out = append(out, Event{User: user, Attack: name, Obs: engine.Observation{ID: fmt.Sprint(user, "-fr-", i), Kind: answer, At: at.Add(min(f.Spacing-time.Second, 20*time.Second)), Client: attacker}})
		}
	}
	last := f.Start.Add(time.Duration(n-1) * f.Spacing)
	if f.Approve {
		out = append(out, Event{User: user, Attack: name, Obs: engine.Observation{ID: user + "-fok", Kind: engine.ObsPushApproved, At: last.Add(15 * time.Second), Client: attacker, Responder: f.Phone}})
	}
	if f.Fraud {
		out = append(out, Event{User: user, Attack: name, Obs: engine.Observation{ID: user + "-ffraud", Kind: engine.ObsFraudReported, At: last.Add(30 * time.Second), Client: attacker, Responder: f.Phone}})
	}
	return out
}

// Spray is one attacker pushing to many users from one IP.
func Spray(users []string, start time.Time, spacing time.Duration, attacker engine.ClientInfo) []Event {
	var out []Event
	for i, u := range users {
		out = append(out, Event{User: u, Attack: "spray", Push: i + 1, Obs: engine.Observation{ID: fmt.Sprint(u, "-spray"), Kind: engine.ObsAttempt, At: start.Add(time.Duration(i) * spacing), Client: attacker}})
	}
	return out
}

// DormantSpray is a sprayer working through accounts nobody answers for
// (leavers, service accounts, hires who never started) and so has no
// history to compare the source with: one push each, sent and left to
// time out. The sprayer rotates through ips, all on attacker's network
// (none: attacker.IP alone).
func DormantSpray(users []string, start time.Time, spacing time.Duration, attacker engine.ClientInfo, ips ...string) []Event {
	if len(ips) == 0 {
		ips = []string{attacker.IP}
	}
	var out []Event
	for i, u := range users {
		ci := attacker
		ci.IP = ips[i%len(ips)]
		at := start.Add(time.Duration(i) * spacing)
		out = append(out,
			Event{User: u, Attack: "dormant-spray", Push: i + 1, Obs: engine.Observation{ID: fmt.Sprint(u, "-da"), Kind: engine.ObsAttempt, At: at, Client: ci}},
			Event{User: u, Attack: "dormant-spray", Obs: engine.Observation{ID: fmt.Sprint(u, "-ds"), Kind: engine.ObsPushSent, At: at.Add(time.Second), Client: ci}},
			Event{User: u, Attack: "dormant-spray", Obs: engine.Observation{ID: fmt.Sprint(u, "-dt"), Kind: engine.ObsPushTimedOut, At: at.Add(5 * time.Minute), Client: ci}})
	}
	slices.SortStableFunc(out, func(a, b Event) int { return a.Obs.At.Compare(b.Obs.At) })
	return out
}

// Travel is a victim's login at home followed, after gap, by the
// attacker's push attempt from far away.
func Travel(user string, start time.Time, gap time.Duration, home, attacker engine.ClientInfo) []Event {
	return []Event{
		{User: user, Obs: engine.Observation{ID: user + "-home", Kind: engine.ObsLoginSucceeded, At: start, Client: home}},
		{User: user, Attack: "travel", Push: 1, Obs: engine.Observation{ID: user + "-far", Kind: engine.ObsAttempt, At: start.Add(gap), Client: attacker}},
	}
}

// TravelSuccess is a victim's login at home followed, after gap, by the
// attacker's sign-in from far away, whose one push the victim approves on
// their phone at home: no burst, but a place the victim cannot have
// reached.
func TravelSuccess(user string, start time.Time, gap time.Duration, home, attacker, phone engine.ClientInfo) []Event {
	at := start.Add(gap)
	const name = "travel-success"
	return []Event{
		{User: user, Obs: engine.Observation{ID: user + "-home", Kind: engine.ObsLoginSucceeded, At: start, Client: home}},
		{User: user, Attack: name, Push: 1, Obs: engine.Observation{ID: user + "-ts-a", Kind: engine.ObsAttempt, At: at, Client: attacker}},
		{User: user, Attack: name, Obs: engine.Observation{ID: user + "-ts-s", Kind: engine.ObsPushSent, At: at.Add(time.Second), Client: attacker}},
		{User: user, Attack: name, Obs: engine.Observation{ID: user + "-ts-ok", Kind: engine.ObsPushApproved, At: at.Add(20 * time.Second), Client: attacker, Responder: phone}},
		{User: user, Attack: name, Obs: engine.Observation{ID: user + "-ts-in", Kind: engine.ObsLoginSucceeded, At: at.Add(21 * time.Second), Client: attacker}},
	}
}

// Response is what must answer an attack.
type Response uint8

// Responses.
const (
	// Inline: the decision service answers the attack before a push is
	// sent (a spray, an attempt from far away); the attacker got nothing
	// and no response action is meant for it. Attack.Signal names the
	// signal that must fire.
	Inline Response = iota
	// Alert: the attacker is at work and has not got in: the SOC is
	// alerted.
	Alert
	// Revoke: the attacker got in (a push approved for them), or the user
	// said "not me": the SOC is alerted and the user's sessions revoked.
	Revoke
)

// Attack is one attack in the population's week (see Benign.Attacked).
type Attack struct {
	// Name is the attack's label on its events (Event.Attack).
	Name string
	// Users are the users it pushes to.
	Users []string
	Want  Response
	// Signal is the signal an Inline attack must raise.
	Signal string
}

// Attacked returns the benign population's week with attacks on some of
// its users, in time order, and the attacks. The victims are users with a
// week of history who stay at home and keep their phone; the attacks come
// on the Thursday night, while they sleep:
//
//   - fatigue successes: from another country (with and without the
//     approving phone in the log), from the victim's own ISP (same ASN, a
//     new IP, with an unknown device and with none), paced (a push every
//     8 and every 25 minutes);
//   - fatigue the victim never approves, and fatigue the victim reports;
//   - a sign-in from another continent 40 minutes after the victim's own,
//     whose one push the victim approves;
//   - an attempt from another continent (answered inline);
//   - a spray across 12 users with history, and across 12 dormant
//     accounts (answered inline).
//
// Everything about the attacks draws from its own random stream: the
// population's history is the one Generate returns.
func (b Benign) Attacked() ([]Event, []Attack) {
	var attacks []Attack
	week := b.generate(func(people []*person) []Event {
		var out []Event
		out, attacks = b.attack(people)
		return out
	})
	return week, attacks
}

// attack returns the events and the attacks of Attacked.
func (b Benign) attack(people []*person) ([]Event, []Attack) {
	var out []Event
	r := rand.New(rand.NewPCG(b.Seed, 0xa77ac))
	var victims []*person
	for i := 97; i < len(people); i += 97 {
		p := people[i]
		if !p.hire && !p.traveller && !p.vpn && p.switchDay < 0 && p.phone == fmt.Sprint("phone-", i) && p.signedIn {
			victims = append(victims, p)
		}
	}
	night := func(p *person, h float64) time.Time {
		// Thursday, h hours local time at home.
		return b.Start.Add(time.Duration(min(3, b.Days-1)) * 24 * time.Hour).Add(time.Duration((h - p.home.Lon/15) * float64(time.Hour)))
	}
	home := func(p *person) engine.ClientInfo {
		c := p.home
		return engine.ClientInfo{IP: p.homeIP, DeviceID: p.laptop, ASN: c.ISP, Lat: jitter(r, c.Lat), Lon: jitter(r, c.Lon), AccuracyKm: 20, HasGeo: true, Country: c.Country, City: c.Name}
	}
	abroad := engine.ClientInfo{IP: "45.9.9.9", DeviceID: "kali", ASN: 50000, Lat: 55.75, Lon: 37.62, AccuracyKm: 20, HasGeo: true, Country: "RU", City: "Moscow"}
	ownISP := func(p *person, device string) engine.ClientInfo {
		c := p.home
		return engine.ClientInfo{IP: fmt.Sprintf("198.51.100.%d", 1+r.IntN(250)), DeviceID: device, ASN: c.ISP, Lat: jitter(r, c.Lat), Lon: jitter(r, c.Lon), AccuracyKm: 20, HasGeo: true, Country: c.Country, City: c.Name}
	}
	farFrom := func(p *person) engine.ClientInfo {
		far := Cities[19] // Sydney
		if p.home.Country == "AU" || p.home.Country == "NZ" {
			far = Cities[8] // London
		}
		return engine.ClientInfo{IP: "203.0.113.66", DeviceID: "kali", ASN: far.ISP, Lat: far.Lat, Lon: far.Lon, AccuracyKm: 20, HasGeo: true, Country: far.Country, City: far.Name}
	}
	var attacks []Attack
	next := 0
	const needed = 10 + 12 // one per attack, and the sprayed users
	if len(victims) < needed {
		panic(fmt.Sprintf("scenario: %d users are too few to attack (%d victims, %d needed)", b.Users, len(victims), needed))
	}
	victim := func() *person {
		p := victims[next]
		next++
		return p
	}
	fatigue := func(name string, f FatigueAttack, want Response) {
		p := victim()
		f.Name, f.User = name, p.id
		if f.Start.IsZero() {
			f.Start = night(p, 2)
		}
		out = append(out, f.Events()...)
		attacks = append(attacks, Attack{Name: name, Users: []string{p.id}, Want: want})
	}
	// The phone of the victim about to be chosen.
	phone := func() engine.ClientInfo {
		p := victims[next]
		return p.phoneAt(r, p.home)
	}
	fatigue("fatigue from abroad", FatigueAttack{Pushes: 5, Spacing: 30 * time.Second, Attacker: abroad, Phone: phone(), Approve: true}, Revoke)
	fatigue("fatigue from abroad, no responder in the log", FatigueAttack{Pushes: 3, Spacing: time.Minute, Attacker: abroad, Approve: true}, Revoke)
	p := victims[next]
	fatigue("fatigue from the victim's ISP", FatigueAttack{Pushes: 4, Spacing: 45 * time.Second, Attacker: ownISP(p, "kali"), Phone: phone(), Approve: true}, Revoke)
	p = victims[next]
	fatigue("fatigue from the victim's ISP, no device id", FatigueAttack{Pushes: 3, Spacing: time.Minute, Attacker: ownISP(p, ""), Phone: phone(), Approve: true}, Revoke)
	fatigue("paced fatigue, a push every 8 minutes", FatigueAttack{Pushes: 6, Spacing: 8 * time.Minute, Attacker: abroad, Phone: phone(), Approve: true}, Revoke)
	p = victims[next]
	fatigue("slow fatigue from the victim's ISP, a push every 25 minutes", FatigueAttack{Pushes: 4, Spacing: 25 * time.Minute, Attacker: ownISP(p, "kali"), Phone: phone(), Approve: true}, Revoke)
	fatigue("fatigue never approved", FatigueAttack{Pushes: 10, Spacing: 20 * time.Second, Attacker: abroad}, Alert)
	fatigue("fatigue reported as fraud", FatigueAttack{Pushes: 4, Spacing: 30 * time.Second, Attacker: abroad, Fraud: true}, Revoke)

	p = victim()
	ts := TravelSuccess(p.id, night(p, 1), 40*time.Minute, home(p), farFrom(p), p.phoneAt(r, p.home))
	out = append(out, ts...)
	attacks = append(attacks, Attack{Name: ts[1].Attack, Users: []string{p.id}, Want: Revoke})

	p = victim()
	tr := Travel(p.id, night(p, 1), 40*time.Minute, home(p), farFrom(p))
	tr[1].Attack = "travel attempt"
	out = append(out, tr...)
	attacks = append(attacks, Attack{Name: tr[1].Attack, Users: []string{p.id}, Want: Inline, Signal: engine.SignalImpossibleTravel})

	var sprayed []string
	for range 12 {
		sprayed = append(sprayed, victim().id)
	}
	sprayer := abroad
	sprayer.IP = "45.9.9.200"
	sp := Spray(sprayed, night(victims[next-1], 3), 20*time.Second, sprayer)
	out = append(out, sp...)
	attacks = append(attacks, Attack{Name: sp[0].Attack, Users: sprayed, Want: Inline, Signal: engine.SignalPushSpray})

	var dormant []string
	for i := range 12 {
		dormant = append(dormant, fmt.Sprintf("dormant%02d", i))
	}
	hosting := engine.ClientInfo{IP: "45.9.9.100", DeviceID: "kali", ASN: 50000, ASOrg: "Bulletproof Hosting", Lat: 52.37, Lon: 4.89, AccuracyKm: 20, HasGeo: true, Country: "NL", City: "Amsterdam"}
	ds := DormantSpray(dormant, b.Start.Add(3*24*time.Hour+2*time.Hour), 20*time.Second, hosting)
	out = append(out, ds...)
	attacks = append(attacks, Attack{Name: ds[0].Attack, Users: dormant, Want: Inline, Signal: engine.SignalPushSpray})

	return out, attacks
}
