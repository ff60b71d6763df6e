package mesh_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/telemetry"
	"github.com/pushbackhq/pushback/services/mesh"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// defaultSampling is the environment of a process that sets no OTEL_*
// variable: parentbased_traceidratio at 0.1.
func defaultSampling(string) string { return "" }

// traces groups exported spans by trace id.
func traces(spans tracetest.SpanStubs) map[string]tracetest.SpanStubs {
	out := map[string]tracetest.SpanStubs{}
	for _, s := range spans {
		id := s.SpanContext.TraceID().String()
		out[id] = append(out[id], s)
	}
	return out
}

// keptFor is the pushback.trace.keep of the trace's decision.decide span
// ("" when it has none, or no such span).
func keptFor(trc tracetest.SpanStubs) string {
	for _, s := range byName(trc, "decision.decide") {
		if v, ok := attr(s, string(telemetry.KeepKey)); ok {
			return v.AsString()
		}
	}
	return ""
}

// At the default sampling a SOC alert names the trace of every denial:
// each one must be exported, with decision's and scoring's spans, while
// benign decisions still follow the ratio.
func TestDefaultSamplingExportsEveryDenial(t *testing.T) {
	exp := keptSpans{tracetest.NewInMemoryExporter()}
	logs := &lockedBuffer{}
	top := oneProcess(t, mesh.Options{SpanExporter: exp, Getenv: defaultSampling, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	dc := decisionv1.NewDecisionServiceClient(dial(t, top.front.grpcAddr))
	ctx := context.Background()
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Second)

	var denials []string
	for u := range 5 {
		user := fmt.Sprintf("bombed-%d@corp.example", u)
		var last *decisionv1.DecideResponse
		for i := range 5 {
			resp, err := dc.Decide(ctx, decideReq(user, fmt.Sprintf("deny-%d-%d", u, i), base.Add(time.Duration(i)*time.Minute)))
			if err != nil {
				t.Fatalf("Decide %s #%d: %v", user, i+1, err)
			}
			last = resp
		}
		if last.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY {
			t.Fatalf("fifth push for %s = %v, want DENY", user, last.GetOutcome())
		}
		denials = append(denials, last.GetTraceId())
	}
	const benign = 200
	var allows []string
	for u := range benign {
		// Each from an address of its own: one address pushing to many
		// users is a spray.
		req := decideReq(fmt.Sprintf("benign-%d@corp.example", u), fmt.Sprintf("allow-%d", u), base)
		req.Client.Ip = fmt.Sprintf("192.0.2.%d", u+1)
		resp, err := dc.Decide(ctx, req)
		if err != nil {
			t.Fatalf("Decide benign %d: %v", u, err)
		}
		if resp.GetOutcome() != decisionv1.Outcome_OUTCOME_ALLOW || resp.GetFailureMode() != decisionv1.FailureMode_FAILURE_MODE_UNSPECIFIED {
			t.Fatalf("benign push %d = %v (failure mode %v), want a plain ALLOW", u, resp.GetOutcome(), resp.GetFailureMode())
		}
		allows = append(allows, resp.GetTraceId())
	}
	// Each denial's SOC alert goes to the log channel from the outbox.
	waitFor(t, "the alert deliveries", func() bool { return strings.Count(logs.String(), `"msg":"alert"`) >= len(denials) })
	top.front.stop()

	got := traces(exp.GetSpans())
	for i, id := range denials {
		trc := got[id]
		for _, want := range []string{"pushback.decision.v1.DecisionService/Decide", "decision.decide", "decision.policy",
			"pushback.scoring.v1.ScoringService/Assess", "scoring.assess"} {
			if len(byName(trc, want)) == 0 {
				t.Errorf("denial %d (trace %s): no %s span among %v", i+1, id, want, names(trc))
			}
		}
		if k := keptFor(trc); k != telemetry.KeepOutcome && len(trc) > 0 {
			t.Errorf("denial %d: pushback.trace.keep = %q, want %q", i+1, k, telemetry.KeepOutcome)
		}
		// The alert's delivery runs in a trace of its own, linked to the
		// decision's: it is exported too.
		var delivered bool
		for _, d := range byName(exp.GetSpans(), "notify.deliver") {
			for _, l := range d.Links {
				delivered = delivered || l.SpanContext.TraceID().String() == id
			}
		}
		if !delivered {
			t.Errorf("denial %d: no exported notify.deliver span links to its trace %s", i+1, id)
		}
	}
	var exported int
	for _, id := range allows {
		trc := got[id]
		if len(trc) == 0 {
			continue
		}
		exported++
		if len(byName(trc, "scoring.assess")) == 0 || len(byName(trc, "decision.decide")) == 0 {
			t.Errorf("a sampled benign trace is not whole: %v", names(trc))
		}
		if k := keptFor(trc); k != "" {
			t.Errorf("a plain ALLOW was marked to keep (%q)", k)
		}
	}
	// 0.1 of 200: about 20; either bound failing by chance is below one in a billion.
	t.Logf("benign traces exported: %d of %d", exported, benign)
	if exported == 0 || exported >= benign/2 {
		t.Errorf("%d of %d benign traces exported, want about a tenth", exported, benign)
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// A decision answered by the failure mode (scoring down) is exported
// whatever head sampling said, and so is one that failed.
func TestDefaultSamplingExportsFailureModesAndErrors(t *testing.T) {
	t.Run("failure mode", func(t *testing.T) {
		exp := keptSpans{tracetest.NewInMemoryExporter()}
		cfg := mesh.Default()
		cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", ""
		cfg.Services = []string{mesh.Decision}
		cfg.ScoringAddr, cfg.NotifyAddr = closedAddr(t), closedAddr(t)
		p := run(t, cfg, mesh.Options{SpanExporter: exp, Getenv: defaultSampling})
		dc := decisionv1.NewDecisionServiceClient(dial(t, p.grpcAddr))
		var ids []string
		for i := range 10 {
			resp, err := dc.Decide(context.Background(), decideReq(fmt.Sprintf("fm-%d@corp.example", i), fmt.Sprintf("fm-%d", i), time.Now()))
			if err != nil {
				t.Fatalf("Decide %d: %v", i, err)
			}
			if resp.GetFailureMode() == decisionv1.FailureMode_FAILURE_MODE_UNSPECIFIED {
				t.Fatalf("Decide %d with scoring down answered without a failure mode: %v", i, resp)
			}
			ids = append(ids, resp.GetTraceId())
		}
		p.stop()
		got := traces(exp.GetSpans())
		for i, id := range ids {
			if k := keptFor(got[id]); k != telemetry.KeepFailureMode {
				t.Errorf("failure-mode decision %d: keep = %q, spans %v", i, k, names(got[id]))
			}
			if len(byName(got[id], "pushback.scoring.v1.ScoringService/Assess")) == 0 {
				t.Errorf("failure-mode decision %d: the failed scoring call is not in the trace: %v", i, names(got[id]))
			}
		}
	})
	t.Run("error", func(t *testing.T) {
		exp := keptSpans{tracetest.NewInMemoryExporter()}
		top := oneProcess(t, mesh.Options{SpanExporter: exp, Getenv: defaultSampling})
		dc := decisionv1.NewDecisionServiceClient(dial(t, top.front.grpcAddr))
		at := time.Now().Add(-time.Minute)
		if _, err := dc.Decide(context.Background(), decideReq("reuser@corp.example", "reused", at)); err != nil {
			t.Fatal(err)
		}
		// The same attempt id for another request fails; the caller's
		// traceparent says "not sampled", which must not hide the failure.
		const traceID = "5bf92f3577b34da6a3ce929d0e0e4736"
		ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+traceID+"-00f067aa0ba902b7-00")
		req := decideReq("reuser@corp.example", "reused", at)
		req.AppId = "payroll"
		_, err := dc.Decide(ctx, req)
		if status.Code(err) == codes.OK {
			t.Fatal("a reused attempt id was answered")
		}
		top.front.stop()
		trc := traces(exp.GetSpans())[traceID]
		if k := keptFor(trc); k != telemetry.KeepError {
			t.Fatalf("failed Decide (%v): keep = %q, spans %v", err, k, names(trc))
		}
		if len(byName(trc, "pushback.decision.v1.DecisionService/Decide")) == 0 {
			t.Errorf("the failed decision's trace lacks its root: %v", names(trc))
		}
	})
}

// Travel evidence names the previous and the current IP. Raw IPs and user
// ids stay out of every exported span, event and attribute unless the
// operator turned raw ids on; then they are there, under the keys the
// collector deletes.
func TestTravelEvidenceKeepsIPsOutOfSpans(t *testing.T) {
	const (
		homeIP   = "198.51.100.23"
		travelIP = "203.0.113.199"
	)
	for _, raw := range []bool{false, true} {
		t.Run(fmt.Sprintf("raw ids %v", raw), func(t *testing.T) {
			exp := keptSpans{tracetest.NewInMemoryExporter()}
			cfg := mesh.Default()
			cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", ""
			cfg.TelemetryRawIDs = raw
			p := run(t, cfg, mesh.Options{SpanExporter: exp, Getenv: defaultSampling})
			conn := dial(t, p.grpcAddr)
			now := time.Now()
			home := &eventv1.Client{Ip: homeIP, DeviceId: "laptop-1", Asn: 64500,
				Geo: &eventv1.Geo{Latitude: 40.71, Longitude: -74.0, AccuracyKm: 10, Country: "US", City: "New York"}}
			login := &eventv1.AuthEvent{EventId: "home-login", UserId: secretUser, Type: eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED,
				Time: timestamppb.New(now.Add(-30 * time.Minute)), Source: &eventv1.Source{Idp: "okta"}, Client: home}
			if _, err := scoringv1.NewScoringServiceClient(conn).Observe(context.Background(), &scoringv1.ObserveRequest{Events: []*eventv1.AuthEvent{login}}); err != nil {
				t.Fatal(err)
			}
			req := decideReq(secretUser, "travel-1", now)
			req.Client = &eventv1.Client{Ip: travelIP, DeviceId: "unknown-7", Asn: 64511,
				Geo: &eventv1.Geo{Latitude: 35.68, Longitude: 139.69, AccuracyKm: 10, Country: "JP", City: "Tokyo"}}
			resp, err := decisionv1.NewDecisionServiceClient(conn).Decide(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if !hasSignal(resp.GetRisk(), "IMPOSSIBLE_TRAVEL") || !hasSignal(resp.GetRisk(), "NEW_COUNTRY") {
				t.Fatalf("signals %v, want IMPOSSIBLE_TRAVEL and NEW_COUNTRY", resp.GetRisk().GetSignals())
			}
			if resp.GetOutcome() == decisionv1.Outcome_OUTCOME_ALLOW {
				t.Fatalf("impossible travel allowed; the trace would not be kept at default sampling")
			}
			p.stop()
			spans := exp.GetSpans()
			trc := traces(spans)[resp.GetTraceId()]
			var travel bool
			for _, s := range byName(trc, "scoring.assess") {
				for _, e := range s.Events {
					travel = travel || e.Name == "signal IMPOSSIBLE_TRAVEL"
				}
			}
			if !travel {
				t.Fatalf("the denied travel's trace has no IMPOSSIBLE_TRAVEL event: %v", names(trc))
			}
			leaked := leaks(spans, secretUser, homeIP, travelIP)
			if !raw && len(leaked) > 0 {
				t.Errorf("raw identities in exported spans:\n%s", strings.Join(leaked, "\n"))
			}
			if raw {
				all := strings.Join(leaked, "\n")
				for _, want := range []string{"pushback.evidence.previous_ip=" + homeIP, "pushback.evidence.current_ip=" + travelIP, "pushback.user_id=" + secretUser} {
					if !strings.Contains(all, want) {
						t.Errorf("with raw ids on, %s is missing from the spans:\n%s", want, all)
					}
				}
				// The collector, the second line of defence, deletes every
				// key that holds a raw identity, where it sits.
				spanKeys, eventKeys := rawKeys(spans, secretUser, homeIP, travelIP)
				attrs, events := collectorDeletes(t)
				for k := range spanKeys {
					if !attrs[k] {
						t.Errorf("span attribute %s holds a raw identity; the collector's attributes/scrub does not delete it", k)
					}
				}
				for k := range eventKeys {
					if !events[k] {
						t.Errorf("span event attribute %s holds a raw identity; the collector's transform/scrub_events does not delete it", k)
					}
				}
			}
		})
	}
}

// rawKeys lists the attribute keys of spans and of span events whose
// value contains one of the secrets.
func rawKeys(spans tracetest.SpanStubs, secrets ...string) (span, event map[string]bool) {
	span, event = map[string]bool{}, map[string]bool{}
	holds := func(v string) bool {
		for _, sec := range secrets {
			if strings.Contains(v, sec) {
				return true
			}
		}
		return false
	}
	for _, s := range spans {
		for _, kv := range s.Attributes {
			if holds(kv.Value.String()) {
				span[string(kv.Key)] = true
			}
		}
		for _, e := range s.Events {
			for _, kv := range e.Attributes {
				if holds(kv.Value.String()) {
					event[string(kv.Key)] = true
				}
			}
		}
	}
	return span, event
}

// collectorConfig is what the tests read of deploy/otel/collector.yaml.
type collectorConfig struct {
	Processors map[string]struct {
		Actions []struct {
			Key    string `yaml:"key"`
			Action string `yaml:"action"`
		} `yaml:"actions"`
		TraceStatements []struct {
			Context    string   `yaml:"context"`
			Statements []string `yaml:"statements"`
		} `yaml:"trace_statements"`
		Policies []struct {
			Type            string `yaml:"type"`
			StringAttribute struct {
				Key    string   `yaml:"key"`
				Values []string `yaml:"values"`
			} `yaml:"string_attribute"`
		} `yaml:"policies"`
	} `yaml:"processors"`
	Service struct {
		Pipelines map[string]struct {
			Processors []string `yaml:"processors"`
		} `yaml:"pipelines"`
	} `yaml:"service"`
}

func readCollector(t *testing.T) collectorConfig {
	t.Helper()
	b, err := os.ReadFile("../../deploy/otel/collector.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg collectorConfig
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// collectorDeletes reads deploy/otel/collector.yaml: the span attribute
// keys its attributes/scrub deletes and the span event attribute keys its
// transform/scrub_events deletes, each only if the traces pipeline runs
// the processor.
func collectorDeletes(t *testing.T) (attrs, events map[string]bool) {
	t.Helper()
	cfg := readCollector(t)
	inPipeline := cfg.Service.Pipelines["traces"].Processors
	attrs, events = map[string]bool{}, map[string]bool{}
	if slices.Contains(inPipeline, "attributes/scrub") {
		for _, a := range cfg.Processors["attributes/scrub"].Actions {
			attrs[a.Key] = attrs[a.Key] || a.Action == "delete"
		}
	} else {
		t.Error("the traces pipeline does not run attributes/scrub")
	}
	if slices.Contains(inPipeline, "transform/scrub_events") {
		deleteKey := regexp.MustCompile(`^delete_key\(attributes, "([^"]+)"\)$`)
		for _, ts := range cfg.Processors["transform/scrub_events"].TraceStatements {
			if ts.Context != "spanevent" {
				continue
			}
			for _, st := range ts.Statements {
				if m := deleteKey.FindStringSubmatch(strings.TrimSpace(st)); m != nil {
					events[m[1]] = true
				}
			}
		}
	} else {
		t.Error("the traces pipeline does not run transform/scrub_events")
	}
	return attrs, events
}

// Split into processes, the collector samples after the outcome: its
// tail_sampling keeps every trace decision marks, for every reason it
// marks one, and the scrubs run before it holds spans.
func TestCollectorKeepsWhatDecisionMarks(t *testing.T) {
	cfg := readCollector(t)
	pipeline := cfg.Service.Pipelines["traces"].Processors
	at := slices.Index(pipeline, "tail_sampling")
	if at < 0 {
		t.Fatalf("the traces pipeline %v has no tail_sampling", pipeline)
	}
	for _, scrub := range []string{"attributes/scrub", "transform/scrub_events"} {
		if i := slices.Index(pipeline, scrub); i < 0 || i > at {
			t.Errorf("%s does not run before tail_sampling in %v", scrub, pipeline)
		}
	}
	var kept []string
	for _, p := range cfg.Processors["tail_sampling"].Policies {
		if p.Type == "string_attribute" && p.StringAttribute.Key == string(telemetry.KeepKey) {
			kept = append(kept, p.StringAttribute.Values...)
		}
	}
	for _, reason := range []string{telemetry.KeepOutcome, telemetry.KeepFailureMode, telemetry.KeepError} {
		if !slices.Contains(kept, reason) {
			t.Errorf("tail_sampling does not keep traces marked %s=%s", telemetry.KeepKey, reason)
		}
	}
}
