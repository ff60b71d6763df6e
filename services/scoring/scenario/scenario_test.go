package scenario_test

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	defaultpolicy "github.com/pushbackhq/pushback/deploy/policy"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/services/decision/core"
	"github.com/pushbackhq/pushback/services/decision/policy"
	"github.com/pushbackhq/pushback/services/scoring/engine"
	"github.com/pushbackhq/pushback/services/scoring/scenario"
)

// sim replays events through the pure engine the way the service does:
// per-user state, and per-source spray state in memory.
type sim struct {
	cfg     engine.Config
	users   map[string]*engine.UserState
	sources *engine.MemSources
}

func newSim() *sim {
	return &sim{cfg: engine.DefaultConfig(), users: map[string]*engine.UserState{}, sources: engine.NewMemSources()}
}

func (s *sim) record(e scenario.Event) *scoringv1.RiskAssessment {
	st := s.users[e.User]
	if st == nil {
		st = &engine.UserState{}
		s.users[e.User] = st
	}
	ra, _, _ := s.cfg.Observe(s.sources, "", e.User, st, e.Obs)
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

// week is the default population's week with the generator's attacks in
// it, replayed once through the engine for the tests that read it.
type week struct {
	b        scenario.Benign
	events   int
	users    int
	attacks  []scenario.Attack
	attacked map[string]bool
	// Benign push attempts (users no attack touches), those raising a
	// travel (confidence >= 0.5), confident burst or spray signal, and
	// the signals raised on them.
	attempts, flagged int
	counts            map[string]int
	// Sign-ins (approved pushes) of benign users, and those that ended
	// one of the habits that look like an attack's pushes.
	signIns int
	habits  map[string]int
	// Benign users, and for each respond rule of the default policy the
	// benign users it fired for (fired and shipped are the same rules,
	// counted twice: fired beside the revoke flags, shipped by name).
	benign         int
	fired, shipped map[string]map[string]bool
	// Users for whom any rule fired, and any revoking rule.
	anyAction, anyRevoke map[string]bool
	// Per attack: the default policy's respond rules that fired on its
	// events, and the signals raised.
	attackRules, attackShipped map[string]map[string]bool
	attackSignals              map[string]map[string]bool
	// Own retries seen: APPROVAL_AFTER_BURST by context, on benign users,
	// the users it was raised for, and the users with a habit.
	afterBurst                  map[string]int
	afterBurstUsers, habitUsers map[string]bool
}

var replayWeek = sync.OnceValue(func() *week {
	b := scenario.DefaultBenign()
	events, attacks := b.Attacked()
	w := &week{b: b, events: len(events), attacks: attacks, attacked: map[string]bool{}, counts: map[string]int{}, habits: map[string]int{},
		fired: map[string]map[string]bool{}, shipped: map[string]map[string]bool{}, anyAction: map[string]bool{}, anyRevoke: map[string]bool{},
		attackRules: map[string]map[string]bool{}, attackShipped: map[string]map[string]bool{}, attackSignals: map[string]map[string]bool{}, afterBurst: map[string]int{},
		afterBurstUsers: map[string]bool{}, habitUsers: map[string]bool{}}
	for _, a := range attacks {
		for _, u := range a.Users {
			w.attacked[u] = true
		}
		w.attackRules[a.Name], w.attackShipped[a.Name], w.attackSignals[a.Name] = map[string]bool{}, map[string]bool{}, map[string]bool{}
	}
	for _, r := range respondRuleNames {
		w.fired[r], w.shipped[r] = map[string]bool{}, map[string]bool{}
	}
	s, shippedRules := newSim(), newShippedRespond()
	seenAfterBurst := map[string]bool{}
	for _, e := range events {
		ra := s.record(e)
		// Response rules see what intake ingests: every event but the
		// attempts a hook asks Decide about.
		var rules []respondMatch
		var shipped []string
		if e.Obs.Kind != engine.ObsAttempt {
			shipped = shippedRules.match(e, ra)
			for _, r := range shipped {
				rules = append(rules, respondMatch{r, r != "push-burst"})
			}
		}
		if e.Attack != "" {
			for _, r := range rules {
				w.attackRules[e.Attack][r.name] = true
			}
			for _, r := range shipped {
				w.attackShipped[e.Attack][r] = true
			}
			for _, sig := range ra.GetSignals() {
				w.attackSignals[e.Attack][sig.GetCode()] = true
			}
			continue
		}
		if w.attacked[e.User] {
			continue
		}
		for _, r := range rules {
			w.fired[r.name][e.User] = true
			w.anyAction[e.User] = true
			if r.revoke {
				w.anyRevoke[e.User] = true
			}
		}
		for _, r := range shipped {
			w.shipped[r][e.User] = true
		}
		if sig := find(ra, engine.SignalApprovalAfterBurst); sig != nil && !seenAfterBurst[e.User+sig.GetBurst().GetApprovedAt().String()] {
			seenAfterBurst[e.User+sig.GetBurst().GetApprovedAt().String()] = true
			w.afterBurst[sig.GetBurst().GetContext()]++
			w.afterBurstUsers[e.User] = true
		}
		if e.Habit != "" {
			w.habitUsers[e.User] = true
		}
		switch e.Obs.Kind {
		case engine.ObsPushApproved:
			w.signIns++
			if e.Habit != "" {
				w.habits[e.Habit]++
			}
		case engine.ObsAttempt:
			w.attempts++
			hit := false
			for _, sig := range ra.GetSignals() {
				code := sig.GetCode()
				switch code {
				case engine.SignalImpossibleTravel, engine.SignalResponseMismatch:
					if sig.GetConfidence() < 0.5 {
						code += "(low confidence)"
					} else {
						hit = true
					}
				case engine.SignalPushBurst:
					if sig.GetConfidence() < 0.8 {
						code += "(" + sig.GetBurst().GetContext() + ")"
					} else {
						hit = true
					}
				case engine.SignalPushSpray:
					hit = true
				}
				w.counts[code]++
			}
			if hit {
				w.flagged++
			}
		}
	}
	w.users = len(s.users)
	w.benign = w.users - len(w.attacked)
	for u := range w.attacked {
		if s.users[u] == nil {
			w.benign++ // an attacked account the week never reached
		}
	}
	return w
})

// TestBenignPopulation: at least 10,000 users for a week of commutes,
// flights, carrier IP jumps, VPN use, phones that miss pushes and new
// phones, from a cold start, raise a travel, burst or spray signal on at
// most 0.1% of their push attempts. Low-confidence travel notices (jitter,
// regional, anonymizer: weight <= 25) and the bursts of the users' own
// retries (confidence < 0.8: the policy still answers them by their
// counts, with number matching) are counted and reported apart, since
// they explain rather than accuse. The users the generator attacks are
// left out.
func TestBenignPopulation(t *testing.T) {
	w := replayWeek()
	rate := float64(w.flagged) / float64(w.attempts)
	t.Logf("%d users (%d new hires, %d attacked), %d events, %d benign push attempts; travel, confident burst or spray on %d (%.4f%%)",
		w.users, w.b.NewHires, len(w.attacked), w.events, w.attempts, w.flagged, 100*rate)
	for _, code := range slices.Sorted(maps.Keys(w.counts)) {
		n := w.counts[code]
		t.Logf("  %-40s %7d (%.3f%% of attempts)", code, n, 100*float64(n)/float64(w.attempts))
	}
	if w.users < 10000 {
		t.Fatalf("population of %d users", w.users)
	}
	if rate > 0.001 {
		t.Fatalf("benign users flagged on %.4f%% of attempts (> 0.1%%)", 100*rate)
	}
}

// respondRuleNames are the rules of the policy's respond: section.
var respondRuleNames = []string{"fatigue-success", "fraud-reported", "travel-success", "push-burst"}

// respondMatch is one rule of the default policy's respond: section that
// matched a risk change.
type respondMatch struct {
	name string
	// revoke: alert and revoke the user's sessions; alert only otherwise.
	revoke bool
}

// shippedRespond evaluates the respond: rules of the default policy as the
// decision service's responder does: on the risk change an ingested event
// made, with the causes already seen for the user (a signal that lingers
// is not fresh).
type shippedRespond struct {
	pol   *policy.Policy
	known map[string]map[string]bool
}

func newShippedRespond() *shippedRespond {
	pol, err := policy.Parse(bytes.NewReader(defaultpolicy.Default))
	if err != nil {
		panic(err)
	}
	return &shippedRespond{pol: pol, known: map[string]map[string]bool{}}
}

var eventTypes = map[engine.ObservationKind]eventv1.EventType{
	engine.ObsAttempt:               eventv1.EventType_EVENT_TYPE_PUSH_REQUESTED,
	engine.ObsPushSent:              eventv1.EventType_EVENT_TYPE_PUSH_SENT,
	engine.ObsPushApproved:          eventv1.EventType_EVENT_TYPE_PUSH_APPROVED,
	engine.ObsPushDenied:            eventv1.EventType_EVENT_TYPE_PUSH_DENIED,
	engine.ObsPushTimedOut:          eventv1.EventType_EVENT_TYPE_PUSH_TIMED_OUT,
	engine.ObsFraudReported:         eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED,
	engine.ObsLoginSucceeded:        eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED,
	engine.ObsLoginFailed:           eventv1.EventType_EVENT_TYPE_LOGIN_FAILED,
	engine.ObsNumberChallengeFailed: eventv1.EventType_EVENT_TYPE_NUMBER_CHALLENGE_FAILED,
	engine.ObsFactorEnrolled:        eventv1.EventType_EVENT_TYPE_FACTOR_ENROLLED,
}

// match returns the names of the shipped rules that match. An assessment
// with no signal is not evaluated unless it is a fraud report: the rules
// act on risk (and evaluating them on the most of a million events that
// carry none would treble the test's time).
func (r *shippedRespond) match(e scenario.Event, ra *scoringv1.RiskAssessment) []string {
	if len(ra.GetSignals()) == 0 && e.Obs.Kind != engine.ObsFraudReported {
		return nil
	}
	known := r.known[e.User]
	if known == nil {
		known = map[string]bool{}
		r.known[e.User] = known
	}
	ev := &eventv1.AuthEvent{Tenant: "acme", UserId: e.User, Type: eventTypes[e.Obs.Kind], Factor: eventv1.Factor_FACTOR_PUSH,
		Client: &eventv1.Client{Ip: e.Obs.Client.IP, DeviceId: e.Obs.Client.DeviceID, Asn: e.Obs.Client.ASN}}
	ms, err := r.pol.Respond.Evaluate(core.RespondInput(&scoringv1.RiskChange{Tenant: "acme", Assessment: ra, Event: ev}, known))
	if err != nil {
		panic(err)
	}
	for _, c := range core.Causes(ra) {
		known[c] = true
	}
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Rule)
	}
	return out
}

