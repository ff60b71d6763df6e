package intake

import (
	"context"
	"slices"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/services/intake/formats"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Results of an ingested event (the result label of pushback.intake.events).
const (
	resultAccepted  = "accepted"
	resultDuplicate = "duplicate"
	resultRejected  = "rejected"
)

// instruments are the intake service's metrics; attribute sets are built
// once per result and format so recording allocates nothing.
type instruments struct {
	events metric.Int64Counter
	lag    metric.Float64Histogram
	sets   map[[2]string]metric.AddOption
	none   metric.RecordOption
}

func newInstruments(m metric.Meter) *instruments {
	if m == nil {
		m = noop.NewMeterProvider().Meter("intake")
	}
	in := &instruments{sets: map[[2]string]metric.AddOption{}, none: metric.WithAttributeSet(attribute.NewSet())}
	for _, r := range []string{resultAccepted, resultDuplicate, resultRejected} {
		for _, f := range append(slices.Clone(formats.All), "other") {
			in.sets[[2]string{r, string(f)}] = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", r), attribute.String("format", string(f))))
		}
	}
	in.events, _ = m.Int64Counter("pushback.intake.events", metric.WithUnit("{event}"),
		metric.WithDescription("Events received, by result (accepted, duplicate, rejected) and the format they arrived in."))
	in.lag, _ = m.Float64Histogram("pushback.intake.lag", metric.WithUnit("s"),
		metric.WithDescription("Time from an accepted event's own time to its storing."),
		metric.WithExplicitBucketBoundaries(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 6*3600, 24*3600))
	return in
}

// format is the bounded format label of an event: the IdP its adapter
// names, "other" for anything else.
func format(e *eventv1.AuthEvent) string {
	f := formats.Format(e.GetSource().GetIdp())
	if slices.Contains(formats.All, f) {
		return string(f)
	}
	return "other"
}

// count records one event of one result.
func (in *instruments) count(ctx context.Context, result string, e *eventv1.AuthEvent) {
	in.events.Add(ctx, 1, in.sets[[2]string{result, format(e)}])
}

// stored records an accepted event's lag behind its own time; events from
// the future (clock skew) count as no lag.
func (in *instruments) stored(ctx context.Context, e *eventv1.AuthEvent, now time.Time) {
	in.count(ctx, resultAccepted, e)
	in.lag.Record(ctx, max(now.Sub(e.GetTime().AsTime()), 0).Seconds(), in.none)
}
