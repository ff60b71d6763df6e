package mesh_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/redistest"
	"github.com/pushbackhq/pushback/services/mesh"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestHungRedisDoesNotHoldDecidePastItsBudget plays a store that hangs
// rather than fails: Redis frozen with SIGSTOP still accepts connections and
// swallows commands, but never answers. An attacker who can slow the store
// (or an outage that does) must not hold the IdP hook past the decide
// budget: every Decide answers within the budget plus 10%, by the tier's
// failure mode, and once the store's circuit is open the answer comes at
// once. When Redis thaws, decisions are recorded again by themselves.
func TestHungRedisDoesNotHoldDecidePastItsBudget(t *testing.T) {
	// Large enough that gRPC and scheduling on a loaded two-core machine fit
	// in the 10% the test allows over it.
	const budget = 500 * time.Millisecond
	redis := redistest.Start(t)
	cfg := mesh.Default()
	cfg.StoreKind, cfg.RedisAddrs = "redis", []string{redis.Addr}
	reader := sdkmetric.NewManualReader()
	logs := &lockedBuffer{}
	cfg.Decision.Budget = budget
	m := startWith(t, cfg, mesh.Options{MetricReader: reader, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	dc := decisionv1.NewDecisionServiceClient(m.conn)
	metric := func(name string) int64 {
		t.Helper()
		// Collect also reports the callbacks that read the store (the
		// outbox depth), which fail while it is down; the rest is there.
		var rm metricdata.ResourceMetrics
		_ = reader.Collect(context.Background(), &rm)
		v, found := sumOf(rm, name)
		if !found {
			t.Fatalf("no %s metric", name)
		}
		return v
	}

	n := 0
	decide := func() (*decisionv1.DecideResponse, time.Duration) {
		t.Helper()
		n++
		// The caller's own deadline is generous: the budget under test is
		// the service's.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		resp, err := dc.Decide(ctx, decideReq(fmt.Sprint("hung-", n), fmt.Sprint("h-", n), time.Now()))
		took := time.Since(start)
		if err != nil {
			t.Fatalf("Decide %d: %v after %s; want the tier's failure mode, not an error", n, err, took)
		}
		return resp, took
	}
	healthy := func(r *decisionv1.DecideResponse) bool {
		return r.GetFailureMode() == decisionv1.FailureMode_FAILURE_MODE_UNSPECIFIED && r.GetOutcome() == decisionv1.Outcome_OUTCOME_ALLOW
	}
	waitHealthy := func(what string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			resp, _ := decide()
			if healthy(resp) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: last answer %v %v", what, resp.GetOutcome(), resp.GetReasons())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitHealthy("before Redis hangs")

	redis.Pause(t)
	limit := budget + budget/10
	var took []time.Duration
	for i := 0; i < 8; i++ {
		resp, d := decide()
		took = append(took, d)
		if d > limit {
			t.Errorf("Decide %d with Redis hung took %s; the budget is %s, at most %s allowed", i+1, d, budget, limit)
		}
		// The shared store that counts pushes across replicas is gone: no
		// push goes out uncounted, and the user keeps the phishing-resistant
		// way in.
		if resp.GetFailureMode() != decisionv1.FailureMode_FAILURE_MODE_NUMBER_MATCH || resp.GetOutcome() != decisionv1.Outcome_OUTCOME_REQUIRE_PHISHING_RESISTANT {
			t.Fatalf("Decide %d with Redis hung: %v (failure mode %v, reasons %v); want no push (REQUIRE_PHISHING_RESISTANT)",
				i+1, resp.GetOutcome(), resp.GetFailureMode(), resp.GetReasons())
		}
	}
	t.Logf("Decide latencies with Redis hung (budget %s): %v", budget, took)
	// By now the store's circuit is open: a hung store is skipped, not
	// waited for. One of these calls may be the probe that finds Redis
	// still hung, and half the budget leaves room for a loaded machine.
	fast := 0
	for _, d := range took[len(took)-4:] {
		if d < budget/2 {
			fast++
		}
	}
	if fast < 3 {
		t.Errorf("the last calls with Redis hung took %v; an open circuit answers at once", took[len(took)-4:])
	}

	// Operators see why: the circuit is open (or probing), and it said so.
	if st := metric("pushback.store.breaker.state"); st != int64(store.BreakerOpen) && st != int64(store.BreakerHalfOpen) {
		t.Errorf("pushback.store.breaker.state = %d with Redis hung, want open or half-open", st)
	}
	if n := metric("pushback.store.breaker.rejected"); n == 0 {
		t.Error("pushback.store.breaker.rejected = 0 with the circuit open")
	}
	if !strings.Contains(logs.String(), `"msg":"store circuit open`) {
		t.Error("the circuit opened without a log line")
	}

	redis.Resume()
	waitHealthy("after Redis thawed")
	if st := metric("pushback.store.breaker.state"); st != int64(store.BreakerClosed) {
		t.Errorf("pushback.store.breaker.state = %d after Redis thawed, want closed", st)
	}
	if !strings.Contains(logs.String(), `"msg":"store circuit closed`) {
		t.Error("the circuit closed without a log line")
	}
}
