package telemetry

import (
	"context"
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// keepRig is a tracer whose head sampler chooses nothing (or everything),
// behind a keep processor that exports synchronously to memory.
type keepRig struct {
	tracer trace.Tracer
	keep   *keepProcessor
	spans  *tracetest.InMemoryExporter
	reader *sdkmetric.ManualReader
}

func newKeepRig(t *testing.T, head sdktrace.Sampler, lim KeepLimits) keepRig {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	keep := newKeepProcessor(sdktrace.NewSimpleSpanProcessor(exp), lim, mp.Meter("test"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(recordAll{head}), sdktrace.WithSpanProcessor(keep))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return keepRig{tracer: tp.Tracer("test"), keep: keep, spans: exp, reader: reader}
}

func (r keepRig) exported(id trace.TraceID) []string {
	var out []string
	for _, s := range r.spans.GetSpans() {
		if s.SpanContext.TraceID() == id {
			out = append(out, s.Name)
		}
	}
	return out
}

func (r keepRig) counter(t *testing.T, name string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == name {
				for _, dp := range sum.DataPoints {
					n += dp.Value
				}
			}
		}
	}
	return n
}

// decide plays one Decide in this process: a root, a child that ends
// before it, the decision span marked (or not) as mark says, and work
// that follows the answer, which ends after the root.
func (r keepRig) decide(mark func(trace.Span)) trace.TraceID {
	ctx, root := r.tracer.Start(context.Background(), "Decide")
	dctx, dec := r.tracer.Start(ctx, "decision.decide")
	_, sc := r.tracer.Start(dctx, "scoring.assess")
	sc.End()
	mark(dec)
	dec.End()
	_, after := r.tracer.Start(dctx, "notify")
	root.End()
	after.End()
	return root.SpanContext().TraceID()
}

func TestKeepExportsMarkedTracesWholeAndDropsTheRest(t *testing.T) {
	tests := []struct {
		name string
		mark func(trace.Span)
		want int
	}{
		{"suppressed push", func(s trace.Span) { Keep(s, KeepOutcome) }, 4},
		{"failure mode", func(s trace.Span) { Keep(s, KeepFailureMode) }, 4},
		{"span in error", func(s trace.Span) { s.SetStatus(codes.Error, "store unavailable") }, 4},
		{"plain allow", func(trace.Span) {}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newKeepRig(t, sdktrace.NeverSample(), DefaultKeepLimits())
			id := r.decide(tc.mark)
			got := r.exported(id)
			if len(got) != tc.want {
				t.Fatalf("exported %v, want %d spans", got, tc.want)
			}
			for _, s := range r.spans.GetSpans() {
				if !s.SpanContext.IsSampled() {
					t.Errorf("span %s exported unsampled", s.Name)
				}
			}
			if n := len(r.keep.pending); n != 0 {
				t.Errorf("%d traces still held after their roots ended", n)
			}
		})
	}
}

// The head sampler's choice is exported as it was, without the buffer.
func TestKeepPassesHeadSampledTraces(t *testing.T) {
	r := newKeepRig(t, sdktrace.AlwaysSample(), DefaultKeepLimits())
	id := r.decide(func(trace.Span) {})
	if got := r.exported(id); len(got) != 4 {
		t.Fatalf("exported %v, want the 4 spans of the sampled trace", got)
	}
	if len(r.keep.pending) != 0 || r.keep.spans != 0 {
		t.Fatal("a sampled trace went through the buffer")
	}
}

