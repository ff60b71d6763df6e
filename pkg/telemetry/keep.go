package telemetry

import (
	"container/list"
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// KeepKey is the span attribute that asks for the span's trace to be
// exported whatever head sampling chose; its value says why (KeepOutcome,
// KeepFailureMode, KeepError). A collector's tail_sampling policy can key
// on it too (deploy/otel/collector.yaml).
const KeepKey = attribute.Key("pushback.trace.keep")

// Why a trace is kept.
const (
	// KeepOutcome: the decision did not simply allow the push (it denied,
	// downgraded or demanded a stronger factor), so a SOC alert or a
	// user's complaint may name the trace.
	KeepOutcome = "outcome"
	// KeepFailureMode: the answer came from a tier's failure mode.
	KeepFailureMode = "failure_mode"
	// KeepError: the call failed, or a span of the trace ended in error.
	KeepError = "error"
)

// Keep marks span's trace as one to export whatever head sampling chose.
func Keep(span trace.Span, reason string) {
	if span.IsRecording() {
		span.SetAttributes(KeepKey.String(reason))
	}
}

// KeepLimits bound the memory of the keep buffer: the spans of traces not
// decided yet. Past a limit the oldest undecided trace is dropped (and
// counted), so a flood of traces that never end, or one trace with
// endless spans, costs a fixed amount of memory.
type KeepLimits struct {
	// Traces is the number of undecided traces held.
	Traces int
	// Spans is the number of ended spans held across them.
	Spans int
	// SpansPerTrace is the number of ended spans held for one trace; its
	// further spans are dropped (and counted).
	SpansPerTrace int
	// Decided is the number of decided traces remembered, so that spans
	// ending after their trace's local root (work that follows an answer)
	// follow its decision.
	Decided int
}

// DefaultKeepLimits hold about a second of undecided Decide traces at
// several thousand decisions a second (a Decide makes about 17 spans in
// one process), in some tens of MiB at most, and remember decided traces
// long enough for the work that follows an answer (milliseconds).
func DefaultKeepLimits() KeepLimits {
	return KeepLimits{Traces: 4096, Spans: 32768, SpansPerTrace: 256, Decided: 8192}
}

// orDefaults fills each limit not set (zero or less) from DefaultKeepLimits.
func (l KeepLimits) orDefaults() KeepLimits {
	d := DefaultKeepLimits()
	or := func(v, def int) int {
		if v <= 0 {
			return def
		}
		return v
	}
	return KeepLimits{Traces: or(l.Traces, d.Traces), Spans: or(l.Spans, d.Spans),
		SpansPerTrace: or(l.SpansPerTrace, d.SpansPerTrace), Decided: or(l.Decided, d.Decided)}
}

// recordAll makes every span that head sampling drops record anyway
// (unsampled: its trace flags and the traceparent it propagates still say
// what head sampling chose), so that keepProcessor can export it once the
// outcome is known.
type recordAll struct{ head sdktrace.Sampler }

func (r recordAll) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	res := r.head.ShouldSample(p)
	if res.Decision == sdktrace.Drop {
		res.Decision = sdktrace.RecordOnly
	}
	return res
}

func (r recordAll) Description() string { return "RecordAll{" + r.head.Description() + "}" }

// keepProcessor sits in front of the exporting processor. Spans of traces
// head sampling chose pass straight through. Spans of the others (recorded
// by recordAll) wait in a bounded buffer per trace until either a span
// asks for the trace to be kept (KeepKey, or an error status), which
// exports everything the trace has and will have in this process, or the
// trace's local root (its first span started here) ends without that,
// which drops them.
type keepProcessor struct {
	next sdktrace.SpanProcessor
	lim  KeepLimits

	evicted metric.Int64Counter
	kept    metric.Int64Counter
	reasons map[string]metric.AddOption

	mu      sync.Mutex
	pending map[trace.TraceID]*pendingTrace
	order   *list.List // of *pendingTrace, oldest first
	spans   int
	decided map[trace.TraceID]bool
	ring    []trace.TraceID // decided traces, oldest at ringAt
	ringAt  int
}

type pendingTrace struct {
	id    trace.TraceID
	root  trace.SpanID
	spans []sdktrace.ReadOnlySpan
	elem  *list.Element
}

func newKeepProcessor(next sdktrace.SpanProcessor, lim KeepLimits, m metric.Meter) *keepProcessor {
	lim = lim.orDefaults()
	p := &keepProcessor{next: next, lim: lim, pending: map[trace.TraceID]*pendingTrace{}, order: list.New(),
		decided: make(map[trace.TraceID]bool, lim.Decided), ring: make([]trace.TraceID, lim.Decided),
		reasons: map[string]metric.AddOption{}}
	p.evicted, _ = m.Int64Counter("pushback.telemetry.spans_evicted", metric.WithUnit("{span}"),
		metric.WithDescription("Recorded spans of traces head sampling did not choose, dropped before their trace was decided because the keep buffer was full."))
	p.kept, _ = m.Int64Counter("pushback.telemetry.traces_kept", metric.WithUnit("{trace}"),
		metric.WithDescription("Traces head sampling did not choose, exported because of how their decision ended, by reason."))
	// The reason label stays bounded whatever a span says.
	for _, r := range []string{KeepOutcome, KeepFailureMode, KeepError, "other"} {
		p.reasons[r] = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", r)))
	}
	return p
}

