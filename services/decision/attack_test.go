package decision_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	defaultpolicy "github.com/pushbackhq/pushback/deploy/policy"
	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/redistest"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
	"github.com/pushbackhq/pushback/services/decision"
	"github.com/pushbackhq/pushback/services/decision/guard"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	deny        = decisionv1.Outcome_OUTCOME_DENY
	allow       = decisionv1.Outcome_OUTCOME_ALLOW
	numberMatch = decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH
)

// attacker is a push attempt from the attacker's own network and laptop.
func attacker(user, attempt string, at time.Time) *decisionv1.DecideRequest {
	r := req(user, "vpn", attempt, at)
	r.Client = &eventv1.Client{Ip: "203.0.113.66", Asn: 64666, DeviceId: "attacker-laptop"}
	return r
}

func pushes(o decisionv1.Outcome) bool { return o == allow || o == numberMatch }

// TestFailureModeCountsEveryAttempt: with scoring down, the failure mode
// answers, and still every attempt counts: the 5th push in 10 minutes is
// DENY and starts a cooldown, not a 5th number-matched push.
func TestFailureModeCountsEveryAttempt(t *testing.T) {
	e := newEnv(t, envOptions{scorer: scorerStopped, budget: time.Second})
	want := []decisionv1.Outcome{numberMatch, numberMatch, numberMatch, numberMatch, deny, deny, deny}
	for i, w := range want {
		r := e.decide(t, attacker("frida", fmt.Sprint("a-", i), t0.Add(time.Duration(i)*time.Second)))
		if r.GetOutcome() != w || r.GetFailureCause() != decisionv1.FailureCause_FAILURE_CAUSE_SCORING_UNAVAILABLE {
			t.Fatalf("attempt %d: %v (%v, cause %v), want %v", i+1, r.GetOutcome(), r.GetReasons(), r.GetFailureCause(), w)
		}
		if i == 4 && (!slices.Contains(r.GetMatchedRules(), "burst-deny") || r.GetCooldown().AsDuration() != 15*time.Minute) {
			t.Fatalf("5th attempt: rules %v cooldown %v, want burst-deny and a 15m cooldown", r.GetMatchedRules(), r.GetCooldown().AsDuration())
		}
	}
}

// TestSaturatedMeshShedsAtOnceAndStillCounts: with every slot waiting for
// scoring taken, the next call is not queued behind them: it is answered at
// once from the guard, says so, is counted, and still meets the burst
// limits.
func TestSaturatedMeshShedsAtOnceAndStillCounts(t *testing.T) {
	entered := make(chan struct{}, 1)
	e := newEnv(t, envOptions{scorer: scorerSlow, budget: time.Hour, maxInFlight: 1, scoringEntered: entered})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	held := make(chan error, 1)
	go func() {
		// Holds the only slot until the test ends it.
		_, err := e.dc.Decide(ctx, attacker("gus", "held", t0))
		held <- err
	}()
	<-entered
	var last *decisionv1.DecideResponse
	for i := range 5 {
		last = e.decide(t, attacker("gus", fmt.Sprint("s-", i), t0))
		if last.GetFailureCause() != decisionv1.FailureCause_FAILURE_CAUSE_SHED || !strings.Contains(last.GetReasons()[0], "mesh saturated") {
			t.Fatalf("call %d: cause %v reasons %v, want shed", i+1, last.GetFailureCause(), last.GetReasons())
		}
	}
	// The held call is in flight, so the 5th shed call is the 5th attempt
	// the guard counted.
	if last.GetOutcome() != deny {
		t.Fatalf("5th shed attempt: %v, want DENY", last.GetOutcome())
	}
	if n := e.counters.Shed.Load(); n != 5 {
		t.Fatalf("Shed = %d, want 5", n)
	}
	cancel()
	<-held
}

