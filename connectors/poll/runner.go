package poll

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/pushbackhq/pushback/connectors/respond"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/pkg/settings"
	"github.com/pushbackhq/pushback/pkg/store"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Key prefixes in the shared store.
const (
	LeasePrefix  = "intake/poll/lease/"
	CursorPrefix = "intake/poll/cursor/"
)

// DefaultLeaseTTL is how long a lease outlives its holder's last renewal.
const DefaultLeaseTTL = 30 * time.Second

// Backoff bounds for failed reads.
const (
	MinBackoff = time.Second
	MaxBackoff = 5 * time.Minute
)

// Config is what an operator sets for every poller. Polling is on for a
// source when its connector is configured (okta-url with okta-poll).
type Config struct {
	// Interval is the wait between reads once a source is caught up.
	Interval time.Duration
	// Backfill is how far back a source without a cursor starts.
	Backfill time.Duration
}

// DefaultConfig returns the defaults: a read every 10s, one hour of
// backfill.
func DefaultConfig() Config { return Config{Interval: 10 * time.Second, Backfill: time.Hour} }

// Settings binds the configuration to its flags.
func (c *Config) Settings() []settings.Setting {
	return []settings.Setting{
		settings.Duration(&c.Interval, "poll-interval", "wait between reads of an identity provider's log once caught up (Okta System Log polling)"),
		settings.Duration(&c.Backfill, "poll-backfill", "how far back the first read of a log starts, when no cursor is stored"),
	}
}

// Validate reports every inconsistency, naming the flag.
func (c Config) Validate() error {
	var errs []error
	if c.Interval < time.Second || c.Interval > time.Hour {
		errs = append(errs, errors.New("poll-interval: must be between 1s and 1h"))
	}
	if c.Backfill < 0 || c.Backfill > 90*24*time.Hour {
		errs = append(errs, errors.New("poll-backfill: must be between 0 and 2160h (Okta keeps 90 days)"))
	}
	return errors.Join(errs...)
}

// Options configures a Runner.
type Options struct {
	Source Source
	// Store holds the lease and the cursor; replicas share it.
	Store store.Store
	// Parse turns a page body in a format into events (intake's format
	// adapter).
	Parse func(format string, body []byte) ([]*eventv1.AuthEvent, error)
	// Save stores events durably, deduplicating by event id (intake's
	// Store).
	Save   func(ctx context.Context, events []*eventv1.AuthEvent) error
	Config Config
	// Owner names this runner in the lease; empty picks a random one.
	Owner    string
	LeaseTTL time.Duration
	Logger   *slog.Logger
	Meter    metric.Meter
	Now      func() time.Time
	// MinBackoff and MaxBackoff bound the wait after a failure (defaults
	// 1s and 5m).
	MinBackoff, MaxBackoff time.Duration
}

// Runner polls one Source while it holds the source's lease.
type Runner struct {
	o     Options
	attrs metric.MeasurementOption
	lag   metric.Float64Gauge
	pages metric.Int64Counter
	evs   metric.Int64Counter
	fails metric.Int64Counter
}

// New returns a runner for complete options.
func New(o Options) (*Runner, error) {
	if o.Source == nil || o.Store == nil || o.Parse == nil || o.Save == nil {
		return nil, errors.New("poll: Source, Store, Parse and Save are required")
	}
	if o.Config == (Config{}) {
		o.Config = DefaultConfig()
	}
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	if o.Owner == "" {
		o.Owner = ownerID()
	}
	if o.LeaseTTL <= 0 {
		// The holder renews at every read: the lease outlives the wait
		// between reads.
		o.LeaseTTL = max(DefaultLeaseTTL, 3*o.Config.Interval)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Logger = o.Logger.With("source", o.Source.Name())
	if o.Meter == nil {
		o.Meter = noop.NewMeterProvider().Meter("poll")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = MinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = MaxBackoff
	}
	r := &Runner{o: o, attrs: metric.WithAttributeSet(attribute.NewSet(attribute.String("source", o.Source.Name())))}
	m := o.Meter
	r.lag, _ = m.Float64Gauge("pushback.poll.lag", metric.WithUnit("s"),
		metric.WithDescription("Age of the newest record of the last page that carried records: now minus its time."))
	r.pages, _ = m.Int64Counter("pushback.poll.pages", metric.WithUnit("{page}"), metric.WithDescription("Pages read and stored."))
	r.evs, _ = m.Int64Counter("pushback.poll.events", metric.WithUnit("{event}"), metric.WithDescription("Events read from pages and handed to intake."))
	r.fails, _ = m.Int64Counter("pushback.poll.failures", metric.WithUnit("{read}"), metric.WithDescription("Failed reads, parses or stores of a page."))
	return r, nil
}

func ownerID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	host, _ := os.Hostname()
	return host + "/" + hex.EncodeToString(b)
}

