package mesh_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	"github.com/pushbackhq/pushback/pkg/telemetry"
	"github.com/pushbackhq/pushback/services/mesh"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The identities the telemetry tests send; neither may appear in a span or
// a log line unless raw ids are on.
const (
	secretUser = "victim.user@corp.example"
	secretIP   = "203.0.113.77"
	hashKey    = "0123456789abcdef-test-hash-key"
)

// keptSpans is an in-memory exporter that several meshes share: it keeps
// its spans when one of them shuts down.
type keptSpans struct{ *tracetest.InMemoryExporter }

func (keptSpans) Shutdown(context.Context) error { return nil }

// lockedBuffer collects the JSON logs of several meshes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type meshProc struct {
	grpcAddr, httpAddr string
	stop               func()
}

// run starts one mesh.Run with the given telemetry options.
func run(t *testing.T, cfg mesh.Config, opts mesh.Options) *meshProc {
	t.Helper()
	cfg.DataDir = t.TempDir()
	cfg.Decision.Budget = 5 * time.Second
	cfg.TelemetryHashKey = hashKey
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]string, 1)
	done := make(chan error, 1)
	// Every trace is kept here unless the test chose an environment; the
	// default samples a ratio.
	if opts.Getenv == nil {
		opts.Getenv = func(k string) string {
			if k == "OTEL_TRACES_SAMPLER" {
				return "parentbased_always_on"
			}
			return ""
		}
	}
	opts.Ready = func(g, h string) { ready <- [2]string{g, h} }
	go func() { done <- mesh.Run(ctx, cfg, opts) }()
	p := &meshProc{}
	select {
	case a := <-ready:
		p.grpcAddr, p.httpAddr = a[0], a[1]
	case err := <-done:
		cancel()
		t.Fatalf("mesh %v did not start: %v", cfg.Services, err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("mesh %v did not start within 30s", cfg.Services)
	}
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("mesh %v: %v", cfg.Services, err)
			}
		})
	}
	t.Cleanup(p.stop)
	return p
}

// topology is a way to run the mesh: the process that answers Decide (and
// serves /metrics), and every process to stop before spans are read.
type topology struct {
	front *meshProc
	all   []*meshProc
}

func oneProcess(t *testing.T, opts mesh.Options) topology {
	cfg := mesh.Default()
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	p := run(t, cfg, opts)
	return topology{front: p, all: []*meshProc{p}}
}

