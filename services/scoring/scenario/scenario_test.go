package scenario_test

import (
	"fmt"
	"testing"
	"time"

	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/services/scoring"
	"github.com/pushbackhq/pushback/services/scoring/scenario"
)

// sim replays events through the pure engine the way the service does:
// per-user state, and per-source spray state for pushes from a source the
// user is unfamiliar with.
type sim struct {
	cfg     scoring.Config
	users   map[string]*scoring.UserState
	sources map[string]*scoring.SourceState
}

func newSim() *sim {
	return &sim{cfg: scoring.DefaultConfig(), users: map[string]*scoring.UserState{}, sources: map[string]*scoring.SourceState{}}
}

func (s *sim) record(e scenario.Event) *scoringv1.RiskAssessment {
	st := s.users[e.User]
	if st == nil {
		st = &scoring.UserState{}
		s.users[e.User] = st
	}
	var spray []scoring.SprayCount
	o := e.Obs
	if o.Kind.IsPush() && !s.cfg.Familiar(st, o.Client) {
		for _, k := range []struct {
			key string
			sc  scoring.SprayCount
		}{{"ip/" + o.Client.IP, scoring.SprayCount{IP: o.Client.IP}}, {fmt.Sprint("asn/", o.Client.ASN), scoring.SprayCount{ASN: o.Client.ASN}}} {
			src := s.sources[k.key]
			if src == nil {
				src = &scoring.SourceState{}
				s.sources[k.key] = src
			}
			k.sc.Users = s.cfg.NoteSource(src, e.User, o.At)
			spray = append(spray, k.sc)
		}
	}
	if o.Kind.IsSuccess() {
		for _, k := range []string{"ip/" + o.Client.IP, fmt.Sprint("asn/", o.Client.ASN)} {
			if src := s.sources[k]; src != nil {
				s.cfg.VouchSource(src, e.User)
			}
		}
	}
	ra, _ := s.cfg.Record(e.User, st, o, spray)
	return ra
}

func find(ra *scoringv1.RiskAssessment, code string) *scoringv1.Signal {
	for _, s := range ra.GetSignals() {
		if s.GetCode() == code {
			return s
		}
	}
	return nil
}

// TestBenignPopulation: at least 10,000 users for a week of commutes,
// flights, carrier IP jumps and VPN use, from a cold start, raise a travel,
// burst or spray signal on at most 0.1% of their push attempts. Low-confidence travel notices
// (jitter, regional, anonymizer: weight <= 25) are counted and reported
// apart, since they explain rather than accuse.
func TestBenignPopulation(t *testing.T) {
	b := scenario.DefaultBenign()
	events := b.Generate()
	s := newSim()
	counts := map[string]int{}
	attempts, flagged := 0, 0
	for _, e := range events {
		ra := s.record(e)
		if e.Obs.Kind != scoring.ObsAttempt {
			continue
		}
		attempts++
		hit := false
		for _, sig := range ra.GetSignals() {
			code := sig.GetCode()
			if code == scoring.SignalImpossibleTravel || code == scoring.SignalResponseMismatch {
				if sig.GetConfidence() < 0.5 {
					code += "(low confidence)"
				} else {
					hit = true
				}
			}
			if code == scoring.SignalPushBurst || code == scoring.SignalPushSpray {
				hit = true
			}
			counts[code]++
		}
		if hit {
			flagged++
		}
	}
	rate := float64(flagged) / float64(attempts)
	t.Logf("%d users, %d events, %d push attempts; travel or burst on %d (%.4f%%)", len(s.users), len(events), attempts, flagged, 100*rate)
	for code, n := range counts {
		t.Logf("  %-40s %7d (%.3f%% of attempts)", code, n, 100*float64(n)/float64(attempts))
	}
	if len(s.users) < 10000 {
		t.Fatalf("population of %d users", len(s.users))
	}
	if rate > 0.001 {
		t.Fatalf("benign users flagged on %.4f%% of attempts (> 0.1%%)", 100*rate)
	}
}

