package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	"github.com/pushbackhq/pushback/pkg/store/redistest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Redis stopped mid-run: Decide keeps answering by the tier's failure mode,
// the process does not crash, and it recovers by itself when Redis returns.
func TestDecideSurvivesRedisOutage(t *testing.T) {
	redis := redistest.Start(t)
	const budget = 300 * time.Millisecond
	p := startProc(t, "redis-replica", "--store=redis", "--redis-addr="+redis.Addr, "--decide-budget="+budget.String())
	conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dc := decisionv1.NewDecisionServiceClient(conn)
	n := 0
	decide := func() (*decisionv1.DecideResponse, time.Duration) {
		t.Helper()
		n++
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		resp, err := dc.Decide(ctx, pushAt(fmt.Sprint("ivan-", n), fmt.Sprint("i-", n), time.Now()))
		if err != nil {
			t.Fatalf("Decide %d: %v", n, err)
		}
		return resp, time.Since(start)
	}
	waitFor := func(what string, ok func(*decisionv1.DecideResponse) bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			resp, _ := decide()
			if ok(resp) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: last answer %v %v", what, resp.GetOutcome(), resp.GetReasons())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	healthy := func(r *decisionv1.DecideResponse) bool {
		return r.GetFailureMode() == decisionv1.FailureMode_FAILURE_MODE_UNSPECIFIED && r.GetOutcome() == decisionv1.Outcome_OUTCOME_ALLOW
	}
	waitFor("healthy before the outage", healthy)

	redis.Stop()
	var worst time.Duration
	for i := 0; i < 10; i++ {
		resp, took := decide()
		worst = max(worst, took)
		// The shared store counts pushes across replicas: without it no push
		// goes out uncounted; a phishing-resistant factor still works.
		if resp.GetFailureMode() != decisionv1.FailureMode_FAILURE_MODE_NUMBER_MATCH || resp.GetOutcome() != decisionv1.Outcome_OUTCOME_REQUIRE_PHISHING_RESISTANT ||
			resp.GetFailureCause() != decisionv1.FailureCause_FAILURE_CAUSE_SCORING_UNAVAILABLE {
			t.Fatalf("during the outage: %v (failure mode %v, cause %v, reasons %v), want no push",
				resp.GetOutcome(), resp.GetFailureMode(), resp.GetFailureCause(), resp.GetReasons())
		}
	}
	t.Logf("slowest answer with Redis down: %s (budget %s)", worst, budget)
	select {
	case err := <-p.done:
		t.Fatalf("process exited during the outage: %v", err)
	default:
	}

	if err := redis.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor("recovered after Redis returned", healthy)
}