func (r *Runner) leaseKey() []byte  { return []byte(LeasePrefix + r.o.Source.Name()) }
func (r *Runner) cursorKey() []byte { return []byte(CursorPrefix + r.o.Source.Name()) }

// errLost is a lease another owner holds.
var errLost = errors.New("poll: lease held by another replica")

// acquire takes or renews the lease.
func (r *Runner) acquire(ctx context.Context) (bool, error) {
	err := r.o.Store.Update(ctx, func(tx store.Txn) error { return r.renew(tx) })
	if errors.Is(err, errLost) {
		return false, nil
	}
	return err == nil, err
}

func (r *Runner) renew(tx store.Txn) error {
	v, err := tx.Get(r.leaseKey())
	switch {
	case err == nil && string(v) != r.o.Owner:
		return errLost
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return err
	}
	return tx.Set(r.leaseKey(), []byte(r.o.Owner), r.o.LeaseTTL)
}

// release gives the lease up, when held, so a restart polls at once.
func (r *Runner) release(ctx context.Context) {
	_ = r.o.Store.Update(ctx, func(tx store.Txn) error {
		v, err := tx.Get(r.leaseKey())
		if err != nil || string(v) != r.o.Owner {
			return nil
		}
		return tx.Delete(r.leaseKey())
	})
}

// Cursor returns the stored cursor of the source ("" when none).
func (r *Runner) Cursor(ctx context.Context) (string, error) {
	v, err := r.o.Store.Get(ctx, r.cursorKey())
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	return string(v), err
}

// Run polls until ctx ends; failures are logged, counted and retried,
// never returned.
func (r *Runner) Run(ctx context.Context) error {
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		r.release(rctx)
	}()
	var backoff time.Duration
	for ctx.Err() == nil {
		wait, err := r.step(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			backoff = min(max(backoff*2, r.o.MinBackoff), r.o.MaxBackoff)
			wait = backoff
			reason := "error"
			var ra *respond.RetryAfter
			if errors.As(err, &ra) {
				reason = "rate_limited"
				wait = max(ra.Wait, r.o.MinBackoff)
			}
			r.fails.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(attribute.String("source", r.o.Source.Name()), attribute.String("reason", reason))))
			r.o.Logger.Warn("poll failed", slog.String("error", err.Error()), slog.Duration("retry_in", wait))
		} else {
			backoff = 0
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
	}
	return nil
}

// step reads, stores and commits one page; it returns the wait before
// the next step.
func (r *Runner) step(ctx context.Context) (time.Duration, error) {
	held, err := r.acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("taking the lease: %w", err)
	}
	if !held {
		return r.o.LeaseTTL / 3, nil
	}
	cursor, err := r.Cursor(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading the cursor: %w", err)
	}
	src := r.o.Source
	page, err := src.Read(ctx, cursor, r.o.Now().Add(-r.o.Config.Backfill))
	if err != nil {
		return 0, err
	}
	events, err := r.o.Parse(src.Format(), page.Body)
	if err != nil {
		return 0, fmt.Errorf("parsing a %s page: %w", src.Format(), err)
	}
	if len(events) > 0 {
		if err := r.o.Save(ctx, events); err != nil {
			return 0, fmt.Errorf("storing %d events: %w", len(events), err)
		}
	}
	if page.Cursor != "" && page.Cursor != cursor {
		err := r.o.Store.Update(ctx, func(tx store.Txn) error {
			if err := r.renew(tx); err != nil {
				return err
			}
			return tx.Set(r.cursorKey(), []byte(page.Cursor), 0)
		})
		if errors.Is(err, errLost) {
			// Another replica took over; it re-reads this page and intake
			// drops the duplicates.
			return r.o.LeaseTTL / 3, nil
		}
		if err != nil {
			return 0, fmt.Errorf("writing the cursor: %w", err)
		}
	}
	r.pages.Add(ctx, 1, r.attrs)
	r.evs.Add(ctx, int64(len(events)), r.attrs)
	if !page.Newest.IsZero() {
		r.lag.Record(ctx, r.o.Now().Sub(page.Newest).Seconds(), r.attrs)
	}
	if page.More {
		return 0, nil
	}
	return r.o.Config.Interval, nil
}