// expectedBurstPush is the first push at which a configured window holds
// its threshold: where an inline scorer must fire, with no lag.
func expectedBurstPush(cfg scoring.Config, times []time.Time) int {
	for k := range times {
		for w, th := range cfg.BurstThresholds {
			n := 0
			for _, at := range times[:k+1] {
				if at.After(times[k].Add(-w)) {
					n++
				}
			}
			if n >= th {
				return k + 1
			}
		}
	}
	return 0
}

func TestAttacks(t *testing.T) {
	start := time.Date(2026, 11, 4, 3, 0, 0, 0, time.UTC)
	home := scoring.ClientInfo{IP: "198.51.100.7", DeviceID: "laptop", ASN: 7922, Lat: 40.71, Lon: -74.0, AccuracyKm: 20, HasGeo: true, Country: "US", City: "New York"}
	attacker := scoring.ClientInfo{IP: "45.9.9.9", DeviceID: "kali", ASN: 50000, Lat: 55.75, Lon: 37.62, AccuracyKm: 20, HasGeo: true, Country: "RU", City: "Moscow"}

	t.Run("fatigue", func(t *testing.T) {
		for _, n := range []int{3, 5, 10, 25} {
			for _, spacing := range []time.Duration{5 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute} {
				name := fmt.Sprintf("%d pushes every %s", n, spacing)
				t.Run(name, func(t *testing.T) {
					s := newSim()
					user := "victim"
					s.record(scenario.Event{User: user, Obs: scoring.Observation{ID: "home", Kind: scoring.ObsLoginSucceeded, At: start.Add(-24 * time.Hour), Client: home}})
					events := scenario.Fatigue(user, start, n, spacing, true, attacker)
					var times []time.Time
					for _, e := range events {
						if e.Push > 0 {
							times = append(times, e.Obs.At)
						}
					}
					want := expectedBurstPush(s.cfg, times)
					firstBurst := 0
					var last *scoringv1.RiskAssessment
					for _, e := range events {
						ra := s.record(e)
						last = ra
						if e.Push > 0 && firstBurst == 0 && find(ra, scoring.SignalPushBurst) != nil {
							firstBurst = e.Push
						}
					}
					if firstBurst != want {
						t.Fatalf("PUSH_BURST first at push %d, configured line crossed at push %d", firstBurst, want)
					}
					if want > 0 || n >= s.cfg.StreakThreshold+1 {
						if sig := find(last, scoring.SignalApprovalAfterBurst); sig == nil || last.GetSignals()[0] != sig {
							t.Fatalf("approval after the burst does not stand out: %v", last.GetSignals())
						}
					}
				})
			}
		}
	})

	t.Run("spray", func(t *testing.T) {
		s := newSim()
		var users []string
		for i := range 12 {
			u := fmt.Sprint("employee", i)
			users = append(users, u)
			s.record(scenario.Event{User: u, Obs: scoring.Observation{ID: u + "-home", Kind: scoring.ObsLoginSucceeded, At: start.Add(-time.Hour), Client: home}})
		}
		first := 0
		for _, e := range scenario.Spray(users, start, 20*time.Second, attacker) {
			if sig := find(s.record(e), scoring.SignalPushSpray); sig != nil && first == 0 {
				first = e.Push
			}
		}
		if first != s.cfg.Spray.IPThreshold {
			t.Fatalf("PUSH_SPRAY first at user %d, threshold %d", first, s.cfg.Spray.IPThreshold)
		}
	})

	t.Run("impossible travel", func(t *testing.T) {
		s := newSim()
		var ra *scoringv1.RiskAssessment
		for _, e := range scenario.Travel("victim", start, 40*time.Minute, home, attacker) {
			ra = s.record(e)
		}
		if sig := find(ra, scoring.SignalImpossibleTravel); sig == nil || sig.GetConfidence() != 1 {
			t.Fatalf("IMPOSSIBLE_TRAVEL: %v", ra.GetSignals())
		}
	})
}

func TestGenerateDeterministic(t *testing.T) {
	b := scenario.DefaultBenign()
	b.Users, b.Days = 200, 3
	x, y := b.Generate(), b.Generate()
	if len(x) != len(y) || fmt.Sprint(x[len(x)/2]) != fmt.Sprint(y[len(y)/2]) {
		t.Fatal("same seed, different population")
	}
}
