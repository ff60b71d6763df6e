package decision_test

import (
	"bytes"
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
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
	"github.com/pushbackhq/pushback/services/decision"
	"github.com/pushbackhq/pushback/services/decision/policy"
	"github.com/pushbackhq/pushback/services/scoring"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// testPolicy denies app "deny-me", so cooldowns start without depending on
// scoring's calibration, and maps apps to tiers of every failure mode.
const testPolicy = `
version: test-1
tiers:
  open: {failure_mode: open}
  closed: {failure_mode: closed}
  standard: {failure_mode: number_match}
apps:
  wiki: open
  payroll: closed
cooldown: {base: 10m, max: 40m, factor: 2}
groups:
  admins: [root]
rules:
  - name: deny-me
    when: app == "deny-me"
    outcome: DENY
    reason: this application is always denied
  - name: admins
    when: '"admins" in groups'
    outcome: REQUIRE_PHISHING_RESISTANT
    reason: administrators use a phishing-resistant factor
`

// notes records what decision queued with notify. With hold set, a call
// waits until hold is closed.
type notes struct {
	mu      sync.Mutex
	got     []*notifyv1.NotifyRequest
	hold    chan struct{}
	entered chan struct{}
}

func (n *notes) Notify(ctx context.Context, in *notifyv1.NotifyRequest, _ ...grpc.CallOption) (*notifyv1.NotifyResponse, error) {
	if n.hold != nil {
		n.entered <- struct{}{}
		select {
		case <-n.hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, in)
	return &notifyv1.NotifyResponse{}, nil
}

func (n *notes) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.got)
}

type scorerMode int

const (
	scorerReal scorerMode = iota
	scorerSlow
	scorerStopped
)

type envOptions struct {
	policy, shadow string // YAML; the built-in default when policy is empty
	scorer         scorerMode
	budget         time.Duration
	holdNotify     bool // Notify waits until the test releases it
	store          store.Store
	shared         bool // other services write store too (replicas)
	maxInFlight    int
	// scoring, when set, receives the slow scorer's calls as they arrive.
	scoringEntered chan struct{}
}

type env struct {
	clock    *testClock
	svc      *decision.Service
	counters *decision.Counters
	st       store.Store
	dc       decisionv1.DecisionServiceClient
	conn     *grpc.ClientConn
	inproc   *rpc.InProcess
	scoring  scoringv1.ScoringServiceClient
	notes    *notes
}

// testClock is the decision service's clock in tests.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.t) {
		c.t = t
	}
}

