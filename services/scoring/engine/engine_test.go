package engine

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
)

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

func after(d time.Duration) time.Time { return t0.Add(d) }

// Places used across the tests.
var (
	nyc      = ClientInfo{IP: "198.51.100.10", Lat: 40.71427, Lon: -74.00597, HasGeo: true, Country: "US", City: "New York", ASN: 7922, DeviceID: "laptop-1"}
	nycOther = ClientInfo{IP: "198.51.100.99", Lat: 40.73, Lon: -73.99, HasGeo: true, Country: "US", City: "New York", ASN: 7922, DeviceID: "laptop-1"}
	la       = ClientInfo{IP: "203.0.113.5", Lat: 34.05223, Lon: -118.24368, HasGeo: true, Country: "US", City: "Los Angeles", ASN: 7018}
	anaheim  = ClientInfo{IP: "203.0.113.6", Lat: 33.8085, Lon: -117.9228, HasGeo: true, Country: "US", City: "Anaheim", ASN: 7018}
	boston   = ClientInfo{IP: "192.0.2.20", Lat: 42.3601, Lon: -71.0589, HasGeo: true, Country: "US", City: "Boston", ASN: 7922}
	auckland = ClientInfo{IP: "12.12.12.12", Lat: -36.84853, Lon: 174.76349, HasGeo: true, Country: "NZ", City: "Auckland", ASN: 9500, DeviceID: "kali"}
	vpnAMS   = ClientInfo{IP: "185.1.1.1", Lat: 52.37, Lon: 4.89, HasGeo: true, Country: "NL", City: "Amsterdam", ASN: 9009, ASOrg: "M247 Europe SRL"}
	satVA    = ClientInfo{IP: "164.86.38.26", Lat: 38.953, Lon: -77.2295, HasGeo: true, Country: "US", City: "Tysons Corner", ASN: 22351, ASOrg: "INTELSAT GLOBAL SERVICE CORPORATION"}
	noGeo    = ClientInfo{IP: "192.0.2.77"}
	nullIsl  = ClientInfo{IP: "192.0.2.78", Lat: 0, Lon: 0, HasGeo: true}
)

func withAcc(ci ClientInfo, km float64) ClientInfo { ci.AccuracyKm = km; return ci }

func ob(kind ObservationKind, at time.Time, ci ClientInfo) Observation {
	return Observation{Kind: kind, At: at, Client: ci}
}

func signal(ra *scoringv1.RiskAssessment, code string) *scoringv1.Signal {
	for _, s := range ra.GetSignals() {
		if s.GetCode() == code {
			return s
		}
	}
	return nil
}

func window(ra *scoringv1.RiskAssessment, name string) *scoringv1.WindowCount {
	for _, w := range ra.GetWindows() {
		if fmtWindow(w.GetWindow().AsDuration()) == name {
			return w
		}
	}
	return nil
}

// run records the observations in order and returns the last assessment.
func run(c Config, s *UserState, obs ...Observation) *scoringv1.RiskAssessment {
	var ra *scoringv1.RiskAssessment
	for _, o := range obs {
		ra, _ = c.Record("alice", s, o, nil)
	}
	return ra
}

func TestImpossibleTravel(t *testing.T) {
	c := DefaultConfig()
	tests := []struct {
		name     string
		history  []Observation
		attempt  Observation
		fires    bool
		minConf  float64
		maxConf  float64
		discount string
	}{
		{name: "first seen user", attempt: ob(ObsAttempt, after(0), auckland)},
		{name: "new york to auckland in 2h", history: []Observation{ob(ObsLoginSucceeded, after(0), nyc)},
			attempt: ob(ObsAttempt, after(2*time.Hour), auckland), fires: true, minConf: 1, maxConf: 1},
		{name: "approval is a trusted location", history: []Observation{ob(ObsPushApproved, after(0), nyc)},
			attempt: ob(ObsAttempt, after(2*time.Hour), auckland), fires: true, minConf: 1, maxConf: 1},
		{name: "same ip", history: []Observation{ob(ObsLoginSucceeded, after(0), nyc)},
			attempt: ob(ObsAttempt, after(time.Minute), ClientInfo{IP: nyc.IP, Lat: auckland.Lat, Lon: auckland.Lon, HasGeo: true})},
		{name: "airliner new york to los angeles", history: []Observation{ob(ObsLoginSucceeded, after(0), nyc)},
			attempt: ob(ObsAttempt, after(6*time.Hour), la)},
		{name: "jitter: 40 km in 2 minutes", history: []Observation{ob(ObsLoginSucceeded, after(0), la)},
			attempt: ob(ObsAttempt, after(2*time.Minute), anaheim), fires: true, minConf: 0.25, maxConf: 0.25, discount: "jitter"},
		{name: "jitter absorbed by accuracy radii", history: []Observation{ob(ObsLoginSucceeded, after(0), withAcc(la, 20))},
			attempt: ob(ObsAttempt, after(2*time.Minute), withAcc(anaheim, 20))},
		{name: "40 km after 10 minutes is a short trip at 240 km/h", history: []Observation{ob(ObsLoginSucceeded, after(0), la)},
			attempt: ob(ObsAttempt, after(10*time.Minute), anaheim)},
		{name: "regional jump new york to boston in 5 minutes", history: []Observation{ob(ObsLoginSucceeded, after(0), nyc)},
			attempt: ob(ObsAttempt, after(5*time.Minute), boston), fires: true, minConf: 0.5, maxConf: 0.5, discount: "regional"},
		{name: "radii shrink the distance below the speed", history: []Observation{ob(ObsLoginSucceeded, after(0), withAcc(nyc, 100))},
			attempt: ob(ObsAttempt, after(15*time.Minute), withAcc(boston, 100))},
		{name: "vpn exit lowers confidence", history: []Observation{ob(ObsLoginSucceeded, after(0), nyc)},
			attempt: ob(ObsAttempt, after(time.Hour), vpnAMS), fires: true, minConf: 0.1, maxConf: 0.1, discount: "anonymizer"},
		{name: "in-flight satellite lowers confidence", history: []Observation{ob(ObsLoginSucceeded, after(0), auckland)},
			attempt: ob(ObsAttempt, after(3*time.Hour), satVA), fires: true, minConf: 0.1, maxConf: 0.1, discount: "anonymizer"},
		{name: "missing geo is unknown", history: []Observation{ob(ObsLoginSucceeded, after(0), nyc)},
			attempt: ob(ObsAttempt, after(time.Minute), noGeo)},
		{name: "(0,0) now is unknown", history: []Observation{ob(ObsLoginSucceeded, after(0), nyc)},
			attempt: ob(ObsAttempt, after(time.Minute), nullIsl)},
		{name: "(0,0) before is unknown", history: []Observation{ob(ObsLoginSucceeded, after(0), nullIsl)},
			attempt: ob(ObsAttempt, after(time.Minute), auckland)},
		{name: "failed login is not trusted", history: []Observation{ob(ObsLoginFailed, after(0), nyc)},
			attempt: ob(ObsAttempt, after(time.Minute), auckland)},
		{name: "failed login far away is still measured", history: []Observation{ob(ObsLoginSucceeded, after(0), nyc)},
			attempt: ob(ObsLoginFailed, after(time.Hour), auckland), fires: true, minConf: 1, maxConf: 1},
		{name: "vpn login never becomes the trusted location", history: []Observation{ob(ObsLoginSucceeded, after(0), nyc), ob(ObsLoginSucceeded, after(time.Hour), vpnAMS)},
			attempt: ob(ObsAttempt, after(2*time.Hour), nycOther)},
		{name: "out of order: earlier event arrives after a later trusted login", history: []Observation{ob(ObsLoginSucceeded, after(3*time.Hour), nyc)},
			attempt: ob(ObsLoginSucceeded, after(time.Hour), auckland), fires: true, minConf: 1, maxConf: 1},
		{name: "two places at once", history: []Observation{ob(ObsLoginSucceeded, after(0), nyc)},
			attempt: ob(ObsAttempt, after(0), la), fires: true, minConf: 1, maxConf: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &UserState{}
			run(c, s, tt.history...)
			ra, _ := c.Record("alice", s, tt.attempt, nil)
			sig := signal(ra, SignalImpossibleTravel)
			if (sig != nil) != tt.fires {
				t.Fatalf("IMPOSSIBLE_TRAVEL fired = %v, want %v (%v)", sig != nil, tt.fires, ra.GetSignals())
			}
			if sig == nil {
				return
			}
			if conf := sig.GetConfidence(); conf < tt.minConf-1e-9 || conf > tt.maxConf+1e-9 {
				t.Errorf("confidence = %v, want %v..%v", conf, tt.minConf, tt.maxConf)
			}
			tr := sig.GetTravel()
			if tr.GetDiscount() != tt.discount {
				t.Errorf("discount = %q, want %q", tr.GetDiscount(), tt.discount)
			}
			if tr.GetSpeedKmh() <= c.Travel.MaxSpeedKmh || tr.GetDistanceKm() <= 0 || tr.GetPrevious().GetTime() == nil || tr.GetCurrent().GetIp() != tt.attempt.Client.IP {
				t.Errorf("evidence incomplete: %v", tr)
			}
			if want := int32(float64(c.Travel.Weight)*sig.GetConfidence() + 0.5); sig.GetWeight() != want {
				t.Errorf("weight = %d, want %d", sig.GetWeight(), want)
			}
			if tt.discount == "anonymizer" && signal(ra, SignalAnonymizer) == nil {
				t.Errorf("ANONYMIZER missing")
			}
		})
	}
}

