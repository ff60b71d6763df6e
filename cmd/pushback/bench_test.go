package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
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