// TestResponseActions holds the precision of the response rules: over the
// default benign week (10,000 users and the hires, with 3% of usual
// sign-ins on a phone that misses pushes and 1% of users switching
// phones), at most 0.1% of benign users meet a rule that alerts or
// revokes; and every attack the generator puts in that week meets the
// response it calls for (a revoke when the attacker got in or the user
// said "not me", an alert while the attacker is at work, the inline
// signal for what the decision service answers before a push is sent).
func TestResponseActions(t *testing.T) {
	w := replayWeek()
	share := func(n, of int) string { return fmt.Sprintf("%d (%.3f%%)", n, 100*float64(n)/float64(of)) }
	t.Logf("%d benign users, %d sign-ins; %s ended a phone that missed pushes, %s a new phone",
		w.benign, w.signIns, share(w.habits[scenario.HabitFlakyPhone], w.signIns), share(w.habits[scenario.HabitNewPhone], w.signIns))
	t.Logf("%s benign users with a phone that missed pushes or a new phone; APPROVAL_AFTER_BURST for %s of them, on approvals by context: %v",
		share(len(w.habitUsers), w.benign), share(len(w.afterBurstUsers), w.benign), w.afterBurst)
	for _, r := range respondRuleNames {
		t.Logf("  %-16s benign users %s; as the default policy ships it %s", r, share(len(w.fired[r]), w.benign), share(len(w.shipped[r]), w.benign))
	}
	t.Logf("  any action: %s; any revoke: %s", share(len(w.anyAction), w.benign), share(len(w.anyRevoke), w.benign))
	if w.benign < 10000 {
		t.Fatalf("only %d benign users", w.benign)
	}
	if n := w.habits[scenario.HabitFlakyPhone] + w.habits[scenario.HabitNewPhone]; float64(n) < 0.02*float64(w.signIns) {
		t.Errorf("only %s sign-ins after missed pushes: the week does not hold the retries it should", share(n, w.signIns))
	}
	if rate := float64(len(w.anyAction)) / float64(w.benign); rate > 0.001 {
		t.Errorf("a response action fires for %.3f%% of benign users (> 0.1%%)", 100*rate)
	}
	// The shipped policy's revoking rules are held to the same bound.
	for _, r := range []string{"fatigue-success", "fraud-reported", "travel-success"} {
		if rate := float64(len(w.shipped[r])) / float64(w.benign); rate > 0.001 {
			t.Errorf("the default policy's %s fires for %.3f%% of benign users (> 0.1%%)", r, 100*rate)
		}
	}
	caught := func(a scenario.Attack, rules map[string]bool) bool {
		switch a.Want {
		case scenario.Revoke:
			return rules["fatigue-success"] || rules["fraud-reported"] || rules["travel-success"]
		case scenario.Alert:
			return len(rules) > 0
		}
		return w.attackSignals[a.Name][a.Signal]
	}
	for _, a := range w.attacks {
		rules, shipped := w.attackRules[a.Name], w.attackShipped[a.Name]
		t.Logf("  attack %-62q rules %v (shipped %v), signals %v", a.Name, slices.Sorted(maps.Keys(rules)), slices.Sorted(maps.Keys(shipped)), slices.Sorted(maps.Keys(w.attackSignals[a.Name])))
		if !caught(a, rules) || !caught(a, shipped) {
			t.Errorf("attack %q not caught (want %v): rules %v, shipped policy %v, signals %v", a.Name, a.Want, rules, shipped, w.attackSignals[a.Name])
		}
	}
}

