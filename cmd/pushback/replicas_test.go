package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/store/redistest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func pushAt(user, attempt string, at time.Time) *decisionv1.DecideRequest {
	return &decisionv1.DecideRequest{UserId: user, AppId: "vpn", Factor: eventv1.Factor_FACTOR_PUSH, AttemptId: attempt,
		Time: timestamppb.New(at), Client: &eventv1.Client{Ip: "203.0.113.50"}}
}

func window(ra *scoringv1.RiskAssessment, d time.Duration) *scoringv1.WindowCount {
	for _, w := range ra.GetWindows() {
		if w.GetWindow().AsDuration() == d {
			return w
		}
	}
	return nil
}

// Three replicas on one Redis agree: the 5th push is denied whichever
// replica answers, and concurrent attempts are each counted exactly once.
func TestReplicasOnRedisAgree(t *testing.T) {
	redis := redistest.Start(t)
	var clients []decisionv1.DecisionServiceClient
	for i := 0; i < 3; i++ {
		p := startProc(t, fmt.Sprint("replica-", i), "--store=redis", "--redis-addr="+redis.Addr,
			// This test is about agreement, not latency: a loaded machine must not turn it into a failure-mode test.
			"--decide-budget=5s")
		conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		clients = append(clients, decisionv1.NewDecisionServiceClient(conn))
	}
	ctx := context.Background()
	base := time.Now().Add(-time.Hour).Truncate(time.Second)

	// Sequential, round-robin.
	var outcomes []decisionv1.Outcome
	var reasons [][]string
	for i := 0; i < 5; i++ {
		resp, err := clients[i%3].Decide(ctx, pushAt("frank", fmt.Sprint("f-", i), base.Add(time.Duration(i)*time.Minute)))
		if err != nil {
			t.Fatal(err)
		}
		outcomes = append(outcomes, resp.GetOutcome())
		reasons = append(reasons, resp.GetReasons())
	}
	if outcomes[4] != decisionv1.Outcome_OUTCOME_DENY || outcomes[0] != decisionv1.Outcome_OUTCOME_ALLOW {
		t.Fatalf("round-robin outcomes %v (reasons %q), want ALLOW first and DENY at the 5th", outcomes, reasons)
	}
	// A retry of an attempt on another replica replays the same decision.
	first, err := clients[0].Decide(ctx, pushAt("frank", "f-4", base.Add(4*time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	again, err := clients[2].Decide(ctx, pushAt("frank", "f-4", base.Add(4*time.Minute)))
	if err != nil || again.GetDecisionId() != first.GetDecisionId() {
		t.Fatalf("retry on another replica: %v, %v; want decision %s", again.GetDecisionId(), err, first.GetDecisionId())
	}

	// Concurrent: ten attempts at the same moment across the replicas.
	const n = 10
	at := base.Add(30 * time.Minute)
	var wg sync.WaitGroup
	resps := make([]*decisionv1.DecideResponse, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resps[i], errs[i] = clients[i%3].Decide(ctx, pushAt("grace", fmt.Sprint("g-", i), at))
		}()
	}
	wg.Wait()
	var counts []int
	tally := map[decisionv1.Outcome]int{}
	for i := range resps {
		if errs[i] != nil {
			t.Fatalf("concurrent Decide %d: %v", i, errs[i])
		}
		r := resps[i]
		if r.GetFailureMode() != decisionv1.FailureMode_FAILURE_MODE_UNSPECIFIED {
			t.Fatalf("concurrent Decide %d fell back to the failure mode: %v", i, r.GetReasons())
		}
		counts = append(counts, int(window(r.GetRisk(), 10*time.Minute).GetAttempts()))
		tally[r.GetOutcome()]++
	}
	// The replicas order the user's attempts through the shared store: the
	// k-th to commit sees at least k attempts (its outcome follows the
	// larger of that count and scoring's), so at most two are allowed and
	// at most four pushes go out, whichever replica answered.
	if pushes := tally[decisionv1.Outcome_OUTCOME_ALLOW] + tally[decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH]; pushes > 4 || tally[decisionv1.Outcome_OUTCOME_ALLOW] > 2 {
		t.Fatalf("concurrent outcomes %v: more than 4 pushes or 2 plain pushes", tally)
	}
	slices.Sort(counts)
	for i, c := range counts {
		if c != i+1 {
			t.Fatalf("attempt counts seen by concurrent decisions = %v, want each of 1..%d exactly once", counts, n)
		}
	}
}
