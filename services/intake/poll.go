package intake

import (
	"context"
	"log/slog"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/services/intake/formats"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

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
func saveTo(in *Service, log *slog.Logger) func(context.Context, []*eventv1.AuthEvent) error {
	return func(ctx context.Context, events []*eventv1.AuthEvent) error {
		for len(events) > 0 {
			n := min(len(events), MaxBatch)
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
