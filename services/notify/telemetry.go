package notify

import (
	"context"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
)

// Results of a delivery attempt (the result label of pushback.notify.deliveries).
const (
	resultDelivered = "delivered"
	resultRetry     = "retry"
	resultDead      = "dead"
)

// maxOutboxCount bounds the scan behind pushback.notify.outbox.depth: a
// larger outbox is reported as this many.
const maxOutboxCount = 100_000

// instruments are the notification service's metrics.
type instruments struct {
	deliveries metric.Int64Counter
	actions    metric.Int64Counter
	sets       map[[2]string]metric.AddOption
	redact     *telemetry.Redactor
}

func newInstruments(m metric.Meter, st store.Store, channels []Channel, redact *telemetry.Redactor) *instruments {
	if m == nil {
		m = noop.NewMeterProvider().Meter("notify")
	}
	in := &instruments{sets: map[[2]string]metric.AddOption{}, redact: redact}
	names := []string{"unknown"}
	for _, c := range channels {
		names = append(names, c.Name())
	}
	for _, n := range names {
		for _, r := range []string{resultDelivered, resultRetry, resultDead} {
			in.sets[[2]string{n, r}] = metric.WithAttributeSet(attribute.NewSet(attribute.String("channel", n), attribute.String("result", r)))
		}
	}
	in.deliveries, _ = m.Int64Counter("pushback.notify.deliveries", metric.WithUnit("{attempt}"),
		metric.WithDescription("Delivery attempts by channel and result: delivered, retry (failed, will retry), dead (dead-lettered)."))
	in.actions, _ = m.Int64Counter("pushback.respond.actions", metric.WithUnit("{action}"),
		metric.WithDescription("Response actions by connector, action and result: taken, retry (failed, will retry), dead (failed for good; an alert says so), held (by the brake), dry_run (recorded, not taken), unsupported (no connector takes it)."))
	depth, _ := m.Int64ObservableGauge("pushback.notify.outbox.depth", metric.WithUnit("{delivery}"),
		metric.WithDescription("Deliveries waiting in the outbox (pending, including those backing off or rate limited)."))
	_, _ = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		n, err := outboxDepth(ctx, st)
		if err != nil {
			return err
		}
		o.ObserveInt64(depth, int64(n))
		return nil
	}, depth)
	return in
}

// outboxDepth counts the due keys, one per pending delivery.
func outboxDepth(ctx context.Context, st store.Store) (int, error) {
	prefix := []byte("notify/due/")
	var after []byte
	n := 0
	for n < maxOutboxCount {
		items, err := st.Scan(ctx, store.ScanOptions{Prefix: prefix, After: after, Limit: 1000})
		if err != nil {
			return 0, err
		}
		n += len(items)
		if len(items) < 1000 {
			break
		}
		after = items[len(items)-1].Key
	}
	return min(n, maxOutboxCount), nil
}

// attempted counts one delivery attempt.
func (in *instruments) attempted(ctx context.Context, channel string, status notifyv1.Status) {
	r := resultRetry
	switch status {
	case notifyv1.Status_STATUS_DELIVERED:
		r = resultDelivered
	case notifyv1.Status_STATUS_DEAD:
		r = resultDead
	}
	opt, ok := in.sets[[2]string{channel, r}]
	if !ok {
		opt = in.sets[[2]string{"unknown", r}]
	}
	in.deliveries.Add(ctx, 1, opt)
}

// action counts one response action outcome. Connector and action names
// are bounded (the configured connectors, the action vocabulary).
func (in *instruments) action(ctx context.Context, connector, action, result string) {
	in.actions.Add(ctx, 1, metric.WithAttributes(attribute.String("connector", connector), attribute.String("action", action), attribute.String("result", result)))
}

// decisionLink links a delivery's span to the trace of the decision that
// caused it. A delivery runs later, from the outbox, in a trace of its own;
// the notification carries only the decision's trace id, so the link names
// that trace (and the trace id is also an attribute, for searching).
func decisionLink(n *notifyv1.NotifyRequest) []trace.SpanStartOption {
	tid, err := trace.TraceIDFromHex(n.GetTraceId())
	if err != nil {
		return nil
	}
	return []trace.SpanStartOption{
		trace.WithLinks(trace.Link{
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, TraceFlags: trace.FlagsSampled, Remote: true}),
			Attributes:  []attribute.KeyValue{attribute.String("pushback.link", "decision")},
		}),
		trace.WithAttributes(attribute.String("pushback.decision_trace_id", n.GetTraceId())),
	}
}