func TestTravelFindingPersists(t *testing.T) {
	c := DefaultConfig()
	s := &UserState{}
	run(c, s, ob(ObsLoginSucceeded, after(0), nyc), ob(ObsAttempt, after(2*time.Hour), auckland))
	if signal(c.Assess("alice", s, after(2*time.Hour+30*time.Minute)), SignalImpossibleTravel) == nil {
		t.Fatal("IMPOSSIBLE_TRAVEL gone 30 minutes later")
	}
	if signal(c.Assess("alice", s, after(3*time.Hour+time.Second)), SignalImpossibleTravel) != nil {
		t.Fatal("IMPOSSIBLE_TRAVEL still there after FindingTTL")
	}
}

func TestPushBurstAtTheCrossingPush(t *testing.T) {
	c := DefaultConfig()
	tests := []struct {
		name    string
		spacing time.Duration
		n       int
		window  string
		fireAt  int
	}{
		{"3 in a minute", 10 * time.Second, 3, "1m", 3},
		{"3 in 5 minutes", 2 * time.Minute, 3, "5m", 3},
		{"5 in 10 minutes", 2 * time.Minute, 5, "10m", 3},
		{"sparse pushes never burst", 6 * time.Minute, 8, "10m", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &UserState{}
			for i := 1; i <= tt.n; i++ {
				ra, _ := c.Record("alice", s, Observation{ID: fmt.Sprint(i), Kind: ObsAttempt, At: after(time.Duration(i) * tt.spacing)}, nil)
				fired := signal(ra, SignalPushBurst) != nil
				if want := tt.fireAt > 0 && i >= tt.fireAt; fired != want {
					t.Fatalf("push %d: PUSH_BURST = %v, want %v (%v)", i, fired, want, ra.GetWindows())
				}
				if tt.fireAt > 0 && i == c.BurstThresholds[parseWindow(tt.window)] && int(window(ra, tt.window).GetPushes()) != i {
					t.Fatalf("push %d: %s window holds %d", i, tt.window, window(ra, tt.window).GetPushes())
				}
			}
		})
	}
	// The policy's lines: the 3rd push in 5 minutes and the 5th in 10
	// minutes are in the windows at the push that crosses them.
	s := &UserState{}
	var ra *scoringv1.RiskAssessment
	for i := 1; i <= 5; i++ {
		ra, _ = c.Record("alice", s, Observation{ID: fmt.Sprint(i), Kind: ObsAttempt, At: after(time.Duration(i) * 2 * time.Minute)}, nil)
		if i == 3 && window(ra, "5m").GetPushes() != 3 {
			t.Fatalf("3rd push: 5m = %d", window(ra, "5m").GetPushes())
		}
	}
	if window(ra, "10m").GetPushes() != 5 {
		t.Fatalf("5th push: 10m = %d", window(ra, "10m").GetPushes())
	}
}

func parseWindow(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}

