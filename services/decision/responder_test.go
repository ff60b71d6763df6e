package decision_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
	"github.com/pushbackhq/pushback/services/decision"
	"github.com/pushbackhq/pushback/services/scoring"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// feed serves scoring's risk feed in memory; while down is set it fails.
type feed struct {
	s    *scoring.Service
	down atomic.Bool
}

func (f *feed) ListRiskChanges(ctx context.Context, in *scoringv1.ListRiskChangesRequest, _ ...grpc.CallOption) (*scoringv1.ListRiskChangesResponse, error) {
	if f.down.Load() {
		return nil, errors.New("scoring unreachable")
	}
	return f.s.ListRiskChanges(ctx, in)
}

func (f *feed) Assess(ctx context.Context, in *scoringv1.AssessRequest, _ ...grpc.CallOption) (*scoringv1.AssessResponse, error) {
	return f.s.Assess(ctx, in)
}

func (f *feed) Observe(ctx context.Context, in *scoringv1.ObserveRequest, _ ...grpc.CallOption) (*scoringv1.ObserveResponse, error) {
	return f.s.Observe(ctx, in)
}

// flakyNotes fails the first failures calls, then records like notes.
type flakyNotes struct {
	notes
	failures atomic.Int32
}

func (n *flakyNotes) Notify(ctx context.Context, in *notifyv1.NotifyRequest, opts ...grpc.CallOption) (*notifyv1.NotifyResponse, error) {
	if n.failures.Add(-1) >= 0 {
		return nil, errors.New("notify unreachable")
	}
	return n.notes.Notify(ctx, in, opts...)
}

func (n *flakyNotes) responses() []*notifyv1.NotifyRequest {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*notifyv1.NotifyRequest
	for _, r := range n.got {
		if len(r.GetResponseActions()) > 0 || r.GetAttributes()["rules"] != "" {
			out = append(out, r)
		}
	}
	return out
}

type responderEnv struct {
	svc     *decision.Service
	st      store.Store
	scoring *scoring.Service
	feed    *feed
	notes   *flakyNotes
	count   *decision.Counters
	stop    func()
}

func newResponderEnv(t *testing.T, st store.Store, o decision.Options) *responderEnv {
	t.Helper()
	if st == nil {
		st = storetest.Memory(t, storeKeyspaces()...)
	}
	sc, err := scoring.Open(scoring.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sc.Close() })
	e := &responderEnv{st: st, scoring: sc, feed: &feed{s: sc}, notes: &flakyNotes{}, count: &decision.Counters{}}
	o.Store, o.Scorer, o.Feed, o.Notifier, o.Counters = st, e.feed, e.feed, e.notes, e.count
	if o.Policy == nil {
		o.Policy = parse(t, "")
	}
	d, err := decision.New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = d
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.RunResponder(ctx); close(done) }()
	e.stop = func() { cancel(); <-done }
	t.Cleanup(e.stop)
	return e
}

func (e *responderEnv) observe(t *testing.T, evs ...*eventv1.AuthEvent) {
	t.Helper()
	if _, err := e.scoring.Observe(context.Background(), &scoringv1.ObserveRequest{Events: evs}); err != nil {
		t.Fatal(err)
	}
}