// split runs scoring with intake, notify, and decision as three meshes
// that reach each other over loopback TCP, sharing one span exporter.
func split(t *testing.T, opts mesh.Options) topology {
	peerOpts := mesh.Options{SpanExporter: opts.SpanExporter, Logger: opts.Logger}
	cfg := mesh.Default()
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", ""
	cfg.Services = []string{mesh.Scoring, mesh.Intake}
	sc := run(t, cfg, peerOpts)
	cfg.Services = []string{mesh.Notify}
	nt := run(t, cfg, peerOpts)
	cfg.Services = []string{mesh.Decision}
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.ScoringAddr, cfg.NotifyAddr = sc.grpcAddr, nt.grpcAddr
	dc := run(t, cfg, opts)
	return topology{front: dc, all: []*meshProc{dc, nt, sc}}
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// burst makes five push decisions for secretUser a minute apart: the last
// is a DENY that records a suppressed push and queues a SOC alert.
func burst(t *testing.T, dc decisionv1.DecisionServiceClient) *decisionv1.DecideResponse {
	t.Helper()
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	var last *decisionv1.DecideResponse
	for i := range 5 {
		req := decideReq(secretUser, fmt.Sprintf("tel-%d", i), base.Add(time.Duration(i)*time.Minute))
		req.Client.Ip = secretIP
		resp, err := dc.Decide(context.Background(), req)
		if err != nil {
			t.Fatalf("Decide %d: %v", i+1, err)
		}
		last = resp
	}
	if last.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY {
		t.Fatalf("fifth push = %v, want DENY (reasons %v)", last.GetOutcome(), last.GetReasons())
	}
	return last
}

// waitFor polls cond until it holds; the deadline only guards a hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shape renders the span tree of one trace with children sorted, so two
// topologies can be compared: "name(child,child(grandchild))".
func shape(spans tracetest.SpanStubs, root trace.SpanID) string {
	var name string
	var kids []string
	for _, s := range spans {
		if s.SpanContext.SpanID() == root {
			name = s.Name
		}
		if s.Parent.SpanID() == root && s.Parent.IsValid() {
			kids = append(kids, shape(spans, s.SpanContext.SpanID()))
		}
	}
	sort.Strings(kids)
	if len(kids) == 0 {
		return name
	}
	return name + "(" + strings.Join(kids, ",") + ")"
}

func attr(s tracetest.SpanStub, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func byName(spans tracetest.SpanStubs, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// leaks lists where a raw identity shows up in the spans.
func leaks(spans tracetest.SpanStubs, secrets ...string) []string {
	var out []string
	check := func(where string, kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			for _, sec := range secrets {
				if strings.Contains(kv.Value.String(), sec) {
					out = append(out, fmt.Sprintf("%s %s=%s", where, kv.Key, kv.Value.String()))
				}
			}
		}
	}
	for _, s := range spans {
		for _, sec := range secrets {
			if strings.Contains(s.Name, sec) || strings.Contains(s.Status.Description, sec) {
				out = append(out, "span name or status "+s.Name)
			}
		}
		check(s.Name, s.Attributes)
		for _, e := range s.Events {
			check(s.Name+" event "+e.Name, e.Attributes)
		}
		for _, l := range s.Links {
			check(s.Name+" link", l.Attributes)
		}
		check(s.Name+" resource", s.Resource.Attributes())
	}
	return out
}

func TestDecideTraceIsOneTreeInBothTopologies(t *testing.T) {
	topologies := []struct {
		name  string
		start func(*testing.T, mesh.Options) topology
	}{
		{"one process", oneProcess},
		{"split over TCP", split},
	}
	wantHash := telemetry.NewRedactor([]byte(hashKey), false).User(secretUser)
	shapes := map[string]string{}
	for _, tp := range topologies {
		t.Run(tp.name, func(t *testing.T) {
			exp := keptSpans{tracetest.NewInMemoryExporter()}
			logs := &lockedBuffer{}
			log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			top := tp.start(t, mesh.Options{SpanExporter: exp, Logger: log})
			dc := decisionv1.NewDecisionServiceClient(dial(t, top.front.grpcAddr))
			deny := burst(t, dc)
			// The SOC alert goes to the log channel from the outbox.
			waitFor(t, "the alert delivery", func() bool { return strings.Contains(logs.String(), `"msg":"alert"`) })
			for _, p := range top.all {
				p.stop()
			}

			all := exp.GetSpans()
			var trc tracetest.SpanStubs
			for _, s := range all {
				if s.SpanContext.TraceID().String() == deny.GetTraceId() {
					trc = append(trc, s)
				}
			}
			ids := map[trace.SpanID]bool{}
			for _, s := range trc {
				ids[s.SpanContext.SpanID()] = true
			}
			var roots []tracetest.SpanStub
			for _, s := range trc {
				if !s.Parent.IsValid() || !ids[s.Parent.SpanID()] {
					roots = append(roots, s)
				}
			}
			if len(roots) != 1 || roots[0].Name != "pushback.decision.v1.DecisionService/Decide" {
				t.Fatalf("the trace has %d roots (want the Decide server span alone): %v", len(roots), names(roots))
			}
			for _, want := range []string{"decision.decide", "pushback.scoring.v1.ScoringService/Assess", "scoring.assess",
				"store.update", "decision.policy", "pushback.notify.v1.NotificationService/Notify", "notify.enqueue",
				"pushback.scoring.v1.ScoringService/Observe"} {
				if len(byName(trc, want)) == 0 {
					t.Errorf("no %s span in the Decide trace: %v", want, names(trc))
				}
			}
			shapes[tp.name] = shape(trc, roots[0].SpanContext.SpanID())

			dec := byName(trc, "decision.decide")[0]
			wantAttrs := map[string]func(attribute.Value) bool{
				"pushback.outcome":        func(v attribute.Value) bool { return v.AsString() == "OUTCOME_DENY" },
				"pushback.score":          func(v attribute.Value) bool { return v.AsInt64() > 0 },
				"pushback.signals":        func(v attribute.Value) bool { return slices.Contains(v.AsStringSlice(), "PUSH_BURST") },
				"pushback.rules":          func(v attribute.Value) bool { return len(v.AsStringSlice()) > 0 },
				"pushback.policy_version": func(v attribute.Value) bool { return v.AsString() == deny.GetPolicyVersion() },
				"pushback.decision_id":    func(v attribute.Value) bool { return v.AsString() == deny.GetDecisionId() },
				"pushback.user_hash":      func(v attribute.Value) bool { return v.AsString() == wantHash },
				// What the collector's tail sampling keeps a split mesh's trace by.
				string(telemetry.KeepKey): func(v attribute.Value) bool { return v.AsString() == telemetry.KeepOutcome },
			}
			for k, ok := range wantAttrs {
				if v, found := attr(dec, k); !found || !ok(v) {
					t.Errorf("decision.decide %s = %q (found %v)", k, v.String(), found)
				}
			}
			pol := byName(trc, "decision.policy")[0]
			if v, _ := attr(pol, "pushback.policy_version"); v.AsString() != deny.GetPolicyVersion() {
				t.Errorf("decision.policy policy_version = %q", v.String())
			}
			sc := byName(trc, "scoring.assess")[0]
			if v, _ := attr(sc, "pushback.user_hash"); v.AsString() != wantHash {
				t.Errorf("scoring.assess user_hash = %q, want %q", v.String(), wantHash)
			}
			var burstEvent bool
			for _, e := range sc.Events {
				if e.Name == "signal PUSH_BURST" {
					for _, kv := range e.Attributes {
						burstEvent = burstEvent || (kv.Key == "pushback.evidence.threshold" && kv.Value.AsInt64() > 0)
					}
				}
			}
			if !burstEvent {
				t.Errorf("scoring.assess has no PUSH_BURST event with its evidence: %v", sc.Events)
			}

			// The delivery runs later in a trace of its own, linked to the decision.
			var linked bool
			for _, d := range byName(all, "notify.deliver") {
				for _, l := range d.Links {
					linked = linked || l.SpanContext.TraceID().String() == deny.GetTraceId()
				}
			}
			if !linked {
				t.Errorf("no notify.deliver span links to the decision's trace %s", deny.GetTraceId())
			}

			if l := leaks(all, secretUser, secretIP); len(l) > 0 {
				t.Errorf("raw identities in spans:\n%s", strings.Join(l, "\n"))
			}
			out := logs.String()
			if strings.Contains(out, secretUser) || strings.Contains(out, secretIP) {
				t.Errorf("raw identities in logs:\n%s", out)
			}
			if !strings.Contains(out, `"user_hash":"`+wantHash+`"`) || !strings.Contains(out, `"trace_id":"`) {
				t.Errorf("the alert log line lacks the user hash or the trace id:\n%s", out)
			}
		})
	}
	t.Logf("Decide trace: %s", shapes["one process"])
	if shapes["one process"] != shapes["split over TCP"] {
		t.Errorf("the Decide trace differs between topologies:\none process: %s\nsplit:       %s", shapes["one process"], shapes["split over TCP"])
	}
}

func names(spans []tracetest.SpanStub) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func TestRawIDsOnlyWhenTurnedOn(t *testing.T) {
	exp := keptSpans{tracetest.NewInMemoryExporter()}
	cfg := mesh.Default()
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", ""
	cfg.TelemetryRawIDs = true
	p := run(t, cfg, mesh.Options{SpanExporter: exp})
	dc := decisionv1.NewDecisionServiceClient(dial(t, p.grpcAddr))
	resp, err := dc.Decide(context.Background(), decideReq(secretUser, "raw-1", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	p.stop()
	for _, s := range byName(exp.GetSpans(), "decision.decide") {
		if s.SpanContext.TraceID().String() != resp.GetTraceId() {
			continue
		}
		if v, _ := attr(s, "pushback.user_id"); v.AsString() != secretUser {
			t.Fatalf("with telemetry-raw-ids the span records %q, want the raw user id under pushback.user_id (the key the collector deletes)", v.String())
		}
		if _, ok := attr(s, "pushback.user_hash"); ok {
			t.Fatal("with telemetry-raw-ids a raw id sits under pushback.user_hash, which the collector keeps")
		}
		return
	}
	t.Fatal("no decision.decide span for the call")
}

// sumOf adds up the data points of an Int64 sum (counter) metric whose
// attributes include want.
func sumOf(rm metricdata.ResourceMetrics, name string, want ...attribute.KeyValue) (int64, bool) {
	var total int64
	var found bool
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			found = true
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					if hasAll(dp.Attributes, want) {
						total += dp.Value
					}
				}
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					total += dp.Value
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					total += int64(dp.Count)
				}
			case metricdata.Histogram[int64]:
				for _, dp := range d.DataPoints {
					total += int64(dp.Count)
				}
			}
		}
	}
	return total, found
}