func TestPushCounting(t *testing.T) {
	c := DefaultConfig()
	tests := []struct {
		name string
		obs  []Observation
		want int32
	}{
		{"retried attempt counted once", []Observation{{ID: "a", Kind: ObsAttempt, At: after(0)}, {ID: "a", Kind: ObsAttempt, At: after(0)}}, 1},
		{"attempt and its sent event are one push", []Observation{{ID: "a", Kind: ObsAttempt, At: after(0)}, {ID: "e1", Kind: ObsPushSent, At: after(time.Second)}}, 1},
		{"sent and denied from logs are one push", []Observation{{ID: "e1", Kind: ObsPushSent, At: after(0)}, {ID: "e2", Kind: ObsPushDenied, At: after(time.Second)}}, 1},
		{"answers alone count (Duo logs one entry a push)", []Observation{{ID: "e1", Kind: ObsPushDenied, At: after(0)}, {ID: "e2", Kind: ObsPushTimedOut, At: after(time.Second)}, {ID: "e3", Kind: ObsPushApproved, At: after(2 * time.Second)}}, 3},
		{"suppression of a counted attempt adds nothing", []Observation{{ID: "a", Kind: ObsAttempt, At: after(0)}, {ID: "s", Kind: ObsPushSuppressed, At: after(0)}}, 1},
		{"out of order pushes all land in the window", []Observation{{ID: "3", Kind: ObsAttempt, At: after(3 * time.Minute)}, {ID: "1", Kind: ObsAttempt, At: after(time.Minute)}, {ID: "2", Kind: ObsAttempt, At: after(2 * time.Minute)}}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &UserState{}
			run(c, s, tt.obs...)
			if got := window(c.Assess("alice", s, after(4*time.Minute)), "5m").GetPushes(); got != tt.want {
				t.Fatalf("pushes = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestDenialStreak(t *testing.T) {
	c := DefaultConfig()
	deny := func(id string, d time.Duration) Observation {
		return Observation{ID: id, Kind: ObsPushDenied, At: after(d)}
	}
	tests := []struct {
		name string
		obs  []Observation
		at   time.Duration
		want int32 // streak length, 0 when no signal
	}{
		{"two is not a streak", []Observation{deny("1", 0), deny("2", time.Minute)}, 2 * time.Minute, 0},
		{"three denials", []Observation{deny("1", 0), deny("2", time.Minute), {ID: "3", Kind: ObsPushTimedOut, At: after(2 * time.Minute)}}, 3 * time.Minute, 3},
		{"approval ends it", []Observation{deny("1", 0), deny("2", time.Minute), deny("3", 2*time.Minute), {ID: "a", Kind: ObsPushApproved, At: after(3 * time.Minute)}}, 4 * time.Minute, 0},
		{"late approval older than the streak does not end it", []Observation{deny("1", 10*time.Minute), deny("2", 11*time.Minute), deny("3", 12*time.Minute), {ID: "a", Kind: ObsPushApproved, At: after(time.Minute)}}, 13 * time.Minute, 3},
		{"late denial older than the approval does not extend it", []Observation{{ID: "a", Kind: ObsPushApproved, At: after(10 * time.Minute)}, deny("1", 11*time.Minute), deny("2", 12*time.Minute), deny("0", 5*time.Minute)}, 13 * time.Minute, 0},
		{"expires an hour after its last push", []Observation{deny("1", 0), deny("2", time.Minute), deny("3", 2*time.Minute)}, 62 * time.Minute, 0},
		{"duplicates do not lengthen it", []Observation{deny("1", 0), deny("1", 0), deny("2", time.Minute), deny("2", time.Minute)}, 2 * time.Minute, 0},
		{"a gap past the expiry starts a new one", []Observation{deny("1", 0), deny("2", 2*time.Hour), deny("3", 4*time.Hour)}, 4*time.Hour + time.Minute, 0},
		{"the new one counts on", []Observation{deny("1", 0), deny("2", 2*time.Hour), deny("3", 2*time.Hour+time.Minute), deny("4", 2*time.Hour+2*time.Minute)}, 2*time.Hour + 3*time.Minute, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &UserState{}
			run(c, s, tt.obs...)
			sig := signal(c.Assess("alice", s, after(tt.at)), SignalDenialStreak)
			if got := sig.GetStreak().GetLength(); got != tt.want {
				t.Fatalf("streak = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestApprovalAfterBurst(t *testing.T) {
	c := DefaultConfig()
	var fatigue []Observation
	for i := range 4 {
		fatigue = append(fatigue, Observation{ID: fmt.Sprint("p", i), Kind: ObsAttempt, At: after(time.Duration(i) * 30 * time.Second), Client: auckland})
		fatigue = append(fatigue, Observation{ID: fmt.Sprint("t", i), Kind: ObsPushTimedOut, At: after(time.Duration(i)*30*time.Second + 20*time.Second)})
	}
	approve := Observation{ID: "ok", Kind: ObsPushApproved, At: after(2*time.Minute + 10*time.Second), Client: auckland}
	var wanted []Observation // three pushes in three minutes, each approved at once
	for i := range 3 {
		at := time.Duration(i) * 90 * time.Second
		wanted = append(wanted, Observation{ID: fmt.Sprint("w", i), Kind: ObsPushSent, At: after(at)},
			Observation{ID: fmt.Sprint("wa", i), Kind: ObsPushApproved, At: after(at + 5*time.Second)})
	}
	tests := []struct {
		name  string
		obs   []Observation
		fires bool
	}{
		{"approval after a burst of timeouts", append(append([]Observation{}, fatigue...), approve), true},
		{"three wanted pushes, each approved", wanted, false},
		{"approval arriving before its timeouts", append([]Observation{approve}, fatigue...), true},
		{"approval after a streak spread over an hour", []Observation{
			{ID: "d1", Kind: ObsPushDenied, At: after(0)}, {ID: "d2", Kind: ObsPushDenied, At: after(20 * time.Minute)},
			{ID: "d3", Kind: ObsPushDenied, At: after(40 * time.Minute)}, {ID: "ok", Kind: ObsPushApproved, At: after(50 * time.Minute)}}, true},
		{"ordinary approval", []Observation{{ID: "p", Kind: ObsAttempt, At: after(0)}, {ID: "ok", Kind: ObsPushApproved, At: after(10 * time.Second)}}, false},
		{"approval after one denial", []Observation{{ID: "d", Kind: ObsPushDenied, At: after(0)}, {ID: "ok", Kind: ObsPushApproved, At: after(time.Minute)}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &UserState{}
			run(c, s, tt.obs...)
			now := after(2*time.Minute + 10*time.Second)
			switch tt.name {
			case "approval after a streak spread over an hour":
				now = after(50 * time.Minute)
			case "three wanted pushes, each approved":
				now = after(3*time.Minute + 5*time.Second)
			}
			ra := c.Assess("alice", s, now)
			sig := signal(ra, SignalApprovalAfterBurst)
			if (sig != nil) != tt.fires {
				t.Fatalf("APPROVAL_AFTER_BURST = %v, want %v (%v)", sig != nil, tt.fires, ra.GetSignals())
			}
			if !tt.fires {
				return
			}
			if sig.GetWeight() != c.AfterBurst.Weight || ra.GetSignals()[0] != sig {
				t.Fatalf("fatigue success does not stand out: weight %d, signals %v", sig.GetWeight(), ra.GetSignals())
			}
			if ra.GetScore() < 90 {
				t.Fatalf("score = %d", ra.GetScore())
			}
			if sig.GetBurst().GetApprovedAt() == nil {
				t.Fatal("no approval time in the evidence")
			}
			// It persists, decays, then goes.
			later := c.Assess("alice", s, now.Add(12*time.Hour))
			if w := signal(later, SignalApprovalAfterBurst).GetWeight(); w != 45 {
				t.Fatalf("weight after 12h = %d, want 45", w)
			}
			if signal(c.Assess("alice", s, now.Add(c.AfterBurst.Hold)), SignalApprovalAfterBurst) != nil {
				t.Fatal("still there after the hold")
			}
		})
	}
}

func TestFatigueApprovalIsNotTrusted(t *testing.T) {
	c := DefaultConfig()
	s := &UserState{}
	run(c, s, ob(ObsLoginSucceeded, after(0), nyc))
	for i := range 3 {
		run(c, s, Observation{ID: fmt.Sprint(i), Kind: ObsPushDenied, At: after(time.Hour + time.Duration(i)*time.Minute)})
	}
	run(c, s, Observation{ID: "ok", Kind: ObsPushApproved, At: after(time.Hour + 5*time.Minute), Client: auckland},
		Observation{ID: "login", Kind: ObsLoginSucceeded, At: after(time.Hour + 6*time.Minute), Client: auckland})
	if s.LastTrusted.IP != nyc.IP || len(s.Countries) != 1 {
		t.Fatalf("fatigue success became trusted: %+v %v", s.LastTrusted, s.Countries)
	}
}

func TestFraudReported(t *testing.T) {
	c := DefaultConfig()
	s := &UserState{}
	run(c, s, Observation{ID: "f", Kind: ObsFraudReported, At: after(0)})
	tests := []struct {
		at   time.Duration
		want int32
	}{
		{0, 80}, {12 * time.Hour, 40}, {22 * time.Hour, 20}, {24 * time.Hour, 0}, {-time.Minute, 0},
	}
	for _, tt := range tests {
		if got := signal(c.Assess("alice", s, after(tt.at)), SignalFraudReported).GetWeight(); got != tt.want {
			t.Errorf("at %s: weight %d, want %d", tt.at, got, tt.want)
		}
	}
}

func TestResponseLocationMismatch(t *testing.T) {
	c := DefaultConfig()
	tests := []struct {
		name      string
		client    ClientInfo
		responder ClientInfo
		fires     bool
		conf      float64
	}{
		{"phone in new york, login from auckland", auckland, nyc, true, 1},
		{"phone and laptop in the same city", nyc, nycOther, false, 0},
		{"same ip", nyc, nyc, false, 0},
		{"responder unknown", auckland, noGeo, false, 0},
		{"responder at (0,0)", auckland, nullIsl, false, 0},
		{"close enough after radii", nyc, withAcc(boston, 200), false, 0},
		{"phone behind vpn", nyc, vpnAMS, true, 0.1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &UserState{}
			ra, _ := c.Record("alice", s, Observation{ID: "a", Kind: ObsPushApproved, At: after(0), Client: tt.client, Responder: tt.responder}, nil)
			sig := signal(ra, SignalResponseMismatch)
			if (sig != nil) != tt.fires {
				t.Fatalf("RESPONSE_LOCATION_MISMATCH = %v, want %v", sig != nil, tt.fires)
			}
			if sig != nil && (sig.GetConfidence() != tt.conf || sig.GetTravel().GetDistanceKm() < c.Mismatch.MinKm) {
				t.Fatalf("signal %v", sig)
			}
			if sig != nil && s.LastTrusted.At != 0 {
				t.Fatal("a mismatched approval became the trusted location")
			}
		})
	}
}

func TestNovelty(t *testing.T) {
	c := DefaultConfig()
	tests := []struct {
		name    string
		history []Observation
		client  ClientInfo
		want    []string
	}{
		{"first seen user: nothing is new", nil, auckland, nil},
		{"known device, country and network", []Observation{ob(ObsLoginSucceeded, after(0), nyc)}, nycOther, nil},
		{"new everything", []Observation{ob(ObsLoginSucceeded, after(0), nyc)}, auckland, []string{SignalNewDevice, SignalNewCountry, SignalNewASN}},
		{"failed logins teach nothing", []Observation{ob(ObsLoginSucceeded, after(0), nyc), ob(ObsLoginFailed, after(time.Hour), auckland)}, auckland, []string{SignalNewDevice, SignalNewCountry, SignalNewASN}},
		{"anonymizer network is not a new country", []Observation{ob(ObsLoginSucceeded, after(0), nyc)}, vpnAMS, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &UserState{}
			run(c, s, tt.history...)
			ra, _ := c.Record("alice", s, ob(ObsAttempt, after(48*time.Hour), tt.client), nil)
			for _, code := range []string{SignalNewDevice, SignalNewCountry, SignalNewASN} {
				want := false
				for _, w := range tt.want {
					want = want || w == code
				}
				if got := signal(ra, code) != nil; got != want {
					t.Errorf("%s = %v, want %v", code, got, want)
				}
			}
		})
	}
	// Against a short history a new value is a weaker sign.
	s0 := &UserState{}
	run(c, s0, ob(ObsLoginSucceeded, after(0), nyc))
	ra0, _ := c.Record("alice", s0, ob(ObsAttempt, after(48*time.Hour), auckland), nil)
	if sig := signal(ra0, SignalNewDevice); sig.GetConfidence() != c.Novelty.FewKnownConfidence || sig.GetWeight() != c.Novelty.DeviceWeight {
		t.Fatalf("new device against one known: %v", sig)
	}
	// The history is bounded: the 21st device pushes the first out.
	s := &UserState{}
	for i := range 21 {
		run(c, s, ob(ObsLoginSucceeded, after(time.Duration(i)*time.Hour), ClientInfo{DeviceID: fmt.Sprint("dev", i)}))
	}
	if len(s.Devices) != c.HistoryLimit {
		t.Fatalf("devices = %d", len(s.Devices))
	}
	ra, _ := c.Record("alice", s, ob(ObsAttempt, after(30*time.Hour), ClientInfo{DeviceID: "dev0"}), nil)
	if sig := signal(ra, SignalNewDevice); sig == nil || sig.GetNovelty().GetKnown() != 20 || sig.GetConfidence() != 1 {
		t.Fatalf("evicted device not new: %v", sig)
	}
}

func TestAnonymizerKinds(t *testing.T) {
	a := DefaultAnonymizers()
	tests := []struct {
		ci   ClientInfo
		want string
	}{
		{ClientInfo{ASN: 22351}, AnonSatellite},
		{ClientInfo{ASN: 36183}, AnonRelay},
		{ClientInfo{ASN: 16509}, AnonHosting},
		{ClientInfo{ASN: 1, ASOrg: "Mullvad VPN AB"}, AnonVPN},
		{ClientInfo{ASN: 1, ASOrg: "Example In-Flight Connectivity"}, AnonSatellite},
		{ClientInfo{ASN: 7922, ASOrg: "COMCAST-7922"}, ""},
		{ClientInfo{ASN: 7922, Anonymizer: AnonTor}, AnonTor},
		{ClientInfo{ASN: 9009, Anonymizer: AnonTor}, AnonTor},   // a specific flag wins over the list
		{ClientInfo{ASN: 9009, Anonymizer: AnonProxy}, AnonVPN}, // the list wins over "proxy"
		{ClientInfo{ASN: 7922, Anonymizer: AnonProxy}, AnonProxy},
		{ClientInfo{}, ""},
	}
	for _, tt := range tests {
		if got := a.Kind(tt.ci); got != tt.want {
			t.Errorf("Kind(%+v) = %q, want %q", tt.ci, got, tt.want)
		}
	}
	ra, _ := DefaultConfig().Record("alice", &UserState{}, ob(ObsAttempt, after(0), vpnAMS), nil)
	sig := signal(ra, SignalAnonymizer)
	if sig == nil || sig.GetWeight() != 0 || sig.GetAnonymizer().GetAsn() != 9009 || ra.GetScore() != 0 {
		t.Fatalf("anonymizer must explain, not raise risk: %v score %d", sig, ra.GetScore())
	}
}

func TestSpray(t *testing.T) {
	c := DefaultConfig()
	src := &SourceState{}
	for i := range 6 {
		sc := c.NoteSource(src, fmt.Sprint("user", i), after(time.Duration(i)*time.Minute), i%2 == 0)
		if sc.Users != i+1 || sc.Dormant != i/2+1 {
			t.Fatalf("user %d: %+v", i, sc)
		}
	}
	if sc := c.NoteSource(src, "user0", after(6*time.Minute), true); sc.Users != 6 {
		t.Fatalf("repeat user counted twice: %+v", sc)
	}
	if sc := c.SourceUsers(src, after(14*time.Minute+30*time.Second)); sc.Users != 2 || sc.Dormant != 1 {
		t.Fatalf("window slide: %+v", sc)
	}
	if !c.VouchSource(src, "user5") || c.VouchSource(src, "user5") {
		t.Fatal("a user who succeeded from the source must stop counting, once")
	}
	// user5 vouched, and offsets user4, the one dormant user left.
	if sc := c.SourceUsers(src, after(14*time.Minute+30*time.Second)); sc != (SprayCount{Vouched: 1}) {
		t.Fatalf("after the vouch: %+v", sc)
	}
	// Back at 7m: users 0-4 unvouched, three of them dormant, one offset by user5.
	if sc := c.NoteSource(src, "user5", after(7*time.Minute), false); sc != (SprayCount{Users: 4, Dormant: 2, Vouched: 1}) {
		t.Fatalf("a vouched user pushing again counted: %+v", sc)
	}
	// A dormant user who gained history since counts as the last push saw them.
	if sc := c.NoteSource(src, "user0", after(7*time.Minute), false); sc.Dormant != 1 {
		t.Fatalf("dormant after user0 gained history: %+v", sc)
	}
	for i := range 100 {
		c.NoteSource(src, fmt.Sprint("many", i), after(7*time.Minute), i%3 == 0)
	}
	if len(src.Users) != c.Spray.MaxUsers {
		t.Fatalf("source state unbounded: %d", len(src.Users))
	}
	b, _ := src.MarshalBinary()
	var back SourceState
	if err := back.UnmarshalBinary(b); err != nil || !slices.Equal(back.Users, src.Users) {
		t.Fatalf("round trip: %v", err)
	}

	tests := []struct {
		name    string
		counts  []SprayCount
		want    int32
		dormant int32
		// conf: users with history alone reach the threshold (1), or
		// only with accounts that have none (DormantConfidence).
		conf float64
	}{
		{"below threshold", []SprayCount{{IP: "1.2.3.4", Users: 4}, {ASN: 9500, Users: 4}}, 0, 0, 0},
		{"ip at threshold", []SprayCount{{IP: "1.2.3.4", Users: 5}}, 40, 0, 1},
		{"ip at threshold, dormant accounts", []SprayCount{{IP: "1.2.3.4", Users: 5, Dormant: 5}}, 40, 5, c.Spray.DormantConfidence},
		{"asn far over", []SprayCount{{IP: "1.2.3.4", Users: 5}, {ASN: 9500, Users: 40, Dormant: 12}}, 70, 12, 1},
		{"vouched users in the evidence", []SprayCount{{IP: "1.2.3.4", Users: 6, Dormant: 2, Vouched: 3}}, 45, 2, c.Spray.DormantConfidence},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ra, _ := c.Record("alice", &UserState{}, ob(ObsAttempt, after(0), auckland), tt.counts)
			sig := signal(ra, SignalPushSpray)
			if sig.GetWeight() != tt.want || sig.GetSpray().GetDormantUsers() != tt.dormant || sig.GetConfidence() != tt.conf {
				t.Fatalf("weight = %d, dormant = %d, confidence %.2f, want %d, %d, %.2f", sig.GetWeight(), sig.GetSpray().GetDormantUsers(), sig.GetConfidence(), tt.want, tt.dormant, tt.conf)
			}
			if tt.dormant > 0 && !strings.Contains(sig.GetSummary(), fmt.Sprintf("%d of them with no history", tt.dormant)) {
				t.Fatalf("summary does not say dormant accounts were counted: %q", sig.GetSummary())
			}
			for _, sc := range tt.counts {
				if sig != nil && sc.IP == sig.GetSpray().GetSourceIp() && sig.GetSpray().GetVouchedUsers() != int32(sc.Vouched) {
					t.Fatalf("vouched users %d, want %d", sig.GetSpray().GetVouchedUsers(), sc.Vouched)
				}
			}
		})
	}
}

// TestSourceStateReadsVersionOneMarks: marks written before dormant
// accounts were flagged (vouched as 0 or 1) decode as they did.
func TestSourceStateReadsVersionOneMarks(t *testing.T) {
	b := []byte{sourceVersion, 2}
	b = binary.LittleEndian.AppendUint64(b, 7)
	b = binary.AppendVarint(b, 1000)
	b = append(b, 1)
	b = binary.LittleEndian.AppendUint64(b, 8)
	b = binary.AppendVarint(b, 5)
	b = append(b, 0)
	var src SourceState
	want := []SourceUser{{User: 7, At: 1000, Vouched: true}, {User: 8, At: 1005}}
	if err := src.UnmarshalBinary(b); err != nil || !slices.Equal(src.Users, want) {
		t.Fatalf("version 1: %+v, %v", src.Users, err)
	}
}

// TestVouchedUsersOffsetDormantOnly: a class of new hires has some first
// pushes unanswered while classmates have approved; each approval offsets
// one dormant user, never a user with history, and no more than one.
func TestVouchedUsersOffsetDormantOnly(t *testing.T) {
	c := DefaultConfig()
	tests := []struct {
		name                     string
		dormant, active, vouched int
		want                     SprayCount
	}{
		{"spray of dormant accounts, nobody vouched", 12, 0, 0, SprayCount{Users: 12, Dormant: 12}},
		{"new hires: as many approved as wait", 6, 0, 6, SprayCount{Vouched: 6}},
		{"new hires: more wait than approved", 8, 0, 3, SprayCount{Users: 5, Dormant: 5, Vouched: 3}},
		{"users with history are not offset", 2, 6, 4, SprayCount{Users: 6, Vouched: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &SourceState{}
			at := after(0)
			for i := range tt.vouched {
				c.NoteSource(src, fmt.Sprint("approved", i), at, true)
				c.VouchSource(src, fmt.Sprint("approved", i))
			}
			for i := range tt.active {
				c.NoteSource(src, fmt.Sprint("active", i), at, false)
			}
			for i := range tt.dormant {
				c.NoteSource(src, fmt.Sprint("dormant", i), at, true)
			}
			if got := c.SourceUsers(src, at); got != tt.want {
				t.Fatalf("SourceUsers = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestFamiliar(t *testing.T) {
	c := DefaultConfig()
	s := &UserState{}
	if c.Familiar(s, auckland) || !c.Dormant(s) {
		t.Fatal("a user without history knows no network")
	}
	run(c, s, ob(ObsLoginSucceeded, after(0), nyc))
	if c.Dormant(s) || !c.Familiar(s, nycOther) || !c.Familiar(s, ClientInfo{IP: nyc.IP}) || c.Familiar(s, auckland) {
		t.Fatal("familiarity wrong")
	}
}

// TestSprayRole: which pushes count toward their source, and which
// successes vouch for it. The attacker holds passwords and nothing else,
// so nothing they can produce from their own source may vouch.
func TestSprayRole(t *testing.T) {
	c := DefaultConfig()
	approvedFar := Observation{Kind: ObsPushApproved, At: after(time.Hour), Client: auckland, Responder: nyc}
	tests := []struct {
		name    string
		history []Observation
		o       Observation
		want    SprayRole
	}{
		{"push to a user with no history", nil, ob(ObsAttempt, after(0), auckland), SprayDormant},
		{"push sent to a user with no history", nil, ob(ObsPushSent, after(0), auckland), SprayDormant},
		{"failed logins are no history", []Observation{ob(ObsLoginFailed, after(0), nyc), ob(ObsPrimaryAuth, after(time.Second), nyc)},
			ob(ObsAttempt, after(time.Minute), nyc), SprayDormant},
		{"push from an unfamiliar network", []Observation{ob(ObsLoginSucceeded, after(0), nyc)}, ob(ObsAttempt, after(time.Hour), auckland), SprayCounted},
		{"push from the user's network", []Observation{ob(ObsLoginSucceeded, after(0), nyc)}, ob(ObsAttempt, after(time.Hour), nycOther), SprayIgnored},
		{"approval on the user's device", []Observation{ob(ObsAttempt, after(0), auckland)},
			Observation{Kind: ObsPushApproved, At: after(20 * time.Second), Client: auckland, Responder: withAcc(auckland, 100)}, SprayVouches},
		{"approval without a responder location", []Observation{ob(ObsAttempt, after(0), auckland)}, ob(ObsPushApproved, after(20*time.Second), auckland), SprayVouches},
		{"phishing-resistant login", nil, Observation{Kind: ObsLoginSucceeded, At: after(0), Client: auckland, PhishingResistant: true}, SprayVouches},
		{"login with a password or a code", nil, ob(ObsLoginSucceeded, after(0), auckland), SprayIgnored},
		{"verified password", nil, ob(ObsPrimaryAuth, after(0), auckland), SprayIgnored},
		{"enrolment", nil, ob(ObsFactorEnrolled, after(0), auckland), SprayIgnored},
		{"approval far from the login", []Observation{ob(ObsLoginSucceeded, after(0), nyc), ob(ObsAttempt, after(time.Hour), auckland)}, approvedFar, SprayIgnored},
		{"approval that ends a burst", []Observation{
			ob(ObsAttempt, after(0), auckland), ob(ObsPushDenied, after(10*time.Second), auckland),
			ob(ObsAttempt, after(20*time.Second), auckland), ob(ObsPushDenied, after(30*time.Second), auckland),
			ob(ObsAttempt, after(40*time.Second), auckland)}, ob(ObsPushApproved, after(50*time.Second), auckland), SprayIgnored},
		{"approval while a fatigue success is fresh", []Observation{
			ob(ObsAttempt, after(0), auckland), ob(ObsPushDenied, after(10*time.Second), auckland),
			ob(ObsAttempt, after(20*time.Second), auckland), ob(ObsPushDenied, after(30*time.Second), auckland),
			ob(ObsAttempt, after(40*time.Second), auckland), ob(ObsPushApproved, after(50*time.Second), auckland),
			ob(ObsAttempt, after(20*time.Minute), auckland)}, ob(ObsPushApproved, after(20*time.Minute+10*time.Second), auckland), SprayIgnored},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &UserState{}
			run(c, s, tt.history...)
			if got := c.SprayRole(s, tt.o); got != tt.want {
				t.Fatalf("SprayRole = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestCombine(t *testing.T) {
	tests := []struct {
		weights []int32
		want    int32
	}{
		{nil, 0},
		{[]int32{0}, 0},
		{[]int32{30}, 30},
		{[]int32{30, 25}, 48},
		{[]int32{25, 30}, 48},
		{[]int32{90, 50, 50}, 98},
		{[]int32{100, 10}, 100},
		{[]int32{150, -5}, 100},
	}
	for _, tt := range tests {
		if got := Combine(tt.weights...); got != tt.want {
			t.Errorf("Combine(%v) = %d, want %d", tt.weights, got, tt.want)
		}
	}
}

func TestDeterministic(t *testing.T) {
	c := DefaultConfig()
	obs := []Observation{ob(ObsLoginSucceeded, after(0), nyc), {ID: "1", Kind: ObsPushDenied, At: after(time.Hour)},
		{ID: "2", Kind: ObsAttempt, At: after(time.Hour), Client: auckland}, {ID: "3", Kind: ObsAttempt, At: after(time.Hour + time.Second), Client: auckland}}
	a, b := &UserState{}, &UserState{}
	ra, rb := run(c, a, obs...), run(c, b, obs...)
	if fmt.Sprint(ra) != fmt.Sprint(rb) {
		t.Fatalf("same inputs, different outputs:\n%v\n%v", ra, rb)
	}
}

func TestExpired(t *testing.T) {
	c := DefaultConfig()
	s := &UserState{}
	run(c, s, ob(ObsLoginSucceeded, after(0), nyc))
	if c.Expired(s, after(c.IdleTTL)) || !c.Expired(s, after(c.IdleTTL+time.Millisecond)) || c.Expired(&UserState{}, after(100*c.IdleTTL)) {
		t.Fatal("idle expiry wrong")
	}
}

// TestPrimaryAuthVouchesForNothing: a verified password (Okta's
// user.session.start) is checked for travel against the trusted history but
// does not join it, so a password alone cannot make an attacker's network
// familiar or their place the reference.
func TestPrimaryAuthVouchesForNothing(t *testing.T) {
	c := DefaultConfig()
	s := &UserState{}
	home := ClientInfo{IP: "198.51.100.7", ASN: 7922, Country: "US", DeviceID: "laptop", Lat: 40.71, Lon: -74.0, AccuracyKm: 20, HasGeo: true}
	run(c, s, Observation{ID: "login", Kind: ObsLoginSucceeded, At: after(0), Client: home})
	attacker := ClientInfo{IP: "203.0.113.66", ASN: 64500, Country: "NZ", DeviceID: "evil", Lat: -36.85, Lon: 174.76, AccuracyKm: 20, HasGeo: true}
	ra := run(c, s, Observation{ID: "pw", Kind: ObsPrimaryAuth, At: after(time.Hour), Client: attacker})
	if signal(ra, SignalImpossibleTravel) == nil {
		t.Fatalf("a password verified across the world an hour later: %v", ra.GetSignals())
	}
	if c.Familiar(s, attacker) || s.LastTrusted.IP != home.IP || slices.Contains(s.ASNs, attacker.ASN) ||
		slices.Contains(s.Countries, attacker.Country) || len(s.Devices) != 1 {
		t.Fatalf("the verified password joined the trusted history: %+v", s)
	}
}

// TestFatigueOrOwnRetries: an approval after a burst is the fatigue success
// when someone else sent the pushes, and the user's own retries when every
// push came from their familiar device and network and a device of theirs
// approved where the login was.
func TestFatigueOrOwnRetries(t *testing.T) {
	c := DefaultConfig()
	phone := ClientInfo{IP: "100.64.1.2", DeviceID: "phone-1", ASN: 21928, Lat: 40.9, Lon: -74.3, AccuracyKm: 100, HasGeo: true, Country: "US", City: "New York"}
	newPhone := phone
	newPhone.DeviceID = "phone-2"
	noDevice := nyc
	noDevice.DeviceID = ""
	ispAttacker := ClientInfo{IP: "198.51.100.200", DeviceID: "kali", ASN: 7922, Lat: 40.72, Lon: -74.01, HasGeo: true, Country: "US", City: "New York"}
	ispNoDevice := ispAttacker
	ispNoDevice.DeviceID = ""
	travelling := nyc
	travelling.IP, travelling.ASN, travelling.Country, travelling.City, travelling.Lat, travelling.Lon = "203.0.113.77", 2856, "GB", "London", 51.5, -0.12
	londonPhone := phone
	londonPhone.Lat, londonPhone.Lon, londonPhone.Country, londonPhone.City = 51.5, -0.1, "GB", "London"
	// History: alice signs in at home on her laptop and approves on her phone.
	history := []Observation{
		{ID: "h-a", Kind: ObsAttempt, At: after(0), Client: nyc},
		{ID: "h-ok", Kind: ObsPushApproved, At: after(20 * time.Second), Client: nyc, Responder: phone},
		{ID: "h-in", Kind: ObsLoginSucceeded, At: after(21 * time.Second), Client: nyc},
	}
	start := after(5 * time.Hour)
	// pushes: n pushes a minute apart from ci, the first ones unanswered.
	pushes := func(ci ClientInfo, n int) []Observation {
		var out []Observation
		for i := range n {
			at := start.Add(time.Duration(i) * time.Minute)
			out = append(out, Observation{ID: fmt.Sprint("a", i, ci.IP), Kind: ObsAttempt, At: at, Client: ci},
				Observation{ID: fmt.Sprint("s", i, ci.IP), Kind: ObsPushSent, At: at.Add(time.Second), Client: ci})
		}
		return out
	}
	approve := func(ci, responder ClientInfo) Observation {
		return Observation{ID: "ok", Kind: ObsPushApproved, At: start.Add(2*time.Minute + 20*time.Second), Client: ci, Responder: responder}
	}
	cat := func(parts ...[]Observation) []Observation { return slices.Concat(parts...) }
	tests := []struct {
		name    string
		obs     []Observation
		context string
		conf    float64
		weight  int32
		// familiar, partly familiar and unfamiliar pushes; approver agrees.
		counts   [3]int32
		approver bool
	}{
		{"own retries: familiar pushes, known phone where the login was",
			cat(pushes(nyc, 3), []Observation{approve(nyc, phone)}), "own retries", 0.3, 27, [3]int32{3, 0, 0}, true},
		{"own retries on a phone enrolled from the familiar context",
			cat([]Observation{{ID: "enrol", Kind: ObsFactorEnrolled, At: start.Add(-10 * time.Minute), Client: nyc, Responder: newPhone}}, pushes(nyc, 3), []Observation{approve(nyc, newPhone)}),
			"own retries", 0.3, 27, [3]int32{3, 0, 0}, true},
		{"familiar pushes, no responder in the log",
			cat(pushes(nyc, 3), []Observation{approve(nyc, ClientInfo{})}), "mixed", 0.6, 54, [3]int32{3, 0, 0}, false},
		{"no device id, from the last trusted IP",
			cat(pushes(noDevice, 3), []Observation{approve(noDevice, phone)}), "mixed", 0.6, 54, [3]int32{0, 3, 0}, true},
		{"familiar pushes, approved on an unknown device",
			cat(pushes(nyc, 3), []Observation{approve(nyc, newPhone)}), "unfamiliar source", 1, 90, [3]int32{3, 0, 0}, false},
		{"familiar pushes, phone enrolled from an attacker's context",
			cat([]Observation{{ID: "enrol", Kind: ObsFactorEnrolled, At: start.Add(-10 * time.Minute), Client: ispAttacker, Responder: newPhone}}, pushes(nyc, 3), []Observation{approve(nyc, newPhone)}),
			"unfamiliar source", 1, 90, [3]int32{3, 0, 0}, false},
		{"familiar pushes, approved far from the login",
			cat(pushes(nyc, 3), []Observation{approve(nyc, londonPhone)}), "unfamiliar source", 1, 90, [3]int32{3, 0, 0}, false},
		{"attacker on the victim's ISP: new IP, unknown device",
			cat(pushes(ispAttacker, 3), []Observation{approve(ispAttacker, phone)}), "unfamiliar source", 1, 90, [3]int32{0, 0, 3}, true},
		{"attacker on the victim's ISP: new IP, no device id",
			cat(pushes(ispNoDevice, 3), []Observation{approve(ispNoDevice, phone)}), "unfamiliar source", 1, 90, [3]int32{0, 0, 3}, true},
		{"attacker abroad",
			cat(pushes(auckland, 3), []Observation{approve(auckland, phone)}), "unfamiliar source", 1, 90, [3]int32{0, 0, 3}, false},
		{"the user's own device abroad, on a new network",
			cat(pushes(travelling, 3), []Observation{approve(travelling, londonPhone)}), "unfamiliar source", 1, 90, [3]int32{0, 0, 3}, true},
		{"the user approves their own sign-in among an attacker's pushes",
			cat(pushes(auckland, 2), []Observation{{ID: "own", Kind: ObsAttempt, At: start.Add(2 * time.Minute), Client: nyc}, approve(nyc, phone)}),
			"mixed", 0.6, 54, [3]int32{1, 0, 2}, true},
		{"the attacker's push approved among the user's",
			cat(pushes(nyc, 2), []Observation{{ID: "evil", Kind: ObsAttempt, At: start.Add(2 * time.Minute), Client: auckland}, approve(auckland, phone)}),
			"unfamiliar source", 1, 90, [3]int32{2, 0, 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &UserState{}
			ra := run(c, s, cat(history, tt.obs)...)
			sig := signal(ra, SignalApprovalAfterBurst)
			ev := sig.GetBurst()
			if sig == nil || ev.GetContext() != tt.context || sig.GetConfidence() != tt.conf || sig.GetWeight() != tt.weight {
				t.Fatalf("APPROVAL_AFTER_BURST %v (%q), want %s at %.1f weighing %d", sig, sig.GetSummary(), tt.context, tt.conf, tt.weight)
			}
			if got := [3]int32{ev.GetFamiliarPushes(), ev.GetPartlyFamiliarPushes(), ev.GetUnfamiliarPushes()}; got != tt.counts || ev.GetApproverFamiliar() != tt.approver {
				t.Fatalf("evidence %v, approver %v; want %v, %v", got, ev.GetApproverFamiliar(), tt.counts, tt.approver)
			}
			if !strings.Contains(sig.GetSummary(), tt.context) {
				t.Fatalf("summary %q does not say %q", sig.GetSummary(), tt.context)
			}
			if tt.context == "own retries" {
				// On its own (and with the burst it ended) it stays under
				// the default policy's elevated-score of 60, and the
				// approval is the user's: trusted, and no compromise.
				if ra.GetScore() >= 60 {
					t.Fatalf("own retries score %d: %v", ra.GetScore(), ra.GetSignals())
				}
				if b := signal(ra, SignalPushBurst); b == nil || b.GetConfidence() != 0.3 || b.GetBurst().GetContext() != "own retries" {
					t.Fatalf("PUSH_BURST of own retries: %v", b)
				}
				if c.compromised(s, start.Add(3*time.Minute).UnixMilli()) || s.LastTrusted.At != start.Add(2*time.Minute+20*time.Second).UnixMilli() {
					t.Fatalf("own retries not trusted: %+v", s.LastTrusted)
				}
				// It fades as a fatigue success does, at its confidence.
				if w := signal(c.Assess("alice", s, start.Add(12*time.Hour+2*time.Minute+20*time.Second)), SignalApprovalAfterBurst).GetWeight(); w != 14 {
					t.Fatalf("own retries after 12h weigh %d, want 14", w)
				}
			}
			if tt.conf == 1 && ra.GetScore() < 90 {
				t.Fatalf("fatigue success scores %d", ra.GetScore())
			}
		})
	}
}

// TestLatePushRaisesOwnRetries: a push from before the approval that
// arrives after it (an IdP log delivered late) is counted in the burst the
// approval ended: an unfamiliar one makes the user's own retries mixed
// (someone else pushed too; the approval was of the user's own sign-in),
// and a familiar one never lowers a finding.
func TestLatePushRaisesOwnRetries(t *testing.T) {
	c := DefaultConfig()
	phone := ClientInfo{IP: "100.64.1.2", DeviceID: "phone-1", ASN: 21928, Lat: 40.9, Lon: -74.3, AccuracyKm: 100, HasGeo: true, Country: "US", City: "New York"}
	s := &UserState{}
	run(c, s, Observation{ID: "h", Kind: ObsPushApproved, At: after(0), Client: nyc, Responder: phone})
	start := after(5 * time.Hour)
	for i := range 3 {
		run(c, s, Observation{ID: fmt.Sprint("a", i), Kind: ObsAttempt, At: start.Add(time.Duration(i) * time.Minute), Client: nyc})
	}
	ra := run(c, s, Observation{ID: "ok", Kind: ObsPushApproved, At: start.Add(2*time.Minute + 20*time.Second), Client: nyc, Responder: phone})
	if sig := signal(ra, SignalApprovalAfterBurst); sig.GetBurst().GetContext() != "own retries" {
		t.Fatalf("before the late push: %v", sig)
	}
	ra = run(c, s, Observation{ID: "late", Kind: ObsPushSent, At: start.Add(90 * time.Second), Client: auckland})
	if sig := signal(ra, SignalApprovalAfterBurst); sig.GetBurst().GetContext() != "mixed" || sig.GetConfidence() != 0.6 || sig.GetBurst().GetUnfamiliarPushes() != 1 {
		t.Fatalf("after an unfamiliar late push: %v", sig)
	}
	ra = run(c, s, Observation{ID: "late2", Kind: ObsPushTimedOut, At: start.Add(2 * time.Minute), Client: nyc})
	if sig := signal(ra, SignalApprovalAfterBurst); sig.GetConfidence() != 0.6 {
		t.Fatalf("a familiar late push lowered the finding: %v", sig)
	}
}

// TestPacedFatigueOutlivesThePushList: a push every 25 minutes never puts
// three in the list's hour, but the streak the state counts still makes
// the approval at its end a fatigue success.
func TestPacedFatigueOutlivesThePushList(t *testing.T) {
	c := DefaultConfig()
	s := &UserState{}
	run(c, s, ob(ObsLoginSucceeded, after(0), nyc))
	start := after(5 * time.Hour)
	for i := range 4 {
		at := start.Add(time.Duration(i) * 25 * time.Minute)
		run(c, s, Observation{ID: fmt.Sprint("a", i), Kind: ObsAttempt, At: at, Client: auckland})
		if i < 3 {
			run(c, s, Observation{ID: fmt.Sprint("t", i), Kind: ObsPushTimedOut, At: at.Add(20 * time.Second), Client: auckland})
		}
	}
	ra := run(c, s, Observation{ID: "ok", Kind: ObsPushApproved, At: start.Add(75*time.Minute + 15*time.Second), Client: auckland})
	if sig := signal(ra, SignalApprovalAfterBurst); sig == nil || sig.GetBurst().GetStreak() != 3 || sig.GetConfidence() != 1 {
		t.Fatalf("paced fatigue: %v", ra.GetSignals())
	}
}

// TestDenialStreakContext: a streak of the user's own unanswered pushes is
// low-confidence; one from an unfamiliar source is not.
func TestDenialStreakContext(t *testing.T) {
	c := DefaultConfig()
	for _, tt := range []struct {
		ci   ClientInfo
		conf float64
	}{{nyc, 0.3}, {auckland, 1}, {ClientInfo{}, 1}} {
		s := &UserState{}
		run(c, s, ob(ObsLoginSucceeded, after(0), nyc))
		var ra *scoringv1.RiskAssessment
		for i := range 3 {
			ra = run(c, s, Observation{ID: fmt.Sprint("t", i), Kind: ObsPushTimedOut, At: after(time.Hour + time.Duration(i)*10*time.Minute), Client: tt.ci})
		}
		if sig := signal(ra, SignalDenialStreak); sig == nil || sig.GetConfidence() != tt.conf || sig.GetWeight() != 25 {
			t.Fatalf("%s: DENIAL_STREAK %v, want confidence %.1f", tt.ci.IP, sig, tt.conf)
		}
	}
}

// TestPushBurstContext: PUSH_BURST says whose pushes its window holds,
// leaving out those the user approved before the newest push.
func TestPushBurstContext(t *testing.T) {
	c := DefaultConfig()
	phone := ClientInfo{IP: "100.64.1.2", DeviceID: "phone-1", ASN: 21928, Lat: 40.9, Lon: -74.3, AccuracyKm: 100, HasGeo: true, Country: "US", City: "New York"}
	arrival := nyc
	arrival.IP, arrival.ASN = "198.18.1.1", 21928
	start := after(5 * time.Hour)
	history := []Observation{{ID: "h", Kind: ObsPushApproved, At: after(0), Client: nyc, Responder: phone}}
	tests := []struct {
		name    string
		obs     []Observation
		context string
		conf    float64
	}{
		{"the user's own pushes", []Observation{
			{ID: "a1", Kind: ObsAttempt, At: start, Client: nyc}, {ID: "a2", Kind: ObsAttempt, At: start.Add(time.Minute), Client: nyc},
			{ID: "a3", Kind: ObsAttempt, At: start.Add(2 * time.Minute), Client: nyc}}, "own retries", 0.3},
		{"an approved sign-in from a new network, then the user's own pushes", []Observation{
			{ID: "x", Kind: ObsAttempt, At: start, Client: arrival}, {ID: "xok", Kind: ObsPushApproved, At: start.Add(15 * time.Second), Client: arrival, Responder: phone},
			{ID: "a1", Kind: ObsAttempt, At: start.Add(time.Minute), Client: nyc}, {ID: "a2", Kind: ObsAttempt, At: start.Add(2 * time.Minute), Client: nyc}}, "own retries", 0.3},
		{"an attacker's pushes after the user's approval", []Observation{
			{ID: "a1", Kind: ObsAttempt, At: start, Client: nyc}, {ID: "ok", Kind: ObsPushApproved, At: start.Add(15 * time.Second), Client: nyc, Responder: phone},
			{ID: "x1", Kind: ObsAttempt, At: start.Add(time.Minute), Client: auckland}, {ID: "x2", Kind: ObsAttempt, At: start.Add(2 * time.Minute), Client: auckland}}, "unfamiliar source", 1},
		{"no push with a client", []Observation{
			{ID: "a1", Kind: ObsAttempt, At: start}, {ID: "a2", Kind: ObsAttempt, At: start.Add(time.Minute)},
			{ID: "a3", Kind: ObsAttempt, At: start.Add(2 * time.Minute)}}, "no context", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ra := run(c, &UserState{}, slices.Concat(history, tt.obs)...)
			sig := signal(ra, SignalPushBurst)
			if sig.GetBurst().GetContext() != tt.context || sig.GetConfidence() != tt.conf || sig.GetWeight() != 30 {
				t.Fatalf("PUSH_BURST %v, want %s at %.1f", sig, tt.context, tt.conf)
			}
		})
	}
}
