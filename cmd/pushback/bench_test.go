package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/pushbackhq/pushback/pkg/store/redistest"
	"github.com/redis/go-redis/v9"
)

// runBench runs pushback bench in this process and returns its exit code
// and output.
func runBench(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := benchCmd(context.Background(), args, &out, &errOut, func(string) string { return "" })
	return code, out.String(), errOut.String()
}

// benchJSON runs pushback bench with --json and returns its report.
func benchJSON(t *testing.T, args ...string) benchReport {
	t.Helper()
	code, out, errOut := runBench(t, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not one JSON report: %v\n%s", err, out)
	}
	return rep
}

func TestBenchDecideReportsTheRatioToEcho(t *testing.T) {
	rep := benchJSON(t, "--spawn=one", "--duration=700ms", "--warmup=0s", "--users=500",
		"--concurrency=8", "--connections=2", "--attack-share=0.5")
	if rep.Mode != "decide" || rep.Topology != "one" || len(rep.Results) != 2 {
		t.Fatalf("report %+v", rep)
	}
	echo, dec := rep.Results[0], rep.Results[1]
	if echo.Target != "echo" || dec.Target != "decide" || echo.Calls == 0 || dec.Calls == 0 {
		t.Fatalf("targets %+v / %+v", echo, dec)
	}
	if dec.Errors != 0 {
		t.Fatalf("%d Decide errors: %v", dec.Errors, dec.ErrorCodes)
	}
	if want := dec.RPS / echo.RPS; math.Abs(rep.Ratio-want) > 1e-9 || rep.Ratio <= 0 {
		t.Fatalf("ratio %v, want Decide RPS / echo RPS = %v", rep.Ratio, want)
	}
	if !(dec.P50 > 0 && dec.P50 <= dec.P90 && dec.P90 <= dec.P99 && dec.P99 <= dec.P999) {
		t.Fatalf("latency quantiles out of order: %+v", dec)
	}
	// Every counted call has its outcome; answers a failure mode gave are
	// labelled as such.
	var answered int64
	for outcome, n := range dec.Outcomes {
		if !strings.HasPrefix(outcome, "OUTCOME_") || strings.Contains(outcome, " by ") && !strings.Contains(outcome, " by FAILURE_MODE_") {
			t.Fatalf("outcome %q", outcome)
		}
		answered += n
	}
	if answered != dec.Calls {
		t.Fatalf("%d outcomes for %d calls", answered, dec.Calls)
	}

	// The table says the same.
	code, out, errOut := runBench(t, "--spawn=one", "--duration=300ms", "--warmup=0s", "--users=100", "--concurrency=4")
	if code != 0 || !strings.Contains(out, "Decide RPS / echo RPS = ") || !strings.Contains(out, "p99.9") {
		t.Fatalf("exit %d, table:\n%s\n%s", code, out, errOut)
	}
}

func TestBenchIngestAgainstRawBadger(t *testing.T) {
	rep := benchJSON(t, "--spawn=one", "--mode=ingest", "--duration=500ms", "--warmup=0s",
		"--users=1000", "--concurrency=4", "--batch=50")
	if len(rep.Ingest) != 2 || rep.Ingest[0].Target != "raw-badger" || rep.Ingest[1].Target != "ingest-stream" {
		t.Fatalf("report %+v", rep)
	}
	raw, in := rep.Ingest[0], rep.Ingest[1]
	if raw.Events == 0 || in.Events == 0 || in.Errors != 0 || in.Events%50 != 0 {
		t.Fatalf("raw %+v, ingest %+v (whole batches of 50 expected)", raw, in)
	}
	if want := in.EventsPerSec / raw.EventsPerSec; math.Abs(rep.Ratio-want) > 1e-9 {
		t.Fatalf("ratio %v, want %v", rep.Ratio, want)
	}
}

func TestBenchUsersMeasuresResidentMemory(t *testing.T) {
	u := benchJSON(t, "--spawn=one", "--mode=users", "--users=3000").Users
	if u == nil || u.Users != 3000 || u.RSS <= 0 || u.PeakRSS < u.RSS || u.DiskBytes <= 0 || u.BytesPerUser <= 0 {
		t.Fatalf("users report %+v", u)
	}
}

func TestBenchRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown mode", []string{"--mode=latency"}, "not decide, ingest or users"},
		{"attack share", []string{"--attack-share=1.5"}, "attack-share in 0..1"},
		{"no connections", []string{"--connections=0"}, "must be positive"},
		{"batch", []string{"--mode=ingest", "--batch=5000"}, "batch in 1..1000"},
		{"users without a mesh here", []string{"--mode=users"}, "needs --spawn=one"},
		{"topology", []string{"--spawn=three"}, "is not one or split"},
		{"a remote mesh", []string{"--addr=10.1.2.3:50051"}, "not a loopback address"},
		{"a negative rate", []string{"--rate=-5"}, "--rate must be positive"},
		{"a rate no backlog can hold", []string{"--rate=1e12"}, "at most 1000000"},
		{"a rate of ingest", []string{"--mode=ingest", "--rate=100"}, "works with --mode=decide"},
		{"Redis without a mesh here", []string{"--redis-addr=127.0.0.1:6379"}, "--redis-addr needs --spawn"},
		{"a remote Redis", []string{"--spawn=one", "--redis-addr=10.1.2.3:6379"}, "a loopback address"},
		{"nothing listening", []string{"--addr=127.0.0.1:1", "--duration=200ms", "--warmup=0s", "--concurrency=2"}, "calls failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runBench(t, tt.args...)
			if code == 0 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, %q; want a failure saying %q", code, errOut, tt.want)
			}
		})
	}
}

// TestBenchOpenLoopOnRedis: --rate starts calls on a schedule, both targets
// get the same one, and --redis-addr keeps the spawned mesh's state in
// Redis (the keys are there afterwards).
func TestBenchOpenLoopOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	rep := benchJSON(t, "--spawn=one", "--redis-addr="+srv.Addr, "--rate=100", "--duration=1s", "--warmup=0s",
		"--users=50", "--concurrency=8", "--connections=2")
	if rep.Options.Rate != 100 || len(rep.Results) != 2 {
		t.Fatalf("report %+v", rep)
	}
	for _, r := range rep.Results {
		// A second at 100 a second; a loaded machine answers fewer in the
		// window, never more.
		if r.Offered != 100 || r.Calls == 0 || r.Calls > 102 || r.Errors != 0 {
			t.Fatalf("%s: offered %v, %d calls, %d errors", r.Target, r.Offered, r.Calls, r.Errors)
		}
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	keys, err := c.Keys(context.Background(), "*decision/id/*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("no decision records in Redis (%v): the bench did not use it", err)
	}

	code, out, errOut := runBench(t, "--spawn=one", "--rate=50", "--duration=300ms", "--warmup=0s", "--users=20", "--concurrency=4")
	if code != 0 || !strings.Contains(out, "open loop at 50 calls/s") || strings.Contains(out, "Decide RPS / echo RPS") {
		t.Fatalf("exit %d, table:\n%s\n%s", code, out, errOut)
	}
}