func (p *keepProcessor) countKept(reason string) {
	opt, ok := p.reasons[reason]
	if !ok {
		opt = p.reasons["other"]
	}
	p.kept.Add(context.Background(), 1, opt)
}

// OnStart notes the first span of an unsampled trace started in this
// process, its local root; or the first of a new call in a trace this
// process already dropped.
func (p *keepProcessor) OnStart(ctx context.Context, s sdktrace.ReadWriteSpan) {
	sc := s.SpanContext()
	if sc.IsSampled() {
		p.next.OnStart(ctx, s)
		return
	}
	p.mu.Lock()
	if kept, ok := p.decided[sc.TraceID()]; ok {
		if kept || !s.Parent().IsRemote() {
			p.mu.Unlock()
			return
		}
		// A new call in a trace already dropped here (a caller that
		// sends several calls under one trace id): it is decided anew.
		delete(p.decided, sc.TraceID())
	}
	if _, ok := p.pending[sc.TraceID()]; ok {
		p.mu.Unlock()
		return
	}
	t := &pendingTrace{id: sc.TraceID(), root: sc.SpanID()}
	t.elem = p.order.PushBack(t)
	p.pending[t.id] = t
	var evicted int
	for p.order.Len() > p.lim.Traces {
		evicted += p.evictOldest()
	}
	p.mu.Unlock()
	if evicted > 0 {
		p.evicted.Add(ctx, int64(evicted))
	}
}

// OnEnd exports, holds or drops an ended span (see keepProcessor).
func (p *keepProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	sc := s.SpanContext()
	if sc.IsSampled() {
		p.next.OnEnd(s)
		return
	}
	reason, keep := keepReason(s)
	p.mu.Lock()
	if k, ok := p.decided[sc.TraceID()]; ok && !(keep && !k) {
		p.mu.Unlock()
		if k {
			p.next.OnEnd(exported{s})
		}
		return
	}
	t := p.pending[sc.TraceID()]
	switch {
	case keep:
		// Everything held for the trace goes out, and what ends later
		// follows.
		var held []sdktrace.ReadOnlySpan
		if t != nil {
			held = t.spans
			p.remove(t)
		}
		p.decide(sc.TraceID(), true)
		p.mu.Unlock()
		p.countKept(reason)
		for _, h := range held {
			p.next.OnEnd(exported{h})
		}
		p.next.OnEnd(exported{s})
		return
	case t == nil:
		// A span of a trace evicted before it was decided (or of one
		// decided so long ago that it was forgotten): the trace can no
		// longer be exported whole.
		p.mu.Unlock()
		p.evicted.Add(context.Background(), 1)
		return
	case t.root == sc.SpanID():
		p.remove(t)
		p.decide(sc.TraceID(), false)
		p.mu.Unlock()
		return
	case len(t.spans) >= p.lim.SpansPerTrace:
		p.mu.Unlock()
		p.evicted.Add(context.Background(), 1)
		return
	}
	t.spans = append(t.spans, s)
	p.spans++
	var evicted int
	for p.spans > p.lim.Spans && p.order.Len() > 0 {
		evicted += p.evictOldest()
	}
	p.mu.Unlock()
	if evicted > 0 {
		p.evicted.Add(context.Background(), int64(evicted))
	}
}

// keepReason reports whether s asks for its trace to be kept, and why.
func keepReason(s sdktrace.ReadOnlySpan) (string, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == KeepKey {
			return kv.Value.AsString(), true
		}
	}
	if s.Status().Code == codes.Error {
		return KeepError, true
	}
	return "", false
}

// evictOldest drops the oldest undecided trace and returns how many spans
// it held. The caller holds p.mu.
func (p *keepProcessor) evictOldest() int {
	t := p.order.Front().Value.(*pendingTrace)
	n := len(t.spans)
	p.remove(t)
	return n
}

// remove forgets an undecided trace. The caller holds p.mu.
func (p *keepProcessor) remove(t *pendingTrace) {
	p.order.Remove(t.elem)
	delete(p.pending, t.id)
	p.spans -= len(t.spans)
}

// decide remembers a trace's decision, forgetting the oldest one past
// the limit. The caller holds p.mu.
func (p *keepProcessor) decide(id trace.TraceID, keep bool) {
	if _, ok := p.decided[id]; !ok {
		if old := p.ring[p.ringAt]; old.IsValid() {
			delete(p.decided, old)
		}
		p.ring[p.ringAt] = id
		p.ringAt = (p.ringAt + 1) % len(p.ring)
	}
	p.decided[id] = keep
}

// ForceFlush flushes the exporting processor; undecided traces stay held.
func (p *keepProcessor) ForceFlush(ctx context.Context) error { return p.next.ForceFlush(ctx) }

// Shutdown drops what is undecided and shuts the exporting processor down.
func (p *keepProcessor) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.pending, p.order, p.spans = map[trace.TraceID]*pendingTrace{}, list.New(), 0
	p.mu.Unlock()
	return p.next.Shutdown(ctx)
}

// exported shows a kept span to the exporting processor as sampled: it
// is, now, and the exporting processor passes on sampled spans only.
type exported struct{ sdktrace.ReadOnlySpan }

func (e exported) SpanContext() trace.SpanContext {
	sc := e.ReadOnlySpan.SpanContext()
	return sc.WithTraceFlags(sc.TraceFlags().WithSampled(true))
}
