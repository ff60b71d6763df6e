package bench

import (
	"context"
	"testing"
	"time"
)

// TestOpenLoopKeepsItsSchedule: calls start at the rate asked, whatever
// the target answers, and every one due is either made or counted missed.
func TestOpenLoopKeepsItsSchedule(t *testing.T) {
	o := Options{Concurrency: 8, Duration: time.Second, Rate: 400}
	res := measure(context.Background(), o, "fast", func(ctx context.Context, _ int, _ int64) (string, error) {
		return "ok", nil
	})
	// A second at 400 a second: about 400 calls. A loaded machine may wake
	// the schedule late, never early, and then catches up at once.
	if res.Calls < 300 || res.Calls > 402 {
		t.Fatalf("%d calls in a second at 400/s", res.Calls)
	}
	if res.Offered != 400 || res.Missed != 0 {
		t.Fatalf("offered %v, missed %d; want 400 and none", res.Offered, res.Missed)
	}
}

// TestOpenLoopCountsTheWaitOfASlowTarget plays a target that cannot keep
// the rate: its calls wait for a free worker, the wait counts in their
// latency (a closed loop would hide it by asking less), and calls past the
// backlog are counted missed instead of vanishing.
func TestOpenLoopCountsTheWaitOfASlowTarget(t *testing.T) {
	const slow = 50 * time.Millisecond
	o := Options{Concurrency: 2, Duration: 1500 * time.Millisecond, Rate: 200}
	res := measure(context.Background(), o, "slow", func(ctx context.Context, _ int, _ int64) (string, error) {
		time.Sleep(slow)
		return "", nil
	})
	// Two workers make at most 40 calls a second; 200 are due.
	if res.Calls == 0 || res.Calls > 70 {
		t.Fatalf("%d calls answered in 1.5s by two workers of 50ms", res.Calls)
	}
	if res.P50 < 4*slow {
		t.Fatalf("p50 %v: the wait for a worker is not counted (a call alone takes %v)", res.P50, slow)
	}
	if res.Missed == 0 {
		t.Fatal("no call missed, though 200 were due each second and 40 could start")
	}
}

// TestClosedLoopKeepsItsCallsInFlight: without a rate, every worker calls
// again as soon as it is answered.
func TestClosedLoopKeepsItsCallsInFlight(t *testing.T) {
	o := Options{Concurrency: 4, Duration: 300 * time.Millisecond}
	res := measure(context.Background(), o, "closed", func(ctx context.Context, _ int, _ int64) (string, error) {
		time.Sleep(10 * time.Millisecond)
		return "", nil
	})
	// 4 workers of 10ms calls for 300ms: up to 120 calls; a loaded machine
	// sleeps longer, so only the upper bound and some progress are sure.
	if res.Calls < 4 || res.Calls > 124 || res.Missed != 0 || res.Offered != 0 {
		t.Fatalf("closed loop: %d calls, offered %v, missed %d", res.Calls, res.Offered, res.Missed)
	}
}