func hasAll(set attribute.Set, want []attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

func TestMetricsMoveAsDecisionsAreMade(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	logs := &lockedBuffer{}
	top := oneProcess(t, mesh.Options{MetricReader: reader, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	conn := dial(t, top.front.grpcAddr)
	collect := func() metricdata.ResourceMetrics {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		return rm
	}
	before, _ := sumOf(collect(), "pushback.decisions")
	if before != 0 {
		t.Fatalf("%d decisions counted before any was made", before)
	}
	burst(t, decisionv1.NewDecisionServiceClient(conn))
	waitFor(t, "the alert delivery", func() bool { return strings.Contains(logs.String(), `"msg":"alert"`) })
	ic := intakev1.NewIntakeServiceClient(conn)
	ev := &eventv1.AuthEvent{EventId: "ev-1", UserId: secretUser, Type: eventv1.EventType_EVENT_TYPE_PUSH_APPROVED,
		Time: timestamppb.New(time.Now().Add(-3 * time.Second)), Source: &eventv1.Source{Idp: "okta"}}
	for range 2 {
		if _, err := ic.Ingest(context.Background(), &intakev1.IngestRequest{Events: []*eventv1.AuthEvent{ev}}); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = ic.Ingest(context.Background(), &intakev1.IngestRequest{Events: []*eventv1.AuthEvent{{EventId: "bad", Source: &eventv1.Source{Idp: "okta"}}}})

	rm := collect()
	tests := []struct {
		name  string
		attrs []attribute.KeyValue
		want  func(int64) bool
	}{
		{"pushback.decisions", nil, func(n int64) bool { return n == 5 }},
		{"pushback.decisions", []attribute.KeyValue{attribute.String("outcome", "deny"), attribute.String("failure_mode", "")}, func(n int64) bool { return n == 1 }},
		{"pushback.decide.duration", nil, func(n int64) bool { return n == 5 }},
		{"pushback.policy.rule_matches", []attribute.KeyValue{attribute.String("outcome", "deny")}, func(n int64) bool { return n >= 1 }},
		{"pushback.signals", []attribute.KeyValue{attribute.String("code", "PUSH_BURST")}, func(n int64) bool { return n >= 1 }},
		{"pushback.risk.score", nil, func(n int64) bool { return n == 5 }},
		{"pushback.intake.events", []attribute.KeyValue{attribute.String("result", "accepted"), attribute.String("format", "okta")}, func(n int64) bool { return n == 1 }},
		{"pushback.intake.events", []attribute.KeyValue{attribute.String("result", "duplicate")}, func(n int64) bool { return n == 1 }},
		{"pushback.intake.events", []attribute.KeyValue{attribute.String("result", "rejected")}, func(n int64) bool { return n == 1 }},
		{"pushback.intake.lag", nil, func(n int64) bool { return n == 1 }},
		{"pushback.notify.deliveries", []attribute.KeyValue{attribute.String("channel", "log"), attribute.String("result", "delivered")}, func(n int64) bool { return n >= 1 }},
		{"pushback.notify.outbox.depth", nil, func(n int64) bool { return n >= 0 }},
		{"pushback.policy.reloads", nil, func(n int64) bool { return n == 0 }},
		{"pushback.policy.shadow_differences", nil, func(n int64) bool { return n == 0 }},
	}
	for _, tc := range tests {
		got, found := sumOf(rm, tc.name, tc.attrs...)
		if !found || !tc.want(got) {
			t.Errorf("%s%v = %d (found %v)", tc.name, tc.attrs, got, found)
		}
	}

	// /metrics serves every series the dashboard queries.
	resp, err := http.Get("http://" + top.front.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	dash, err := os.ReadFile("../../deploy/grafana/pushback-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	// Label lists ("by (le, rpc_method)") are not series.
	exprs := regexp.MustCompile(`by \([^)]*\)`).ReplaceAllString(string(dash), "")
	var series []string
	for _, m := range regexp.MustCompile(`((?:pushback|rpc)_[a-z_]+)[\[{)]`).FindAllStringSubmatch(exprs, -1) {
		series = append(series, m[1])
	}
	if len(series) < 10 {
		t.Fatalf("the dashboard queries only %v", series)
	}
	for _, s := range series {
		if !regexp.MustCompile(`(?m)^` + s + `[{ ]`).Match(body) {
			t.Errorf("the dashboard queries %s, which /metrics does not serve", s)
		}
	}
	if strings.Contains(string(body), secretUser) {
		t.Error("a raw user id is among the metrics")
	}
}
