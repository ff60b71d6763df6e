package radius

import (
	"context"
	"log/slog"
	"sync"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
)

const (
	// reportQueue bounds the outcomes waiting to be reported; past it an
	// outcome is dropped (reporting is best effort and never holds a VPN's
	// answer back).
	reportQueue = 4096
	// reportBatch is the most outcomes sent in one Ingest call.
	reportBatch = 100
)

// reporter feeds outcomes to intake in the background, in batches, each
// call bounded by a timeout. It never blocks the caller.
type reporter struct {
	ing      Ingester
	timeout  time.Duration
	log      *slog.Logger
	counters *Counters

	// lastWarn is only used by run's goroutine.
	lastWarn time.Time

	mu     sync.Mutex
	closed bool
	queue  chan *eventv1.AuthEvent
	done   chan struct{}
}

func newReporter(ing Ingester, timeout time.Duration, log *slog.Logger, counters *Counters) *reporter {
	r := &reporter{ing: ing, timeout: timeout, log: log, counters: counters,
		queue: make(chan *eventv1.AuthEvent, reportQueue), done: make(chan struct{})}
	go r.run()
	return r
}

// report queues e, or drops it when the queue is full or closed.
func (r *reporter) report(e *eventv1.AuthEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	select {
	case r.queue <- e:
	default:
		r.counters.ReportsDropped.Add(1)
		r.log.Warn("radius: outcome not reported: the queue to intake is full", slog.String("event_id", e.GetEventId()))
	}
}

func (r *reporter) run() {
	defer close(r.done)
	for e := range r.queue {
		batch := []*eventv1.AuthEvent{e}
	more:
		for len(batch) < reportBatch {
			select {
			case next, ok := <-r.queue:
				if !ok {
					break more
				}
				batch = append(batch, next)
			default:
				break more
			}
		}
		r.send(batch)
	}
}

func (r *reporter) send(batch []*eventv1.AuthEvent) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	if _, err := r.ing.Ingest(ctx, &intakev1.IngestRequest{Events: batch}); err != nil {
		r.counters.ReportsDropped.Add(int64(len(batch)))
		// At most one line per 10 seconds: an intake that is down must not
		// flood the log.
		if now := time.Now(); now.Sub(r.lastWarn) >= 10*time.Second {
			r.lastWarn = now
			r.log.Warn("radius: outcomes not reported to intake", slog.Int("events", len(batch)), slog.Any("error", err),
				slog.Int64("dropped_so_far", r.counters.ReportsDropped.Load()))
		}
		return
	}
	r.counters.Reported.Add(int64(len(batch)))
}

// close stops taking outcomes and waits, at most until ctx ends, for the
// queued ones to be sent.
func (r *reporter) close(ctx context.Context) {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.queue)
	}
	r.mu.Unlock()
	select {
	case <-r.done:
	case <-ctx.Done():
		r.log.Warn("radius: shutting down before every outcome was reported to intake")
	}
}
