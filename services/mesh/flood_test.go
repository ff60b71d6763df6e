package mesh_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/pkg/store/redistest"
	"github.com/pushbackhq/pushback/services/decision"
	"github.com/pushbackhq/pushback/services/mesh"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestFloodCannotPushAUserMoreThanFourTimes plays the flood: 200 users, 10
// attempts each, all 2,000 in flight at once against one mesh with the
// default 50 ms budget. Scoring misses its share of the budget for many of
// them and the mesh sheds load; whatever answers, no user may get more than
// four pushes (ALLOW or REQUIRE_NUMBER_MATCH) within the 10 minutes, on the
// embedded store and on Redis.
func TestFloodCannotPushAUserMoreThanFourTimes(t *testing.T) {
	for _, kind := range []string{"badger", "redis"} {
		t.Run(kind, func(t *testing.T) {
			cfg := mesh.Default()
			if kind == "redis" {
				cfg.StoreKind, cfg.RedisAddrs = "redis", []string{redistest.Start(t).Addr}
			}
			counters := &decision.Counters{}
			m := startWith(t, cfg, mesh.Options{DecisionCounters: counters})
			r := flood(t, m.grpcAddr, 200, 10)
			t.Logf("%s: worst user got %d pushes, %d users none; %d answers by the failure mode (%d shed), %d not recorded in time (%d of them stored after the answer so far)",
				kind, r.worst, r.none, r.failureMode, counters.Shed.Load(), counters.StoreFailures.Load(), counters.LateWrites.Load())
			if r.worst > 4 {
				t.Fatalf("a user got %d pushes in one flood, want at most 4", r.worst)
			}
		})
	}
}

type floodResult struct {
	worst, none, failureMode int
}

// flood sends attempts per user for users users at once and tallies the
// pushes each user got. Every call must be answered: an error would leave
// the push to the hook's own failure mode.
func flood(t *testing.T, addr string, users, attempts int) floodResult {
	t.Helper()
	var conns []*grpc.ClientConn
	for range 4 {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		conns = append(conns, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		mu     sync.Mutex
		pushes = map[string]int{}
		res    floodResult
		errs   []error
		wg     sync.WaitGroup
		gate   = make(chan struct{})
	)
	now := time.Now()
	for u := range users {
		user := fmt.Sprintf("flood-%03d", u)
		for a := range attempts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				dc := decisionv1.NewDecisionServiceClient(conns[(u*attempts+a)%len(conns)])
				r := &decisionv1.DecideRequest{
					UserId: user, AppId: "vpn", Factor: eventv1.Factor_FACTOR_PUSH, AttemptId: fmt.Sprint("f-", a),
					Client: &eventv1.Client{Ip: fmt.Sprintf("203.0.113.%d", u%250+1), DeviceId: "attacker-laptop"},
				}
				<-gate
				resp, err := dc.Decide(ctx, r)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				switch resp.GetOutcome() {
				case decisionv1.Outcome_OUTCOME_ALLOW, decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH:
					pushes[user]++
				}
				if resp.GetFailureMode() != decisionv1.FailureMode_FAILURE_MODE_UNSPECIFIED {
					res.failureMode++
				}
			}()
		}
	}
	close(gate)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d attempts got no answer, the first: %v", len(errs), users*attempts, errs[0])
	}
	for _, n := range pushes {
		res.worst = max(res.worst, n)
	}
	res.none = users - len(pushes)
	if elapsed := time.Since(now); elapsed > 10*time.Minute {
		t.Fatalf("the flood took %v: it no longer fits the 10-minute window the limit is about", elapsed)
	}
	return res
}

// TestReplicasOnRedisPushAUserAtMostFourTimes plays one user's attempts
// sent at once to three replicas sharing Redis, with the default budget:
// contention makes scoring and the commits miss their shares, and a replica
// that judged only on its own memory would let 4 pushes through each.
func TestReplicasOnRedisPushAUserAtMostFourTimes(t *testing.T) {
	redis := redistest.Start(t)
	var clients []decisionv1.DecisionServiceClient
	for range 3 {
		cfg := mesh.Default()
		cfg.StoreKind, cfg.RedisAddrs = "redis", []string{redis.Addr}
		m := startWith(t, cfg, mesh.Options{})
		clients = append(clients, decisionv1.NewDecisionServiceClient(m.conn))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for trial, n := range []int{12, 30, 90} {
		user := fmt.Sprint("replicated-", trial)
		var wg sync.WaitGroup
		var mu sync.Mutex
		sent := 0
		gate := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				r, err := clients[i%len(clients)].Decide(ctx, &decisionv1.DecideRequest{UserId: user, AppId: "vpn", Factor: eventv1.Factor_FACTOR_PUSH,
					AttemptId: fmt.Sprint("a-", i), Client: &eventv1.Client{Ip: "203.0.113.66", DeviceId: "attacker-laptop"}})
				if err != nil {
					t.Error(err)
					return
				}
				if o := r.GetOutcome(); o == decisionv1.Outcome_OUTCOME_ALLOW || o == decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH {
					mu.Lock()
					sent++
					mu.Unlock()
				}
			}()
		}
		close(gate)
		wg.Wait()
		t.Logf("%d attempts at once across 3 replicas: %d pushes", n, sent)
		if sent > 4 {
			t.Fatalf("%d attempts across 3 replicas gave %d pushes, want at most 4", n, sent)
		}
	}
}