// TestConcurrentAttemptsForOneUserAreOrdered: two replicas on one store,
// each with its own memory, take ten attempts of one user at once. No
// update is lost: at most four pushes go out, and the store holds all ten
// attempts.
func TestConcurrentAttemptsForOneUserAreOrdered(t *testing.T) {
	for _, kind := range []string{"badger", "redis"} {
		t.Run(kind, func(t *testing.T) {
			var st store.Store
			if kind == "redis" {
				rs, err := store.OpenRedis(context.Background(), store.RedisOptions{Addrs: []string{redistest.Start(t).Addr}, Keyspaces: decision.Keyspaces()})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = rs.Close() })
				st = rs
			} else {
				st = storetest.Memory(t)
			}
			// Two replicas on one store.
			a := newEnv(t, envOptions{store: st, shared: true})
			b := newEnv(t, envOptions{store: st, shared: true})
			const n = 10
			outcomes := make([]decisionv1.Outcome, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					e := a
					if i%2 == 1 {
						e = b
					}
					outcomes[i] = e.decide(t, attacker("hana", fmt.Sprint("c-", i), t0)).GetOutcome()
				}()
			}
			wg.Wait()
			sent := 0
			for _, o := range outcomes {
				if pushes(o) {
					sent++
				}
			}
			if sent > 4 {
				t.Fatalf("%d pushes out of %d concurrent attempts (%v), want at most 4", sent, n, outcomes)
			}
			raw, err := st.Get(context.Background(), []byte("decision/cooldown/"+store.KeyPart("")+"/"+store.KeyPart("hana")))
			if err != nil {
				t.Fatal(err)
			}
			held, err := guard.Unmarshal(raw)
			if err != nil {
				t.Fatal(err)
			}
			if len(held.Attempts) != n {
				t.Fatalf("the store holds %d attempts, want %d: an update was lost", len(held.Attempts), n)
			}
		})
	}
}

// TestAttackerBurstDoesNotLockOutWebAuthn: after nine attacker pushes the
// user's own WebAuthn sign-in is not denied and not counted as a push, and
// an attacker keeping the burst up (five attempts every 10 minutes) never
// keeps the user out.
func TestAttackerBurstDoesNotLockOutWebAuthn(t *testing.T) {
	e := newEnv(t, envOptions{})
	at := t0
	for round := range 3 {
		for i := range 5 {
			e.decide(t, attacker("ines", fmt.Sprintf("a-%d-%d", round, i), at))
			at = at.Add(time.Second)
		}
		if round == 0 {
			for i := 5; i < 9; i++ {
				e.decide(t, attacker("ines", fmt.Sprintf("a-0-%d", i), at))
			}
		}
		w := req("ines", "vpn", fmt.Sprint("webauthn-", round), at)
		w.Factor = eventv1.Factor_FACTOR_WEBAUTHN
		r := e.decide(t, w)
		// ALLOW, not DENY, and not number matching either: a hook that
		// read that as "send the push" would send one nobody counted.
		if r.GetOutcome() != allow {
			t.Fatalf("round %d: the user's WebAuthn attempt got %v (%v), want ALLOW", round, r.GetOutcome(), r.GetReasons())
		}
		for _, rule := range r.GetMatchedRules() {
			if strings.HasPrefix(rule, "burst") || rule == decision.CooldownRule {
				t.Fatalf("round %d: burst or cooldown rule %q matched a phishing-resistant attempt", round, rule)
			}
		}
		risk, err := e.scoring.GetRisk(context.Background(), &scoringv1.GetRiskRequest{UserId: "ines", Time: timestamppb.New(at)})
		if err != nil {
			t.Fatal(err)
		}
		attackerPushes := 5*(round+1) + 4
		if got := window(risk.GetAssessment(), time.Hour).GetAttempts(); int(got) != attackerPushes {
			t.Fatalf("round %d: scoring counts %d attempts in the hour, want the attacker's %d only", round, got, attackerPushes)
		}
		at = at.Add(10 * time.Minute)
	}
}

func window(ra *scoringv1.RiskAssessment, d time.Duration) *scoringv1.WindowCount {
	for _, w := range ra.GetWindows() {
		if w.GetWindow().AsDuration() == d {
			return w
		}
	}
	return nil
}

