package decision_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
	"github.com/pushbackhq/pushback/services/decision"
	"github.com/pushbackhq/pushback/services/scoring"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// switchable is a store that can be switched off (Redis down, or its
// circuit open).
type switchable struct {
	store.Store
	down atomic.Bool
}

var errStoreDown = errors.New("store: unavailable (circuit open)")

func (f *switchable) Get(ctx context.Context, k []byte) ([]byte, error) {
	if f.down.Load() {
		return nil, errStoreDown
	}
	return f.Store.Get(ctx, k)
}

func (f *switchable) Update(ctx context.Context, fn func(store.Txn) error) error {
	if f.down.Load() {
		return errStoreDown
	}
	return f.Store.Update(ctx, fn)
}

func (f *switchable) Scan(ctx context.Context, o store.ScanOptions) ([]store.Item, error) {
	if f.down.Load() {
		return nil, errStoreDown
	}
	return f.Store.Scan(ctx, o)
}

// inline calls a scoring service directly (no gRPC), for tests that make
// hundreds of thousands of decisions.
type inline struct{ s *scoring.Service }

func (d inline) Assess(ctx context.Context, in *scoringv1.AssessRequest, _ ...grpc.CallOption) (*scoringv1.AssessResponse, error) {
	return d.s.Assess(ctx, in)
}

func (d inline) Observe(ctx context.Context, in *scoringv1.ObserveRequest, _ ...grpc.CallOption) (*scoringv1.ObserveResponse, error) {
	return d.s.Observe(ctx, in)
}

func countPushes(rs ...*decisionv1.DecideResponse) int {
	n := 0
	for _, r := range rs {
		if pushes(r.GetOutcome()) && !r.GetReplayed() {
			n++
		}
	}
	return n
}

// TestRetriedAttemptIDNeverPushesTwice plays an attacker who reuses one
// attempt id while the store cannot record: each retry gets the answer the
// attempt got, marked replayed (a hook sends no second push for it), and
// the same id for another request is refused. Before, every retry was
// judged afresh and answered with a new number-matched push.
func TestRetriedAttemptIDNeverPushesTwice(t *testing.T) {
	f := &switchable{Store: storetest.Memory(t)}
	e := newEnv(t, envOptions{store: f})
	var out []*decisionv1.DecideResponse
	for i := range 4 {
		out = append(out, e.decide(t, attacker("vic", fmt.Sprint("a-", i), t0)))
	}
	f.down.Store(true)
	for range 20 {
		r := e.decide(t, attacker("vic", "a-0", t0.Add(time.Second)))
		if !r.GetReplayed() || r.GetDecisionId() != out[0].GetDecisionId() {
			t.Fatalf("retry of a-0: decision %s replayed=%v, want the first answer %s replayed", r.GetDecisionId(), r.GetReplayed(), out[0].GetDecisionId())
		}
		out = append(out, r)
	}
	other := attacker("vic", "a-0", t0.Add(time.Second))
	other.AppId = "another-app"
	if _, err := e.dc.Decide(context.Background(), other); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("a-0 for another request: %v, want ALREADY_EXISTS", err)
	}
	if n := countPushes(out...); n != 4 {
		t.Fatalf("%d pushes, want 4 (one per attempt)", n)
	}
	if r := e.decide(t, attacker("vic", "fresh", t0.Add(2*time.Second))); r.GetOutcome() != deny {
		t.Fatalf("the 5th attempt: %v, want DENY", r.GetOutcome())
	}
}

// TestReplayOfAnOldAttemptIsRefused: a retry is the same attempt only while
// its push could still be live; an attempt id reused days later is refused
// instead of replaying an ALLOW nobody counts.
func TestReplayOfAnOldAttemptIsRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	first := e.decide(t, attacker("old", "a-0", t0))
	if first.GetOutcome() != allow {
		t.Fatalf("first: %v", first.GetOutcome())
	}
	if r := e.decide(t, attacker("old", "a-0", t0.Add(time.Minute))); !r.GetReplayed() {
		t.Fatal("a retry a minute later is not replayed")
	}
	if _, err := e.dc.Decide(context.Background(), attacker("old", "a-0", t0.Add(72*time.Hour))); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("the same attempt id 72h later: %v, want ALREADY_EXISTS", err)
	}
}