// The attack: traces that never end (a hung call, or spans made on
// purpose) and one trace with endless spans. The buffer stays within its
// limits the whole time, counts what it drops, and a decision marked
// afterwards is still exported whole.
func TestKeepBufferStaysBoundedUnderAFlood(t *testing.T) {
	lim := KeepLimits{Traces: 64, Spans: 256, SpansPerTrace: 16, Decided: 64}
	r := newKeepRig(t, sdktrace.NeverSample(), lim)
	check := func(when string) {
		t.Helper()
		r.keep.mu.Lock()
		defer r.keep.mu.Unlock()
		if len(r.keep.pending) > lim.Traces || r.keep.order.Len() != len(r.keep.pending) || r.keep.spans > lim.Spans {
			t.Fatalf("%s: %d traces and %d spans held, limits %d and %d", when, len(r.keep.pending), r.keep.spans, lim.Traces, lim.Spans)
		}
		held := 0
		for _, p := range r.keep.pending {
			if len(p.spans) > lim.SpansPerTrace {
				t.Fatalf("%s: one trace holds %d spans, limit %d", when, len(p.spans), lim.SpansPerTrace)
			}
			held += len(p.spans)
		}
		if held != r.keep.spans {
			t.Fatalf("%s: %d spans held, %d counted", when, held, r.keep.spans)
		}
		if len(r.keep.decided) > lim.Decided {
			t.Fatalf("%s: %d decided traces remembered, limit %d", when, len(r.keep.decided), lim.Decided)
		}
	}
	for i := range 10_000 {
		ctx, root := r.tracer.Start(context.Background(), "never ends")
		_ = root
		for range 3 {
			_, c := r.tracer.Start(ctx, "child")
			c.End()
		}
		if i%97 == 0 {
			check(fmt.Sprintf("never-ending trace %d", i))
		}
	}
	ctx, huge := r.tracer.Start(context.Background(), "huge")
	for i := range 10_000 {
		_, c := r.tracer.Start(ctx, "child")
		c.End()
		if i%97 == 0 {
			check(fmt.Sprintf("span %d of a huge trace", i))
		}
	}
	check("after the flood")
	if n := r.counter(t, "pushback.telemetry.spans_evicted"); n < 10_000 {
		t.Errorf("spans_evicted = %d after dropping most of 40,000 spans", n)
	}
	// Late spans of the huge trace, and of forgotten ones, are dropped too.
	huge.End()
	for range 1000 {
		_, c := r.tracer.Start(ctx, "late")
		c.End()
	}
	check("after late spans")
	if len(r.spans.GetSpans()) != 0 {
		t.Fatalf("%d unmarked spans exported", len(r.spans.GetSpans()))
	}
	for range 200 {
		id := r.decide(func(s trace.Span) { Keep(s, KeepOutcome) })
		if got := r.exported(id); len(got) != 4 {
			t.Fatalf("a denial after the flood exported %v, want its 4 spans", got)
		}
	}
	check("after the denials")
	if n := r.counter(t, "pushback.telemetry.traces_kept"); n != 200 {
		t.Errorf("traces_kept = %d, want 200", n)
	}
}

// A span that ends after its trace was dropped still keeps it, alone,
// when it ends in error: work after the answer that failed.
func TestKeepLateErrorAfterTheRootWasDropped(t *testing.T) {
	r := newKeepRig(t, sdktrace.NeverSample(), DefaultKeepLimits())
	ctx, root := r.tracer.Start(context.Background(), "Decide")
	_, after := r.tracer.Start(ctx, "notify")
	root.End()
	after.SetStatus(codes.Error, "notify unavailable")
	after.End()
	if got := r.exported(root.SpanContext().TraceID()); len(got) != 1 || got[0] != "notify" {
		t.Fatalf("exported %v, want the failed notify span", got)
	}
}

// A caller that sends several calls under one unsampled trace id: the
// first is dropped, the second, a denial, is still exported whole.
func TestKeepSecondCallInADroppedTrace(t *testing.T) {
	r := newKeepRig(t, sdktrace.ParentBased(sdktrace.NeverSample()), DefaultKeepLimits())
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4}, Remote: true})
	call := func(mark func(trace.Span)) {
		ctx, root := r.tracer.Start(trace.ContextWithRemoteSpanContext(context.Background(), remote), "Decide")
		dctx, dec := r.tracer.Start(ctx, "decision.decide")
		_, sc := r.tracer.Start(dctx, "scoring.assess")
		sc.End()
		mark(dec)
		dec.End()
		root.End()
	}
	call(func(trace.Span) {})
	if got := r.exported(remote.TraceID()); len(got) != 0 {
		t.Fatalf("the allowed call exported %v", got)
	}
	call(func(s trace.Span) { Keep(s, KeepOutcome) })
	if got := r.exported(remote.TraceID()); len(got) != 3 {
		t.Fatalf("the denied call exported %v, want its 3 spans", got)
	}
}