func awaitResponse(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func loggedEvent(id, user string, typ eventv1.EventType, at time.Time, ip string) *eventv1.AuthEvent {
	return &eventv1.AuthEvent{EventId: id, Tenant: "acme", UserId: user, Type: typ, Time: timestamppb.New(at), Factor: eventv1.Factor_FACTOR_PUSH,
		Client: &eventv1.Client{Ip: ip, Geo: &eventv1.Geo{Latitude: -36.85, Longitude: 174.76, Country: "NZ"}}, Source: &eventv1.Source{Idp: "okta"}}
}

// fatigue is a burst of denied pushes from an attacker's address, then
// the approval.
func fatigue(user string, end time.Time) []*eventv1.AuthEvent {
	var evs []*eventv1.AuthEvent
	for i := range 6 {
		evs = append(evs, loggedEvent(fmt.Sprint(user, "-deny-", i), user, eventv1.EventType_EVENT_TYPE_PUSH_DENIED, end.Add(-3*time.Minute+time.Duration(i)*20*time.Second), "203.0.113.9"))
	}
	return append(evs, loggedEvent(user+"-ok", user, eventv1.EventType_EVENT_TYPE_PUSH_APPROVED, end, "203.0.113.9"))
}

func withRule(reqs []*notifyv1.NotifyRequest, rule string) []*notifyv1.NotifyRequest {
	var out []*notifyv1.NotifyRequest
	for _, r := range reqs {
		for _, a := range r.GetResponseActions() {
			if a.GetRule() == rule {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// TestResponderActsOnceOnAFatigueSuccess: the approval ends in one
// response with the alert and the revocation; later events of the user,
// while APPROVAL_AFTER_BURST lingers in the risk, do not revoke again.
func TestResponderActsOnceOnAFatigueSuccess(t *testing.T) {
	e := newResponderEnv(t, nil, decision.Options{})
	now := time.Now().UTC().Add(-time.Second)
	e.observe(t, fatigue("ada", now.Add(-10*time.Minute))...)
	awaitResponse(t, "the fatigue success answered", func() bool { return len(withRule(e.notes.responses(), "fatigue-success")) == 1 })
	r := withRule(e.notes.responses(), "fatigue-success")[0]
	if r.GetKind() != notifyv1.Kind_KIND_SOC_ALERT || r.GetUserId() != "ada" || r.GetTenant() != "acme" || r.GetResponseActions()[0].GetAction() != "revoke_sessions" ||
		r.GetResponseActions()[0].GetDryRun() || r.GetAttributes()["source"] != "okta" || r.GetIdempotencyKey() != "respond:"+r.GetAttributes()["change_id"] {
		t.Fatalf("response %v", r)
	}
	// The user signs in again later: the old success is still in the risk,
	// not fresh.
	before := e.count.RiskChanges.Load()
	e.observe(t, loggedEvent("ada-login", "ada", eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, now, "203.0.113.9"))
	awaitResponse(t, "the later login evaluated", func() bool { return e.count.RiskChanges.Load() > before })
	if n := len(withRule(e.notes.responses(), "fatigue-success")); n != 1 {
		t.Fatalf("%d fatigue-success responses; a lingering signal acted on again", n)
	}
}

// TestResponderResumesAfterRestartWithoutNewResponses: a restart reads
// its cursor back; what it re-reads (the overlap) carries the same
// idempotency keys, so notify queues nothing twice; later changes are
// answered.
func TestResponderResumesAfterRestartWithoutNewResponses(t *testing.T) {
	st := storetest.Memory(t)
	e := newResponderEnv(t, st, decision.Options{})
	now := time.Now().UTC().Add(-time.Second)
	e.observe(t, fatigue("bea", now.Add(-10*time.Minute))...)
	awaitResponse(t, "first response", func() bool { return len(withRule(e.notes.responses(), "fatigue-success")) == 1 })
	first := map[string]bool{}
	for _, r := range e.notes.responses() {
		first[r.GetIdempotencyKey()] = true
	}
	e.stop()

	e2 := newResponderEnv(t, st, decision.Options{})
	e2.observe(t, fatigue("cal", now)...)
	awaitResponse(t, "response after the restart", func() bool { return len(withRule(e2.notes.responses(), "fatigue-success")) == 1 })
	for _, r := range e2.notes.responses() {
		if r.GetUserId() == "bea" && !first[r.GetIdempotencyKey()] {
			t.Fatalf("a change answered before the restart got a new key: %v", r)
		}
	}
	if withRule(e2.notes.responses(), "fatigue-success")[0].GetUserId() != "cal" {
		t.Fatal("the restarted responder acted on bea's success again")
	}
}

// TestResponderRetriesUntilNotifyTakesIt: a change is not passed over
// while notify is down; the failures are counted.
func TestResponderRetriesUntilNotifyTakesIt(t *testing.T) {
	e := newResponderEnv(t, nil, decision.Options{})
	e.notes.failures.Store(3)
	e.observe(t, loggedEvent("dee-fraud", "dee", eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED, time.Now().UTC().Add(-time.Second), "198.51.100.7"))
	awaitResponse(t, "the fraud report answered", func() bool { return len(withRule(e.notes.responses(), "fraud-reported")) == 1 })
	if e.count.RespondFailures.Load() < 3 {
		t.Fatalf("%d failures counted, want 3", e.count.RespondFailures.Load())
	}
}

func TestResponderDryRunAndShadow(t *testing.T) {
	shadow := parse(t, "version: candidate\nrespond:\n  rules:\n    - {name: everything, when: 'score > 0', actions: [alert]}\n")
	e := newResponderEnv(t, nil, decision.Options{RespondDryRun: true, ShadowPolicy: shadow})
	e.observe(t, loggedEvent("eve-fraud", "eve", eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED, time.Now().UTC().Add(-time.Second), "198.51.100.7"))
	awaitResponse(t, "the fraud report answered", func() bool { return len(withRule(e.notes.responses(), "fraud-reported")) == 1 })
	if a := withRule(e.notes.responses(), "fraud-reported")[0].GetResponseActions()[0]; !a.GetDryRun() {
		t.Fatalf("action %v under --respond-dry-run", a)
	}
	if e.count.ShadowRespondDifferences.Load() == 0 {
		t.Fatal("the shadow policy's different response rules were not counted")
	}
}

// TestResponderSurvivesAnUnreachableFeed: scoring down, then back; the
// responder catches up.
func TestResponderSurvivesAnUnreachableFeed(t *testing.T) {
	e := newResponderEnv(t, nil, decision.Options{})
	e.feed.down.Store(true)
	e.observe(t, loggedEvent("fay-fraud", "fay", eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED, time.Now().UTC().Add(-time.Second), "198.51.100.7"))
	awaitResponse(t, "failures counted", func() bool { return e.count.RespondFailures.Load() > 0 })
	e.feed.down.Store(false)
	awaitResponse(t, "the fraud report answered after scoring came back", func() bool { return len(withRule(e.notes.responses(), "fraud-reported")) == 1 })
}

// TestResponderFollowsAReloadedPolicy: response rules change with the
// policy, without a restart.
func TestResponderFollowsAReloadedPolicy(t *testing.T) {
	e := newResponderEnv(t, nil, decision.Options{Policy: parse(t, "version: quiet\n")})
	e.observe(t, loggedEvent("gus-fraud-1", "gus", eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED, time.Now().UTC().Add(-2*time.Second), "198.51.100.7"))
	awaitResponse(t, "the first change evaluated", func() bool { return e.count.RiskChanges.Load() == 1 })
	if n := len(e.notes.responses()); n != 0 {
		t.Fatalf("%d responses under a policy without response rules", n)
	}
	e.svc.SetPolicy(parse(t, "version: loud\nrespond:\n  rules:\n    - {name: any-fraud, when: 'event.type == \"FRAUD_REPORTED\"', actions: [alert, revoke_tokens]}\n"))
	e.observe(t, loggedEvent("gus-fraud-2", "gus", eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED, time.Now().UTC().Add(-time.Second), "198.51.100.7"))
	awaitResponse(t, "the reloaded rule answered", func() bool { return len(withRule(e.notes.responses(), "any-fraud")) == 1 })
}

// TestNewResponderLeavesTheFeedsPastAlone: a responder without a cursor (a
// new deployment on a store whose feed holds a day of changes) acts on
// what happens from now on, not on yesterday's attacks.
func TestNewResponderLeavesTheFeedsPastAlone(t *testing.T) {
	st := storetest.Memory(t)
	past, err := scoring.Open(scoring.Options{Store: st, Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := past.Observe(context.Background(), &scoringv1.ObserveRequest{Events: []*eventv1.AuthEvent{
		loggedEvent("old-fraud", "ora", eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED, time.Now().Add(-time.Hour), "198.51.100.7")}}); err != nil {
		t.Fatal(err)
	}
	e := newResponderEnv(t, st, decision.Options{})
	e.observe(t, loggedEvent("new-fraud", "pia", eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED, time.Now().UTC().Add(-time.Second), "198.51.100.7"))
	awaitResponse(t, "the new fraud report answered", func() bool { return len(withRule(e.notes.responses(), "fraud-reported")) == 1 })
	if r := withRule(e.notes.responses(), "fraud-reported"); len(r) != 1 || r[0].GetUserId() != "pia" {
		t.Fatalf("responses %v: the hour-old report was acted on", r)
	}
}

// refusingNotes refuses every response as invalid, as notify would a
// request it will never take.
type refusingNotes struct {
	mu    sync.Mutex
	users map[string]bool
}

func (n *refusingNotes) Notify(_ context.Context, in *notifyv1.NotifyRequest, _ ...grpc.CallOption) (*notifyv1.NotifyResponse, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.users[in.GetUserId()] = true
	return nil, apierr.InvalidArgument(apierr.FieldViolation{Field: "title", Description: "too long"})
}

func (n *refusingNotes) saw(user string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.users[user]
}

// TestResponseNotifyRefusesIsPassedOver: a response notify will never take
// must not hold every later change behind it.
func TestResponseNotifyRefusesIsPassedOver(t *testing.T) {
	st := storetest.Memory(t)
	sc, err := scoring.Open(scoring.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sc.Close() })
	f := &feed{s: sc}
	refuse := &refusingNotes{users: map[string]bool{}}
	count := &decision.Counters{}
	d, err := decision.New(decision.Options{Store: st, Scorer: f, Feed: f, Notifier: refuse, Counters: count, Policy: parse(t, "")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.RunResponder(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for i, u := range []string{"quin", "rory"} {
		if _, err := sc.Observe(context.Background(), &scoringv1.ObserveRequest{Events: []*eventv1.AuthEvent{
			loggedEvent(fmt.Sprint("fraud-", i), u, eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED, time.Now().UTC().Add(-time.Second), "198.51.100.7")}}); err != nil {
			t.Fatal(err)
		}
	}
	awaitResponse(t, "the second change reached, the first passed over", func() bool { return refuse.saw("quin") && refuse.saw("rory") })
	if n := count.RespondFailures.Load(); n < 2 {
		t.Fatalf("%d failures counted, want each refusal counted", n)
	}
}

// TestResponderAsksForCAEPSignals: a rule's caep_* actions reach notify
// with the claims the policy gives them.
func TestResponderAsksForCAEPSignals(t *testing.T) {
	pol := parse(t, `
version: caep
respond:
  rules:
    - name: fatigue-success
      when: '"APPROVAL_AFTER_BURST" in fresh'
      actions: [alert, caep_credential_change, caep_risk_level_change]
      credential_change: {credential_type: password, change_type: revoke}
      risk_level_change: {current_level: HIGH, risk_reason: MFA_FATIGUE_SUCCEEDED}
`)
	e := newResponderEnv(t, nil, decision.Options{Policy: pol})
	e.observe(t, fatigue("ada", time.Now().UTC().Add(-10*time.Minute))...)
	awaitResponse(t, "the fatigue success answered", func() bool { return len(withRule(e.notes.responses(), "fatigue-success")) == 1 })
	acts := withRule(e.notes.responses(), "fatigue-success")[0].GetResponseActions()
	if len(acts) != 2 {
		t.Fatalf("actions %v", acts)
	}
	cc, rl := acts[0].GetSecurityEvent(), acts[1].GetSecurityEvent()
	if acts[0].GetAction() != "caep_credential_change" || cc.GetType() != notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_CREDENTIAL_CHANGE ||
		cc.GetCredentialType() != "password" || cc.GetChangeType() != "revoke" {
		t.Fatalf("credential change %v", acts[0])
	}
	if acts[1].GetAction() != "caep_risk_level_change" || rl.GetType() != notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_RISK_LEVEL_CHANGE ||
		rl.GetCurrentLevel() != "HIGH" || rl.GetPreviousLevel() != "" || rl.GetPrincipal() != "USER" || rl.GetRiskReason() != "MFA_FATIGUE_SUCCEEDED" {
		t.Fatalf("risk level change %v", acts[1])
	}
}