// follow moves the clock to the time of each Decide request.
func (c *testClock) follow(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if r, ok := req.(*decisionv1.DecideRequest); ok && r.GetTime() != nil {
		c.set(r.GetTime().AsTime())
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// slowScorer answers only when the caller gives up.
type slowScorer struct {
	*scoring.Service
	entered chan struct{}
}

func (s slowScorer) Assess(ctx context.Context, _ *scoringv1.AssessRequest) (*scoringv1.AssessResponse, error) {
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	<-ctx.Done()
	return nil, status.FromContextError(ctx.Err()).Err()
}

func parse(t testing.TB, src string) *policy.Policy {
	t.Helper()
	var data []byte = []byte(src)
	if src == "" {
		data = defaultpolicy.Default
	}
	p, err := policy.Parse(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newEnv wires the services as the mesh does: one gRPC server, peers
// reached in memory through it. Who may call what is the mesh's guard
// (pkg/auth), tested there and in services/mesh.
func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	st := o.store
	if st == nil {
		st = storetest.Memory(t, storeKeyspaces()...)
	}
	counters := &decision.Counters{}
	srv := rpc.NewServer(rpc.ServerOptions{})
	inproc := rpc.NewInProcess()
	sc := scoring.New(scoring.Options{Store: st})
	scoringConn := func() *grpc.ClientConn {
		c, err := inproc.Dial(rpc.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	var scorerConn *grpc.ClientConn
	switch o.scorer {
	case scorerReal:
		sc.Register(srv)
		scorerConn = scoringConn()
	case scorerSlow:
		scoringv1.RegisterScoringServiceServer(srv, slowScorer{Service: sc, entered: o.scoringEntered})
		scorerConn = scoringConn()
	case scorerStopped:
		// Scoring runs on a server of its own that has stopped.
		other := rpc.NewServer(rpc.ServerOptions{})
		sc.Register(other)
		ip := rpc.NewInProcess()
		go func() { _ = other.Serve(ip.Listener()) }()
		other.Stop()
		c, err := ip.Dial(rpc.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		scorerConn = c
	}
	var shadow *policy.Policy
	if o.shadow != "" {
		shadow = parse(t, o.shadow)
	}
	budget := o.budget
	if budget == 0 {
		budget = 5 * time.Second // generous: only the failure tests want scoring late
	}
	// Pushback's clock follows the attempts the tests make: each Decide
	// moves it to the attempt's time, never back.
	clk := &testClock{t: t0}
	n := &notes{}
	if o.holdNotify {
		n.hold, n.entered = make(chan struct{}), make(chan struct{}, 16)
	}
	svc, err := decision.New(decision.Options{
		Store: st, Scorer: scoringv1.NewScoringServiceClient(scorerConn), Notifier: n,
		Policy: parse(t, o.policy), ShadowPolicy: shadow, Counters: counters, Budget: budget,
		Now: clk.now, NotifyTimeout: time.Hour, MaxInFlight: o.maxInFlight, SharedStore: o.shared,
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.Register(srv)
	go func() { _ = srv.Serve(inproc.Listener()) }()
	t.Cleanup(srv.Stop)
	authed, err := inproc.Dial(rpc.ClientOptions{Unary: []grpc.UnaryClientInterceptor{clk.follow}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = authed.Close() })
	return &env{clock: clk, svc: svc, counters: counters, st: st, dc: decisionv1.NewDecisionServiceClient(authed), conn: scoringConn(),
		inproc: inproc, scoring: scoringv1.NewScoringServiceClient(scoringConn()), notes: n}
}

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func req(user, app, attempt string, at time.Time) *decisionv1.DecideRequest {
	return &decisionv1.DecideRequest{
		UserId: user, AppId: app, Factor: eventv1.Factor_FACTOR_PUSH, AttemptId: attempt, Time: timestamppb.New(at),
		Client: &eventv1.Client{Ip: "198.51.100.7", DeviceId: "d1", Geo: &eventv1.Geo{Latitude: 40.71, Longitude: -74.0, AccuracyKm: 20, Country: "US", City: "New York"}},
	}
}

func (e *env) decide(t *testing.T, r *decisionv1.DecideRequest) *decisionv1.DecideResponse {
	t.Helper()
	resp, err := e.dc.Decide(context.Background(), r)
	if err != nil {
		t.Fatalf("Decide(%s, %s): %v", r.GetUserId(), r.GetAppId(), err)
	}
	return resp
}

func (e *env) record(t *testing.T, id string) *decisionv1.DecisionRecord {
	t.Helper()
	got, err := e.dc.GetDecision(context.Background(), &decisionv1.GetDecisionRequest{DecisionId: id})
	if err != nil {
		t.Fatalf("GetDecision(%s): %v", id, err)
	}
	return got.GetDecision()
}

func (e *env) list(t *testing.T, user string) []*decisionv1.DecisionRecord {
	t.Helper()
	got, err := e.dc.ListDecisions(context.Background(), &decisionv1.ListDecisionsRequest{UserId: user})
	if err != nil {
		t.Fatalf("ListDecisions(%s): %v", user, err)
	}
	return got.GetDecisions()
}

func TestDefaultPolicyBurst(t *testing.T) {
	e := newEnv(t, envOptions{})
	want := []decisionv1.Outcome{
		decisionv1.Outcome_OUTCOME_ALLOW, decisionv1.Outcome_OUTCOME_ALLOW,
		decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH, decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH,
		decisionv1.Outcome_OUTCOME_DENY,
	}
	var last *decisionv1.DecideResponse
	for i, w := range want {
		last = e.decide(t, req("alice", "vpn", fmt.Sprint("a-", i), t0.Add(time.Duration(i)*time.Minute)))
		if last.GetOutcome() != w {
			t.Fatalf("push %d: %v (%v), want %v", i+1, last.GetOutcome(), last.GetReasons(), w)
		}
		if w == decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH && len(last.GetNumberChallenge()) != 2 {
			t.Fatalf("push %d: number challenge %q", i+1, last.GetNumberChallenge())
		}
	}
	if got := last.GetCooldown().AsDuration(); got != 15*time.Minute {
		t.Fatalf("cooldown %v, want 15m", got)
	}
	if !slices.Contains(last.GetMatchedRules(), "burst-deny") || last.GetPolicyVersion() != "default-2026.12" {
		t.Fatalf("rules %v version %q", last.GetMatchedRules(), last.GetPolicyVersion())
	}
	// The alert is queued after the answer; Drain waits for it.
	if err := e.svc.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.notes.count() != 1 {
		t.Fatalf("%d alerts queued, want 1 for the DENY", e.notes.count())
	}
}

// TestDenialAnswersBeforeItsAlertIsQueued: a slow notify (here one that
// waits for the test) does not hold up the answer to the IdP, and the
// alert is still queued once notify answers.
func TestDenialAnswersBeforeItsAlertIsQueued(t *testing.T) {
	e := newEnv(t, envOptions{holdNotify: true})
	var last *decisionv1.DecideResponse
	for i := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		resp, err := e.dc.Decide(ctx, req("alice", "vpn", fmt.Sprint("a-", i), t0.Add(time.Duration(i)*time.Minute)))
		cancel()
		if err != nil {
			t.Fatalf("push %d: %v (an answer waited for notify)", i+1, err)
		}
		last = resp
	}
	if last.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY {
		t.Fatalf("fifth push = %v, want DENY", last.GetOutcome())
	}
	<-e.notes.entered // the alert call is under way, and held
	if e.notes.count() != 0 {
		t.Fatal("the alert was queued although notify has not answered")
	}
	close(e.notes.hold)
	if err := e.svc.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.notes.count() != 1 {
		t.Fatalf("%d alerts queued after notify answered, want 1", e.notes.count())
	}
}

// TestAlertNamesTheTenant: notify keeps incidents, report links and
// security events per tenant, so the alert must say whose user it is.
func TestAlertNamesTheTenant(t *testing.T) {
	e := newEnv(t, envOptions{policy: testPolicy})
	r := req("omar", "deny-me", "d-0", t0)
	r.Tenant = "acme"
	if got := e.decide(t, r); got.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY {
		t.Fatalf("setup: %v", got.GetOutcome())
	}
	if err := e.svc.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.notes.mu.Lock()
	defer e.notes.mu.Unlock()
	if len(e.notes.got) != 1 || e.notes.got[0].GetTenant() != "acme" || e.notes.got[0].GetUserId() != "omar" {
		t.Fatalf("alerts %v, want one for acme/omar", e.notes.got)
	}
}

// TestLateStampedAttemptDoesNotEndACooldown: an attempt whose time lies
// before the cooldown's (a delayed retry, a skewed clock) is denied and
// leaves the cooldown at least as long as it was.
func TestLateStampedAttemptDoesNotEndACooldown(t *testing.T) {
	e := newEnv(t, envOptions{})
	for i := range 5 {
		e.decide(t, req("alice", "vpn", fmt.Sprint("a-", i), t0.Add(time.Duration(i)*time.Minute)))
	}
	steps := []struct {
		id string
		at time.Time
	}{
		{"escalate", t0.Add(5 * time.Minute)}, // cooldown until t0+35m
		{"late", t0.Add(-3 * time.Hour)},      // must not move it to t0-2h
		{"after-burst", t0.Add(20 * time.Minute)},
	}
	for _, st := range steps {
		if got := e.decide(t, req("alice", "vpn", st.id, st.at)); got.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY {
			t.Fatalf("%s at %v: %v (%v), want DENY by the cooldown", st.id, st.at, got.GetOutcome(), got.GetReasons())
		}
	}
}

func TestCooldownEscalatesUpToTheCap(t *testing.T) {
	e := newEnv(t, envOptions{policy: testPolicy})
	first := e.decide(t, req("bob", "deny-me", "d-0", t0))
	if first.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY || first.GetCooldown().AsDuration() != 10*time.Minute {
		t.Fatalf("first: %v cooldown %v", first.GetOutcome(), first.GetCooldown().AsDuration())
	}
	// Every attempt during the cooldown is denied and extends it: 20m, 40m, then the 40m cap.
	for i, want := range []time.Duration{20 * time.Minute, 40 * time.Minute, 40 * time.Minute, 40 * time.Minute} {
		r := e.decide(t, req("bob", "mail", fmt.Sprint("c-", i), t0.Add(time.Duration(i+1)*time.Minute)))
		if r.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY || r.GetCooldown().AsDuration() != want {
			t.Fatalf("attempt %d: %v cooldown %v, want DENY %v", i+1, r.GetOutcome(), r.GetCooldown().AsDuration(), want)
		}
		if !slices.Contains(r.GetMatchedRules(), decision.CooldownRule) {
			t.Fatalf("attempt %d: rules %v lack the cooldown", i+1, r.GetMatchedRules())
		}
	}
	// The last attempt was at +4m, so the cooldown ends at +44m.
	if r := e.decide(t, req("bob", "mail", "late-1", t0.Add(43*time.Minute))); r.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY {
		t.Fatalf("before the end: %v", r.GetOutcome())
	}
	// That attempt escalated it again, to +83m.
	r := e.decide(t, req("bob", "mail", "late-2", t0.Add(84*time.Minute)))
	if r.GetOutcome() != decisionv1.Outcome_OUTCOME_ALLOW || r.GetCooldown().AsDuration() != 0 {
		t.Fatalf("after the cooldown: %v cooldown %v (%v)", r.GetOutcome(), r.GetCooldown().AsDuration(), r.GetReasons())
	}
	// Other users are not affected.
	if r := e.decide(t, req("carol", "mail", "x", t0.Add(2*time.Minute))); r.GetOutcome() != decisionv1.Outcome_OUTCOME_ALLOW {
		t.Fatalf("another user: %v", r.GetOutcome())
	}
}

func TestCooldownClearedByOperator(t *testing.T) {
	e := newEnv(t, envOptions{policy: testPolicy})
	ctx := context.Background()
	e.decide(t, req("dana", "deny-me", "d-0", t0))
	got, err := e.dc.ClearCooldown(ctx, &decisionv1.ClearCooldownRequest{UserId: "dana", Reason: "user called the help desk"})
	if err != nil || !got.GetCleared() {
		t.Fatalf("ClearCooldown = %v, %v", got, err)
	}
	if r := e.decide(t, req("dana", "mail", "m-1", t0.Add(time.Minute))); r.GetOutcome() != decisionv1.Outcome_OUTCOME_ALLOW {
		t.Fatalf("after clearing: %v %v", r.GetOutcome(), r.GetReasons())
	}
	if _, err := e.dc.ClearCooldown(ctx, &decisionv1.ClearCooldownRequest{UserId: "dana"}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "reason") {
		t.Fatalf("ClearCooldown without a reason: %v, want InvalidArgument naming reason", err)
	}
	again, err := e.dc.ClearCooldown(ctx, &decisionv1.ClearCooldownRequest{UserId: "dana", Reason: "again"})
	if err != nil || again.GetCleared() {
		t.Fatalf("second ClearCooldown = %v, %v; want not cleared", again, err)
	}
	// Tenants are separate.
	tr := req("dana", "deny-me", "t-0", t0)
	tr.Tenant = "acme"
	e.decide(t, tr)
	other, err := e.dc.ClearCooldown(ctx, &decisionv1.ClearCooldownRequest{UserId: "dana", Reason: "help desk"})
	if err != nil || other.GetCleared() {
		t.Fatalf("clearing the default tenant cleared acme's cooldown: %v, %v", other, err)
	}
	acme, err := e.dc.ClearCooldown(ctx, &decisionv1.ClearCooldownRequest{UserId: "dana", Tenant: "acme", Reason: "help desk"})
	if err != nil || !acme.GetCleared() {
		t.Fatalf("ClearCooldown(acme) = %v, %v", acme, err)
	}
	if n := e.counters.CooldownsCleared.Load(); n != 2 {
		t.Fatalf("CooldownsCleared = %d, want 2", n)
	}
}

func TestCooldownClearedByPhishingResistantLogin(t *testing.T) {
	login := func(id string, at time.Time, f eventv1.Factor) *eventv1.AuthEvent {
		return &eventv1.AuthEvent{EventId: id, UserId: "erin", Type: eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, Time: timestamppb.New(at), Factor: f}
	}
	tests := []struct {
		name  string
		login *eventv1.AuthEvent
		want  decisionv1.Outcome
	}{
		{"webauthn after the deny", login("l1", t0.Add(time.Minute), eventv1.Factor_FACTOR_WEBAUTHN), decisionv1.Outcome_OUTCOME_ALLOW},
		{"smart card after the deny", login("l1", t0.Add(time.Minute), eventv1.Factor_FACTOR_SMART_CARD), decisionv1.Outcome_OUTCOME_ALLOW},
		{"webauthn before the deny", login("l1", t0.Add(-time.Minute), eventv1.Factor_FACTOR_WEBAUTHN), decisionv1.Outcome_OUTCOME_DENY},
		{"push approval after the deny", login("l1", t0.Add(time.Minute), eventv1.Factor_FACTOR_PUSH), decisionv1.Outcome_OUTCOME_DENY},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{policy: testPolicy})
			e.decide(t, req("erin", "deny-me", "d-0", t0))
			if _, err := e.scoring.Observe(context.Background(), &scoringv1.ObserveRequest{Events: []*eventv1.AuthEvent{tc.login}}); err != nil {
				t.Fatal(err)
			}
			r := e.decide(t, req("erin", "mail", "m-1", t0.Add(2*time.Minute)))
			if r.GetOutcome() != tc.want {
				t.Fatalf("%v (%v), want %v", r.GetOutcome(), r.GetReasons(), tc.want)
			}
			cleared := tc.want == decisionv1.Outcome_OUTCOME_ALLOW
			if rec := e.record(t, r.GetDecisionId()); rec.GetCooldownCleared() != cleared {
				t.Fatalf("record cooldown_cleared = %v, want %v", rec.GetCooldownCleared(), cleared)
			}
			if cleared {
				// Cleared for good: the next push is allowed too.
				if r := e.decide(t, req("erin", "mail", "m-2", t0.Add(3*time.Minute))); r.GetOutcome() != decisionv1.Outcome_OUTCOME_ALLOW {
					t.Fatalf("next push: %v", r.GetOutcome())
				}
			}
		})
	}
}

// TestPhishingResistantAttemptPassesACooldown: the factor that clears a
// cooldown is not denied by it, and does not lengthen it.
func TestPhishingResistantAttemptPassesACooldown(t *testing.T) {
	e := newEnv(t, envOptions{policy: testPolicy})
	first := e.decide(t, req("erin", "deny-me", "d-0", t0))
	if first.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY || first.GetCooldown() == nil {
		t.Fatalf("setup: %v, cooldown %v", first.GetOutcome(), first.GetCooldown())
	}
	for i, f := range []eventv1.Factor{eventv1.Factor_FACTOR_WEBAUTHN, eventv1.Factor_FACTOR_SMART_CARD} {
		r := req("erin", "mail", fmt.Sprint("k-", i), t0.Add(time.Duration(i+1)*time.Minute))
		r.Factor = f
		got := e.decide(t, r)
		if got.GetOutcome() == decisionv1.Outcome_OUTCOME_DENY || slices.Contains(got.GetMatchedRules(), decision.CooldownRule) {
			t.Fatalf("%v during a cooldown: %v %v", f, got.GetOutcome(), got.GetMatchedRules())
		}
	}
	// A push is still denied, and escalates the cooldown to its second
	// level (20m) only: the two keys did not count (they would have made
	// it the fourth, 40m).
	push := e.decide(t, req("erin", "mail", "p-1", t0.Add(3*time.Minute)))
	if push.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY || push.GetCooldown().AsDuration() != 20*time.Minute {
		t.Fatalf("push during the cooldown: %v, cooldown %v; want DENY, 20m", push.GetOutcome(), push.GetCooldown().AsDuration())
	}
}

func TestShadowPolicy(t *testing.T) {
	const shadow = `
version: candidate-2
rules:
  - name: vpn-number-match
    when: app == "vpn"
    outcome: REQUIRE_NUMBER_MATCH
    reason: number matching for the VPN
`
	e := newEnv(t, envOptions{policy: testPolicy, shadow: shadow})
	tests := []struct {
		user, app   string
		want, sh    decisionv1.Outcome
		differs     bool
		shadowRules []string
	}{
		{"fred", "vpn", decisionv1.Outcome_OUTCOME_ALLOW, decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH, true, []string{"vpn-number-match"}},
		{"gina", "mail", decisionv1.Outcome_OUTCOME_ALLOW, decisionv1.Outcome_OUTCOME_ALLOW, false, nil},
		{"hank", "deny-me", decisionv1.Outcome_OUTCOME_DENY, decisionv1.Outcome_OUTCOME_ALLOW, true, nil},
		// During hank's cooldown both policies deny.
		{"hank", "vpn", decisionv1.Outcome_OUTCOME_DENY, decisionv1.Outcome_OUTCOME_DENY, false, []string{"vpn-number-match", decision.CooldownRule}},
	}
	for i, tc := range tests {
		r := e.decide(t, req(tc.user, tc.app, fmt.Sprint("s-", i), t0.Add(time.Duration(i)*time.Second)))
		if r.GetOutcome() != tc.want {
			t.Fatalf("%s/%s: shadow mode changed the outcome: %v, want %v", tc.user, tc.app, r.GetOutcome(), tc.want)
		}
		rec := e.record(t, r.GetDecisionId())
		if rec.GetShadowOutcome() != tc.sh || rec.GetShadowDiffers() != tc.differs || rec.GetShadowPolicyVersion() != "candidate-2" ||
			!slices.Equal(rec.GetShadowMatchedRules(), tc.shadowRules) || len(rec.GetShadowReasons()) != len(tc.shadowRules) {
			t.Fatalf("%s/%s: shadow %v differs=%v version=%q rules=%v reasons=%v", tc.user, tc.app, rec.GetShadowOutcome(),
				rec.GetShadowDiffers(), rec.GetShadowPolicyVersion(), rec.GetShadowMatchedRules(), rec.GetShadowReasons())
		}
	}
	if ev, diff := e.counters.ShadowEvaluations.Load(), e.counters.ShadowDifferences.Load(); ev != 4 || diff != 2 {
		t.Fatalf("shadow evaluations %d differences %d, want 4 and 2", ev, diff)
	}
	// Turning shadow mode off stops recording.
	e.svc.SetShadowPolicy(nil)
	r := e.decide(t, req("ivan", "vpn", "off", t0))
	if rec := e.record(t, r.GetDecisionId()); rec.GetShadowPolicyVersion() != "" || rec.GetShadowOutcome() != decisionv1.Outcome_OUTCOME_UNSPECIFIED {
		t.Fatalf("shadow recorded while off: %v", rec)
	}
}

func TestIdempotency(t *testing.T) {
	e := newEnv(t, envOptions{})
	first := e.decide(t, req("jane", "vpn", "same", t0))
	again := e.decide(t, req("jane", "vpn", "same", t0))
	if again.GetDecisionId() != first.GetDecisionId() || !again.GetReplayed() || first.GetReplayed() || again.GetOutcome() != first.GetOutcome() {
		t.Fatalf("replay %v, first %v", again, first)
	}
	// The same attempt id for a different request is refused, not answered
	// with the stored decision (that would let a reused id skip the policy).
	for name, mutate := range map[string]func(*decisionv1.DecideRequest){
		"another application": func(r *decisionv1.DecideRequest) { r.AppId = "admin-console" },
		"another factor":      func(r *decisionv1.DecideRequest) { r.Factor = eventv1.Factor_FACTOR_SMS },
		"another client":      func(r *decisionv1.DecideRequest) { r.Client.Ip = "203.0.113.9" },
	} {
		r := req("jane", "vpn", "same", t0)
		mutate(r)
		_, err := e.dc.Decide(context.Background(), r)
		if status.Code(err) != codes.AlreadyExists || apierr.Reason(err) != "ERROR_REASON_ATTEMPT_REUSED" || !strings.Contains(err.Error(), "attempt_id") {
			t.Fatalf("%s under a used attempt id: %v, want AlreadyExists ATTEMPT_REUSED naming attempt_id", name, err)
		}
	}

	// Concurrent calls with one attempt id: one decision, one counted push.
	const n = 8
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := e.dc.Decide(context.Background(), req("kate", "vpn", "burst-1", t0))
			if err != nil {
				errs <- err
				return
			}
			ids[i] = r.GetDecisionId()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent calls got different decisions: %v", ids)
		}
	}
	if recs := e.list(t, "kate"); len(recs) != 1 {
		t.Fatalf("%d decisions stored for one attempt, want 1", len(recs))
	}
	risk, err := e.scoring.GetRisk(context.Background(), &scoringv1.GetRiskRequest{UserId: "kate", Time: timestamppb.New(t0)})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range risk.GetAssessment().GetWindows() {
		if w.GetAttempts() != 1 {
			t.Fatalf("window %v counts %d attempts, want 1", w.GetWindow().AsDuration(), w.GetAttempts())
		}
	}
	if d, r := e.counters.Decisions.Load(), e.counters.Replays.Load(); d != 2 || r != n {
		t.Fatalf("decisions %d replays %d, want 2 and %d", d, r, n)
	}
}

func TestFailureModes(t *testing.T) {
	tests := []struct {
		app     string
		want    decisionv1.Outcome
		mode    decisionv1.FailureMode
		tier    string
		reason  string
		shadowW decisionv1.Outcome
	}{
		{"wiki", decisionv1.Outcome_OUTCOME_ALLOW, decisionv1.FailureMode_FAILURE_MODE_OPEN, "open", "open tier fails open", decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH},
		{"payroll", decisionv1.Outcome_OUTCOME_DENY, decisionv1.FailureMode_FAILURE_MODE_CLOSED, "closed", "closed tier fails closed", decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH},
		{"mail", decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH, decisionv1.FailureMode_FAILURE_MODE_NUMBER_MATCH, "standard", "standard tier fails to number matching", decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH},
	}
	for _, sc := range []struct {
		name  string
		mode  scorerMode
		code  string
		scode codes.Code
	}{
		{"slow", scorerSlow, "DEADLINE_EXCEEDED", codes.DeadlineExceeded},
		{"stopped", scorerStopped, "UNAVAILABLE", codes.Unavailable},
	} {
		t.Run(sc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{policy: testPolicy, shadow: "rules: []\n", scorer: sc.mode, budget: time.Second})
			for _, tc := range tests {
				r := e.decide(t, req("lena-"+tc.app, tc.app, "f-"+tc.app, t0))
				if r.GetOutcome() != tc.want || r.GetFailureMode() != tc.mode || len(r.GetReasons()) != 1 || !strings.Contains(r.GetReasons()[0], tc.reason) {
					t.Fatalf("%s: %v failure_mode=%v reasons=%v, want %v %v %q", tc.app, r.GetOutcome(), r.GetFailureMode(), r.GetReasons(), tc.want, tc.mode, tc.reason)
				}
				if !strings.Contains(r.GetReasons()[0], "within 800ms (its share of the 1s budget)") {
					t.Fatalf("reason %q does not name the budget", r.GetReasons()[0])
				}
				rec := e.record(t, r.GetDecisionId())
				if rec.GetScoringError() != sc.code || rec.GetTier() != tc.tier || rec.GetShadowOutcome() != tc.shadowW {
					t.Fatalf("%s: record scoring_error=%q tier=%q shadow=%v", tc.app, rec.GetScoringError(), rec.GetTier(), rec.GetShadowOutcome())
				}
			}
			if n := e.counters.FailureModeDecisions.Load(); n != int64(len(tests)) {
				t.Fatalf("FailureModeDecisions = %d", n)
			}
		})
	}
}