// expectedBurstPush is the first push at which a configured window holds
// its threshold: where an inline scorer must fire, with no lag.
func expectedBurstPush(cfg engine.Config, times []time.Time) int {
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
	home := engine.ClientInfo{IP: "198.51.100.7", DeviceID: "laptop", ASN: 7922, Lat: 40.71, Lon: -74.0, AccuracyKm: 20, HasGeo: true, Country: "US", City: "New York"}
	attacker := engine.ClientInfo{IP: "45.9.9.9", DeviceID: "kali", ASN: 50000, Lat: 55.75, Lon: 37.62, AccuracyKm: 20, HasGeo: true, Country: "RU", City: "Moscow"}

	t.Run("fatigue", func(t *testing.T) {
		for _, n := range []int{3, 5, 10, 25} {
			for _, spacing := range []time.Duration{5 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute} {
				name := fmt.Sprintf("%d pushes every %s", n, spacing)
				t.Run(name, func(t *testing.T) {
					s := newSim()
					user := "victim"
					s.record(scenario.Event{User: user, Obs: engine.Observation{ID: "home", Kind: engine.ObsLoginSucceeded, At: start.Add(-24 * time.Hour), Client: home}})
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
						if e.Push > 0 && firstBurst == 0 && find(ra, engine.SignalPushBurst) != nil {
							firstBurst = e.Push
						}
					}
					if firstBurst != want {
						t.Fatalf("PUSH_BURST first at push %d, configured line crossed at push %d", firstBurst, want)
					}
					if want > 0 || n >= s.cfg.StreakThreshold+1 {
						if sig := find(last, engine.SignalApprovalAfterBurst); sig == nil || last.GetSignals()[0] != sig {
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
			s.record(scenario.Event{User: u, Obs: engine.Observation{ID: u + "-home", Kind: engine.ObsLoginSucceeded, At: start.Add(-time.Hour), Client: home}})
		}
		first := 0
		for _, e := range scenario.Spray(users, start, 20*time.Second, attacker) {
			if sig := find(s.record(e), engine.SignalPushSpray); sig != nil && first == 0 {
				first = e.Push
			}
		}
		if first != s.cfg.Spray.IPThreshold {
			t.Fatalf("PUSH_SPRAY first at user %d, threshold %d", first, s.cfg.Spray.IPThreshold)
		}
	})

	t.Run("dormant spray", func(t *testing.T) {
		hosting := engine.ClientInfo{IP: "45.9.9.9", DeviceID: "kali", ASN: 50000, ASOrg: "Bulletproof Hosting", Lat: 52.37, Lon: 4.89, AccuracyKm: 20, HasGeo: true, Country: "NL", City: "Amsterdam"}
		var rotation []string
		for i := range 10 {
			rotation = append(rotation, fmt.Sprint("45.9.9.", 10+i))
		}
		cfg := engine.DefaultConfig()
		tests := []struct {
			name     string
			accounts int
			spacing  time.Duration
			ips      []string
			// active accounts have history (a push approved at home yesterday).
			active int
			// first is the push at which PUSH_SPRAY must fire; every later
			// push must carry it too.
			first int
		}{
			{name: "12 accounts from one IP, 20s apart", accounts: 12, spacing: 20 * time.Second, first: cfg.Spray.IPThreshold},
			{name: "12 accounts from one IP, 1s apart", accounts: 12, spacing: time.Second, first: cfg.Spray.IPThreshold},
			{name: "12 accounts from one IP, 50s apart", accounts: 12, spacing: 50 * time.Second, first: cfg.Spray.IPThreshold},
			{name: "dormant and active accounts mixed", accounts: 6, active: 6, spacing: 20 * time.Second, first: cfg.Spray.IPThreshold},
			{name: "40 accounts across 10 IPs of one ASN", accounts: 40, spacing: 10 * time.Second, ips: rotation, first: cfg.Spray.ASNThreshold},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := newSim()
				var users []string
				for i := range tt.accounts + tt.active {
					u := fmt.Sprint("dormant", i)
					if i%2 == 1 && tt.active > 0 && i/2 < tt.active {
						u = fmt.Sprint("active", i)
						s.record(scenario.Event{User: u, Obs: engine.Observation{ID: u + "-home", Kind: engine.ObsPushApproved, At: start.Add(-24 * time.Hour), Client: home}})
					}
					users = append(users, u)
				}
				first, caught, pushes := 0, 0, 0
				for _, e := range scenario.DormantSpray(users, start, tt.spacing, hosting, tt.ips...) {
					sig := find(s.record(e), engine.SignalPushSpray)
					if e.Push == 0 {
						continue
					}
					pushes++
					if sig != nil && sig.GetSpray().GetDormantUsers() == 0 {
						t.Fatalf("push %d: the evidence does not count the dormant accounts: %v", e.Push, sig.GetSpray())
					}
					if sig != nil {
						caught++
						if first == 0 {
							first = e.Push
						}
					}
				}
				t.Logf("PUSH_SPRAY first at push %d of %d; on %d of the %d pushes from there on", first, pushes, caught, pushes-tt.first+1)
				if first != tt.first || caught != pushes-tt.first+1 {
					t.Fatalf("PUSH_SPRAY first at push %d (want %d), on %d pushes (want %d)", first, tt.first, caught, pushes-tt.first+1)
				}
			})
		}
	})

	t.Run("impossible travel", func(t *testing.T) {
		s := newSim()
		var ra *scoringv1.RiskAssessment
		for _, e := range scenario.Travel("victim", start, 40*time.Minute, home, attacker) {
			ra = s.record(e)
		}
		if sig := find(ra, engine.SignalImpossibleTravel); sig == nil || sig.GetConfidence() != 1 {
			t.Fatalf("IMPOSSIBLE_TRAVEL: %v", ra.GetSignals())
		}
	})
}

// onboarding replays mornings of a class of hires signing in for the
// first time through the HQ NAT, one per seed, and counts the push
// attempts and those that raised PUSH_SPRAY.
func onboarding(t *testing.T, hires int, arrivals time.Duration, mornings int) (attempts, flagged, badMornings int) {
	t.Helper()
	for seed := range uint64(mornings) {
		b := scenario.DefaultBenign()
		b.Users, b.Days, b.NewHires, b.HireArrivals, b.Seed = 0, 1, hires, arrivals, seed+1
		s := newSim()
		first, before := 0, flagged
		pushed := map[string]bool{}
		for _, e := range b.Generate() {
			ra := s.record(e)
			if e.Obs.Kind != engine.ObsAttempt {
				continue
			}
			attempts++
			if !pushed[e.User] && e.Obs.Client.IP == scenario.HQNAT.IP {
				first++
			}
			pushed[e.User] = true
			if find(ra, engine.SignalPushSpray) != nil {
				flagged++
			}
		}
		if first != hires {
			t.Fatalf("seed %d: %d first pushes through the office NAT, want %d", b.Seed, first, hires)
		}
		if flagged > before {
			badMornings++
		}
	}
	return attempts, flagged, badMornings
}

// TestSharedOfficeOfNewHiresStaysQuiet: a class of new hires, accounts
// with no history, sign in for the first time through one office NAT,
// each approving its push on the phone it has just enrolled. That is a
// dormant-account spray's shape, more users than the threshold in ten
// minutes, but every push is approved within a minute or so, and
// approvals vouch for the source: no PUSH_SPRAY, on any of 20 mornings.
func TestSharedOfficeOfNewHiresStaysQuiet(t *testing.T) {
	for _, tt := range []struct {
		hires    int
		arrivals time.Duration
	}{
		{12, 10 * time.Minute},
		{25, 15 * time.Minute},
		{30, 30 * time.Minute},
		{60, 90 * time.Minute},
	} {
		t.Run(fmt.Sprintf("%d hires over %s", tt.hires, tt.arrivals), func(t *testing.T) {
			attempts, flagged, _ := onboarding(t, tt.hires, tt.arrivals, 20)
			t.Logf("20 mornings, %d push attempts; PUSH_SPRAY on %d", attempts, flagged)
			if flagged != 0 {
				t.Fatalf("PUSH_SPRAY on %d of %d new-hire attempts", flagged, attempts)
			}
		})
	}
}

// TestNewHireRushIsOffsetByApprovals: when a whole class presses sign-in
// within a few minutes, more first pushes can wait at once than the
// threshold before anyone has approved, and inline nothing yet tells them
// from a spray. Each approval that follows offsets one waiting account
// with no history, which keeps the rush to a few flagged attempts; the
// bound is what the offset buys (without it, about one attempt in twelve
// of the 20-in-5-minutes class is flagged).
func TestNewHireRushIsOffsetByApprovals(t *testing.T) {
	for _, tt := range []struct {
		hires    int
		arrivals time.Duration
		maxRate  float64
	}{
		{10, 2 * time.Minute, 0},
		{20, 5 * time.Minute, 0.01},
		{40, 10 * time.Minute, 0.01},
	} {
		t.Run(fmt.Sprintf("%d hires within %s", tt.hires, tt.arrivals), func(t *testing.T) {
			attempts, flagged, bad := onboarding(t, tt.hires, tt.arrivals, 20)
			rate := float64(flagged) / float64(attempts)
			t.Logf("20 mornings, %d push attempts; PUSH_SPRAY on %d (%.2f%%), on %d mornings", attempts, flagged, 100*rate, bad)
			if rate > tt.maxRate {
				t.Fatalf("PUSH_SPRAY on %.2f%% of new-hire attempts (> %.2f%%)", 100*rate, 100*tt.maxRate)
			}
		})
	}
}

func TestGenerateDeterministic(t *testing.T) {
	b := scenario.DefaultBenign()
	b.Users, b.Days = 200, 3
	x, y := b.Generate(), b.Generate()
	if len(x) != len(y) || fmt.Sprint(x[len(x)/2]) != fmt.Sprint(y[len(y)/2]) {
		t.Fatal("same seed, different population")
	}
}

// TestHabitsLeaveOtherUsersAlone: the phones that miss pushes and the new
// phones draw from each user's own stream; every user without them has
// the history they have without the habits.
func TestHabitsLeaveOtherUsersAlone(t *testing.T) {
	b := scenario.DefaultBenign()
	b.Users = 500
	with := b.Generate()
	b.Retries, b.PhoneSwitches = 0, 0
	without := b.Generate()
	history := func(events []scenario.Event) map[string][]string {
		out := map[string][]string{}
		for _, e := range events {
			o := e.Obs
			out[e.User] = append(out[e.User], fmt.Sprint(o.Kind, o.At.UnixMilli(), o.Client, o.Responder))
		}
		return out
	}
	habits := map[string]bool{}
	for _, e := range with {
		if e.Habit != "" {
			habits[e.User] = true
		}
	}
	a, z := history(with), history(without)
	for u, h := range z {
		if !habits[u] && !slices.Equal(a[u], h) {
			t.Fatalf("%s has no habit but another history", u)
		}
	}
	t.Logf("%d of %d users with a habit; the %d others unchanged", len(habits), len(z), len(z)-len(habits))
	if len(habits) == 0 || len(habits) == len(z) {
		t.Fatalf("%d users with habits", len(habits))
	}
}