// userKnown gives the user history: a trusted sign-in from their laptop at
// their office IP.
func userKnown(t *testing.T, e *env, user string) *eventv1.Client {
	t.Helper()
	c := &eventv1.Client{Ip: "198.51.100.7", Asn: 64500, DeviceId: "user-laptop",
		Geo: &eventv1.Geo{Latitude: 40.71, Longitude: -74.0, AccuracyKm: 20, Country: "US", City: "New York"}}
	_, err := e.scoring.Observe(context.Background(), &scoringv1.ObserveRequest{Events: []*eventv1.AuthEvent{{
		EventId: "known-" + user, UserId: user, Type: eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED,
		Time: timestamppb.New(t0.Add(-24 * time.Hour)), Factor: eventv1.Factor_FACTOR_PUSH, Client: c,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCooldownBindsTheAttackersSourceNotTheUsers: a cooldown started by
// an attacker's burst denies the attacker's IP, network and laptop, while
// the user's own attempts from their known laptop and office IP get number
// matching, with the familiarity evidence in the answer.
func TestCooldownBindsTheAttackersSourceNotTheUsers(t *testing.T) {
	e := newEnv(t, envOptions{})
	own := userKnown(t, e, "jo")
	at := t0
	var r *decisionv1.DecideResponse
	for i := range 5 {
		r = e.decide(t, attacker("jo", fmt.Sprint("a-", i), at))
	}
	if r.GetOutcome() != deny || r.GetCooldown().AsDuration() == 0 {
		t.Fatalf("5th attacker push: %v cooldown %v, want DENY with a cooldown", r.GetOutcome(), r.GetCooldown())
	}
	step := func(id string, c *eventv1.Client) *decisionv1.DecideResponse {
		at = at.Add(time.Minute)
		rq := req("jo", "vpn", id, at)
		rq.Client = c
		return e.decide(t, rq)
	}
	for i := range 2 {
		r := step(fmt.Sprint("own-", i), own)
		if r.GetOutcome() != numberMatch {
			t.Fatalf("user's own attempt %d during the cooldown: %v (%v), want REQUIRE_NUMBER_MATCH", i+1, r.GetOutcome(), r.GetReasons())
		}
		cc := r.GetCooldownContext()
		if !cc.GetFamiliar() || cc.GetBoundBy() != "" || !cc.GetFamiliarity().GetKnownDevice() || !cc.GetFamiliarity().GetKnownIp() || cc.GetScope() != "source" {
			t.Fatalf("cooldown context %v, want familiar evidence (known device and IP)", cc)
		}
		if !strings.Contains(strings.Join(r.GetReasons(), "; "), "familiar context") || len(r.GetNumberChallenge()) != 2 {
			t.Fatalf("reasons %v challenge %q", r.GetReasons(), r.GetNumberChallenge())
		}
	}
	for _, c := range []struct {
		name, boundBy string
		client        *eventv1.Client
	}{
		{"same IP", "ip", &eventv1.Client{Ip: "203.0.113.66", DeviceId: "fresh-1"}},
		{"same laptop, new IP", "device", &eventv1.Client{Ip: "192.0.2.200", DeviceId: "attacker-laptop"}},
		{"same network", "asn", &eventv1.Client{Ip: "192.0.2.201", Asn: 64666, DeviceId: "fresh-2"}},
		// The attacker claims the user's laptop from their own IP: the IP binds.
		{"user's device id from the attacker's IP", "ip", &eventv1.Client{Ip: "203.0.113.66", DeviceId: "user-laptop"}},
		{"new everything", "", &eventv1.Client{Ip: "192.0.2.202", Asn: 64777, DeviceId: "fresh-3"}},
	} {
		r := step("bound-"+c.name, c.client)
		if r.GetOutcome() != deny || r.GetCooldownContext().GetBoundBy() != c.boundBy {
			t.Fatalf("%s: %v bound by %q (%v), want DENY bound by %q", c.name, r.GetOutcome(), r.GetCooldownContext().GetBoundBy(), r.GetReasons(), c.boundBy)
		}
	}
	// The new context the attacker just used is bound too.
	if r := step("rebound", &eventv1.Client{Ip: "192.0.2.202", DeviceId: "fresh-4"}); r.GetCooldownContext().GetBoundBy() != "ip" {
		t.Fatalf("the attacker's newest IP is not bound: %v", r.GetCooldownContext())
	}
	// The familiar context gets two number-matched pushes in 10 minutes
	// during the cooldown, no more: whoever reproduces the user's device and
	// network gets no more pushes than that.
	if r := step("own-2", own); r.GetOutcome() != deny || !r.GetCooldownContext().GetFamiliar() {
		t.Fatalf("the familiar context's 3rd push during the cooldown: %v (%v), want DENY", r.GetOutcome(), r.GetReasons())
	}
	// A known device alone, from an unknown network, is not familiar.
	if r := step("device-only", &eventv1.Client{Ip: "192.0.2.99", Asn: 64999, DeviceId: "user-laptop"}); r.GetOutcome() != deny || r.GetCooldownContext().GetFamiliar() {
		t.Fatalf("the user's device id from a new network: %v familiar=%v, want DENY", r.GetOutcome(), r.GetCooldownContext().GetFamiliar())
	}
}

// TestUserScopedCooldownDeniesEveryone: scope user keeps the old rule.
func TestUserScopedCooldownDeniesEveryone(t *testing.T) {
	e := newEnv(t, envOptions{policy: strings.Replace(string(defaultPolicyYAML(t)), "  scope: source\n", "  scope: user\n", 1)})
	own := userKnown(t, e, "kai")
	for i := range 5 {
		e.decide(t, attacker("kai", fmt.Sprint("a-", i), t0))
	}
	r := req("kai", "vpn", "own", t0.Add(time.Minute))
	r.Client = own
	got := e.decide(t, r)
	if got.GetOutcome() != deny || got.GetCooldownContext().GetScope() != "user" {
		t.Fatalf("user-scoped cooldown: %v %v, want DENY", got.GetOutcome(), got.GetCooldownContext())
	}
}

// TestFutureStampedAttemptDoesNotPassACooldown: an attempt stamped an
// hour ahead is taken at Pushback's clock: the cooldown holds and does not
// end early.
func TestFutureStampedAttemptDoesNotPassACooldown(t *testing.T) {
	e := newEnv(t, envOptions{})
	var r *decisionv1.DecideResponse
	for i := range 5 {
		r = e.decide(t, attacker("lou", fmt.Sprint("a-", i), t0))
	}
	until := t0.Add(r.GetCooldown().AsDuration())
	// Straight to the service: the test clock must not follow the claim.
	for _, ahead := range []time.Duration{time.Hour, 20 * time.Minute, 24 * 365 * time.Hour} {
		got, err := e.svc.Decide(context.Background(), attacker("lou", fmt.Sprint("future-", ahead), t0.Add(ahead)))
		if err != nil {
			t.Fatal(err)
		}
		if got.GetOutcome() != deny || !slices.Contains(got.GetMatchedRules(), decision.CooldownRule) {
			t.Fatalf("stamped %v ahead: %v (%v), want DENY by the cooldown", ahead, got.GetOutcome(), got.GetReasons())
		}
		if end := t0.Add(got.GetCooldown().AsDuration()); end.Before(until) {
			t.Fatalf("stamped %v ahead: the cooldown now ends %v, before %v", ahead, end, until)
		}
		if rec := e.record(t, got.GetDecisionId()); rec.GetRequest().GetTime().AsTime().After(t0) {
			t.Fatalf("recorded time %v is ahead of the clock %v", rec.GetRequest().GetTime().AsTime(), t0)
		}
	}
	if n := e.counters.ClockClamped.Load(); n != 3 {
		t.Fatalf("ClockClamped = %d, want 3", n)
	}
}

func defaultPolicyYAML(t *testing.T) []byte {
	t.Helper()
	return defaultpolicy.Default
}

// TestPacedAttackIsDenied plays an attacker who stays under burst-deny:
// four pushes every ten minutes. The hour's count stops it at the 10th.
func TestPacedAttackIsDenied(t *testing.T) {
	e := newEnv(t, envOptions{})
	sent := 0
	for round := range 6 {
		for i := range 4 {
			at := t0.Add(time.Duration(round)*11*time.Minute + time.Duration(i)*time.Second)
			if r := e.decide(t, attacker("paced", fmt.Sprintf("a-%d-%d", round, i), at)); pushes(r.GetOutcome()) {
				sent++
			}
		}
	}
	if sent > 9 {
		t.Fatalf("%d pushes in an hour of paced attempts, want at most 9", sent)
	}
}