func TestAuditTrail(t *testing.T) {
	e := newEnv(t, envOptions{policy: testPolicy})
	r := req("root", "payroll", "p-1", t0)
	r.Groups = []string{"staff"}
	r.SessionId = "sess-1"
	resp := e.decide(t, r)
	if resp.GetOutcome() != decisionv1.Outcome_OUTCOME_REQUIRE_PHISHING_RESISTANT {
		t.Fatalf("root: %v", resp.GetOutcome())
	}
	rec := e.record(t, resp.GetDecisionId())
	if rec.GetTier() != "closed" || !slices.Equal(rec.GetGroups(), []string{"staff", "admins"}) || rec.GetRequest().GetSessionId() != "sess-1" ||
		rec.GetResponse().GetPolicyVersion() != "test-1" || !slices.Equal(rec.GetResponse().GetMatchedRules(), []string{"admins"}) ||
		rec.GetResponse().GetRisk().GetUserId() != "root" || rec.GetDecidedAt() == nil {
		t.Fatalf("record %v", rec)
	}
	for i := 1; i < 5; i++ {
		e.decide(t, req("root", "mail", fmt.Sprint("p-", i+1), t0.Add(time.Duration(i)*time.Hour)))
	}
	got, err := e.dc.ListDecisions(context.Background(), &decisionv1.ListDecisionsRequest{UserId: "root", PageSize: 3})
	if err != nil || len(got.GetDecisions()) != 3 || got.GetNextPageToken() == "" {
		t.Fatalf("first page: %v, %v", got, err)
	}
	next, err := e.dc.ListDecisions(context.Background(), &decisionv1.ListDecisionsRequest{UserId: "root", PageSize: 3, PageToken: got.GetNextPageToken()})
	if err != nil || len(next.GetDecisions()) != 2 || next.GetNextPageToken() != "" {
		t.Fatalf("second page: %v, %v", next, err)
	}
	if _, err := e.dc.GetDecision(context.Background(), &decisionv1.GetDecisionRequest{DecisionId: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown decision: %v", err)
	}
}

// BenchmarkDecide measures one decision over the in-memory gRPC connection
// with the production interceptors (authentication included), real scoring
// and an in-memory store: validation, Assess, policy, commit.
func BenchmarkDecide(b *testing.B) {
	for _, shadow := range []string{"", testPolicy} {
		name := "enforced"
		if shadow != "" {
			name = "with-shadow"
		}
		b.Run(name, func(b *testing.B) {
			e := newEnv(b, envOptions{shadow: shadow})
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				// Many users, so that no cooldown or burst dominates.
				r := req(fmt.Sprint("user-", i%10000), "vpn", fmt.Sprint("b-", i), t0.Add(time.Duration(i)*time.Millisecond))
				if _, err := e.dc.Decide(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
