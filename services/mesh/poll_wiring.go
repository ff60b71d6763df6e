package mesh

import (
	"context"
	"log/slog"

	"github.com/pushbackhq/pushback/connectors/duo"
	"github.com/pushbackhq/pushback/connectors/entra"
	"github.com/pushbackhq/pushback/connectors/okta"
	"github.com/pushbackhq/pushback/connectors/poll"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/services/intake"
	"github.com/pushbackhq/pushback/services/intake/formats"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// pollers builds a log poller for every connector that is on and polls
// (docs/intake.md, Polling): each stores through intake, so it runs where
// intake runs, and the shared store's lease keeps one replica polling.
func pollers(cfg Config, st store.Store, in *intake.Service, log *slog.Logger, meter metric.Meter) ([]func(context.Context) error, error) {
	var sources []poll.Source
	if cfg.Connectors.Okta.Enabled() && cfg.Connectors.Okta.Poll {
		c, err := okta.New(cfg.Connectors.Okta)
		if err != nil {
			return nil, err
		}
		sources = append(sources, c.LogSource())
	}
	if cfg.Connectors.Entra.Enabled() && cfg.Connectors.Entra.Poll {
		c, err := entra.New(cfg.Connectors.Entra)
		if err != nil {
			return nil, err
		}
		sources = append(sources, c.LogSource())
	}
	if cfg.Connectors.Duo.Enabled() && cfg.Connectors.Duo.Poll {
		c, err := duo.New(cfg.Connectors.Duo)
		if err != nil {
			return nil, err
		}
		sources = append(sources, c.LogSource())
	}
	var out []func(context.Context) error
	for _, src := range sources {
		r, err := poll.New(poll.Options{Source: src, Store: st, Parse: parsePage, Save: saveTo(in, log.With("service", Intake, "component", "poll")), Config: cfg.Poll,
			Logger: log.With("service", Intake, "component", "poll"), Meter: meter})
		if err != nil {
			return nil, err
		}
		log.Info("polling", slog.String("source", src.Name()), slog.Duration("interval", cfg.Poll.Interval))
		out = append(out, r.Run)
	}
	return out, nil
}

// parsePage reads a page with intake's format adapter.
func parsePage(format string, body []byte) ([]*eventv1.AuthEvent, error) {
	f, err := formats.ParseFormat(format)
	if err != nil {
		return nil, err
	}
	b, err := formats.Parse(f, body, formats.Options{})
	if err != nil {
		return nil, err
	}
	return b.Events, nil
}

// saveTo stores events through intake, in batches it accepts. Intake
// takes a batch whole or refuses it; a batch it refuses as invalid is
// stored event by event, and an event intake will never take is logged
// and left out, so that one bad record does not hold its source's cursor
// for ever (a store failure still fails the page, which is read again).
func saveTo(in *intake.Service, log *slog.Logger) func(context.Context, []*eventv1.AuthEvent) error {
	return func(ctx context.Context, events []*eventv1.AuthEvent) error {
		for len(events) > 0 {
			n := min(len(events), intake.MaxBatch)
			_, err := in.Store(ctx, events[:n])
			if status.Code(err) == codes.InvalidArgument {
				err = nil
				for _, e := range events[:n] {
					_, one := in.Store(ctx, []*eventv1.AuthEvent{e})
					switch {
					case status.Code(one) == codes.InvalidArgument:
						log.WarnContext(ctx, "a polled event intake refuses is left out", slog.String("event_id", e.GetEventId()),
							slog.String("source", e.GetSource().GetIdp()), slog.Any("error", one))
					case one != nil:
						return one
					}
				}
			}
			if err != nil {
				return err
			}
			events = events[n:]
		}
		return nil
	}
}
