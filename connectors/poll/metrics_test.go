package poll_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/connectors/poll"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestRunnerMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
	st := storetest.Memory(t, poll.Keyspaces()...)
	src := &fakeSource{last: 2, errs: []error{errors.New("HTTP 500")}}
	sk := &sink{}
	r, err := poll.New(poll.Options{Source: src, Store: st, Parse: parse, Save: sk.Save, Owner: "a", Meter: meter,
		Config: poll.Config{Interval: time.Second, Backfill: time.Hour}, MinBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(r)
	waitFor(t, "two pages", func() bool { return cursorOf(t, st) == "c2" })
	stop()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if v, _ := p.Attributes.Value(attribute.Key("source")); v.AsString() == "fake" {
						got[m.Name] += float64(p.Value)
					}
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					got[m.Name] = p.Value
				}
			}
		}
	}
	if got["pushback.poll.pages"] < 2 || got["pushback.poll.events"] != 2 || got["pushback.poll.failures"] != 1 {
		t.Fatalf("counters %v", got)
	}
	// The fake's newest record is a minute old.
	if lag := got["pushback.poll.lag"]; lag < 59 || lag > 70 {
		t.Fatalf("lag %v, want about 60s", lag)
	}
}