// TestCooldownAfterAClearingHolds: after a cooldown is cleared (by the
// user's WebAuthn sign-in or an operator), the attacker's next burst starts
// a cooldown that holds for its whole length. Before, the new cooldown
// merged with the cleared one and was void.
func TestCooldownAfterAClearingHolds(t *testing.T) {
	e := newEnv(t, envOptions{})
	for i := range 5 {
		e.decide(t, attacker("cleo", fmt.Sprint("a-", i), t0))
	}
	if _, err := e.dc.ClearCooldown(context.Background(), &decisionv1.ClearCooldownRequest{UserId: "cleo", Reason: "help desk verified the user"}); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(11 * time.Minute) // the first burst is out of the 10-minute window
	var last *decisionv1.DecideResponse
	for i := range 5 {
		last = e.decide(t, attacker("cleo", fmt.Sprint("b-", i), at))
	}
	if last.GetOutcome() != deny || last.GetCooldown().AsDuration() == 0 {
		t.Fatalf("the second burst's 5th: %v cooldown %v, want DENY with a cooldown", last.GetOutcome(), last.GetCooldown())
	}
	for i := range 5 {
		at = at.Add(2 * time.Minute)
		if r := e.decide(t, attacker("cleo", fmt.Sprint("c-", i), at)); r.GetOutcome() != deny {
			t.Fatalf("%v into the new cooldown: %v (%v), want DENY", at.Sub(t0.Add(11*time.Minute)), r.GetOutcome(), r.GetReasons())
		}
	}
}

// TestEvictionFloodDoesNotResetAVictim plays an attacker who, with the
// store down, sprays fresh user ids to push the victim's entry out of
// memory and start its count again.
func TestEvictionFloodDoesNotResetAVictim(t *testing.T) {
	f := &switchable{Store: storetest.Memory(t)}
	clk := &testClock{t: t0}
	const maxUsers = 6400
	svc, err := decision.New(decision.Options{Store: f, Scorer: inline{scoring.New(scoring.Options{Store: f})},
		Policy: parse(t, ""), Now: clk.now, Budget: time.Second, MaxGuardUsers: maxUsers})
	if err != nil {
		t.Fatal(err)
	}
	f.down.Store(true)
	ctx := context.Background()
	sent, spray := 0, 0
	for round := range 3 {
		for i := range 6 {
			r, err := svc.Decide(ctx, attacker("vic", fmt.Sprintf("v-%d-%d", round, i), t0))
			if err != nil {
				t.Fatal(err)
			}
			if pushes(r.GetOutcome()) {
				sent++
			}
		}
		for range maxUsers * 3 / 2 {
			if _, err := svc.Decide(ctx, attacker(fmt.Sprint("u", spray), "x", t0)); err != nil {
				t.Fatal(err)
			}
			spray++
		}
	}
	if sent > 4 {
		t.Fatalf("the victim got %d pushes across %d sprayed users, want at most 4", sent, spray)
	}
}

type hungNotifier struct{}

func (hungNotifier) Notify(ctx context.Context, _ *notifyv1.NotifyRequest, _ ...grpc.CallOption) (*notifyv1.NotifyResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestHungNotifyDoesNotHoldDecide: with notify hung, hundreds of denials
// at once (each with an alert to queue after its answer) still answer
// within the budget: follow-ups wait in a queue, never in Decide.
func TestHungNotifyDoesNotHoldDecide(t *testing.T) {
	st := storetest.Memory(t)
	const budget = 2 * time.Second
	svc, err := decision.New(decision.Options{Store: st, Scorer: inline{scoring.New(scoring.Options{Store: st})}, Notifier: hungNotifier{},
		Policy: parse(t, ""), Budget: budget, NotifyTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const users = 40
	for u := range users {
		for i := range 5 {
			if _, err := svc.Decide(ctx, attacker(fmt.Sprint("u", u), fmt.Sprint("a-", i), time.Now())); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Every user is in a cooldown: each attempt is a denial with an alert.
	const n = 600
	took := make(chan time.Duration, n)
	for i := range n {
		go func() {
			s := time.Now()
			_, _ = svc.Decide(ctx, attacker(fmt.Sprint("u", i%users), fmt.Sprint("d-", i), time.Now()))
			took <- time.Since(s)
		}()
	}
	for range n {
		// Far above what a denial needs even on a loaded machine, far
		// below the minute notify hangs for: only a Decide that waited for
		// notify is this slow.
		if d := <-took; d > 30*time.Second {
			t.Fatalf("a denial took %v with notify hung: it waited for notify", d)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	_ = svc.Drain(dctx)
}

// TestPhishingResistantFactorNeverGetsNumberMatching: number matching sends
// a push; a hook that passes the login's factor through must never be told
// to push for a WebAuthn or smart-card attempt, whatever the score, and
// whatever the failure mode.
func TestPhishingResistantFactorNeverGetsNumberMatching(t *testing.T) {
	for _, mode := range []scorerMode{scorerReal, scorerStopped} {
		e := newEnv(t, envOptions{scorer: mode, budget: time.Second})
		for i := range 8 {
			e.decide(t, attacker("pr", fmt.Sprint("a-", i), t0))
		}
		for _, f := range []eventv1.Factor{eventv1.Factor_FACTOR_WEBAUTHN, eventv1.Factor_FACTOR_SMART_CARD} {
			r := attacker("pr", "strong-"+f.String(), t0)
			r.Factor = f
			if got := e.decide(t, r); got.GetOutcome() == numberMatch {
				t.Fatalf("scorer mode %d, %v: REQUIRE_NUMBER_MATCH (%v)", mode, f, got.GetReasons())
			}
		}
	}
}
