package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrUnavailable is returned, without calling the store, while a Breaker's
// circuit is open: recent calls failed or hung, and callers are answered at
// once instead of each waiting out its deadline on the same dead store.
var ErrUnavailable = errors.New("store: unavailable (circuit open)")

// Breaker defaults; see BreakerOptions.
const (
	DefaultBreakerFailures = 5
	DefaultBreakerCoolOff  = time.Second
	DefaultBreakerSlowCall = 20 * time.Millisecond
	DefaultBreakerOutage   = 250 * time.Millisecond
)

// BreakerOptions configures WithBreaker.
type BreakerOptions struct {
	// Failures is how many calls in a row must fail or hang to open the
	// circuit (default 5): few enough that a flood of decisions against a
	// hung store pays a handful of deadlines, not one per decision; more
	// than one so that a single slow call on a loaded machine does not
	// fail the calls behind it.
	Failures int
	// CoolOff is how long the circuit stays open before one probe call is
	// let through (default 1s): the longest a store that came back waits to
	// be used again, and how often a store that stays down costs one call
	// its deadline.
	CoolOff time.Duration
	// SlowCall decides whether a call its caller canceled says something
	// about the store (default 20ms). Canceled after the store kept it that
	// long, it counts as a failure: a peer whose own deadline passed while
	// the store hung cancels the call it was waiting for (that is how a
	// gRPC server sees its client's deadline), and that hang must count.
	// Canceled sooner, it does not: the caller went away from a store
	// answering at its usual pace (well under a millisecond).
	SlowCall time.Duration
	// Outage is how long no call may have succeeded before failures open
	// the circuit (default 250ms). A store that answers some calls is
	// working: on a saturated machine calls miss their deadlines for want
	// of CPU, not because the store hangs, and skipping the store then would
	// only turn load into failure-mode answers.
	Outage time.Duration
	// Name identifies the store in log lines (the engine: badger, redis).
	Name string
	// Logger receives state changes (discarded when nil).
	Logger *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// BreakerState is where a Breaker's circuit is.
type BreakerState int32

// The states of a Breaker's circuit.
const (
	// BreakerClosed: calls go to the store.
	BreakerClosed BreakerState = iota
	// BreakerOpen: calls fail with ErrUnavailable without reaching the store.
	BreakerOpen
	// BreakerHalfOpen: one probe call goes to the store; the others fail
	// with ErrUnavailable until it answers.
	BreakerHalfOpen
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("BreakerState(%d)", int32(s))
}

// BreakerStats are a Breaker's state and counts since it was made, for
// metrics.
type BreakerStats struct {
	State BreakerState
	// Failures: calls that failed or did not answer before their deadline
	// (see Breaker for what counts).
	Failures int64
	// Opened: times the circuit opened, a failed probe included.
	Opened int64
	// Rejected: calls answered with ErrUnavailable without reaching the store.
	Rejected int64
}

// Breaker is a Store that keeps a failing or hung store from holding its
// callers: after Failures calls in a row failed or hung, the circuit opens
// and calls fail with ErrUnavailable at once, without reaching the store.
// After CoolOff one probe call goes through: if the store answers, the
// circuit closes; if not, it opens for another CoolOff.
//
// Only the store's own failures count: ErrNotFound, ErrConflict (the store
// answered; writers contended), ErrKeyspace (the caller's mistake) and an error returned by an Update's
// function are answers, not failures. A deadline that passed while the
// store was working is a failure: that is what a hung store looks like
// from here. So is a call its caller canceled after the store had kept it
// SlowCall; one canceled sooner counts for nothing. The breaker relies on
// the store to return when a call's context ends (both engines do); it
// adds no goroutine and no wait to a call.
type Breaker struct {
	st       Store
	failures int
	coolOff  time.Duration
	slowCall time.Duration
	outage   time.Duration
	name     string
	log      *slog.Logger
	now      func() time.Time

	mu       sync.Mutex
	state    BreakerState
	gen      uint64 // changes with every state change; results of older calls are ignored
	inARow   int
	lastOK   time.Time // the last call the store answered
	openedAt time.Time // last opened, failed probes included
	downAt   time.Time // first opened, for the log line when it closes
	probing  bool

	nFailures, nOpened, nRejected atomic.Int64
}

// WithBreaker wraps st in a Breaker.
func WithBreaker(st Store, opts BreakerOptions) *Breaker {
	if opts.Failures <= 0 {
		opts.Failures = DefaultBreakerFailures
	}
	if opts.CoolOff <= 0 {
		opts.CoolOff = DefaultBreakerCoolOff
	}
	if opts.SlowCall <= 0 {
		opts.SlowCall = DefaultBreakerSlowCall
	}
	if opts.Outage <= 0 {
		opts.Outage = DefaultBreakerOutage
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Breaker{st: st, failures: opts.Failures, coolOff: opts.CoolOff, slowCall: opts.SlowCall, outage: opts.Outage, name: opts.Name, log: opts.Logger, now: opts.Now}
}

// Stats returns the state and the counts.
func (b *Breaker) Stats() BreakerStats {
	b.mu.Lock()
	state := b.state
	b.mu.Unlock()
	return BreakerStats{State: state, Failures: b.nFailures.Load(), Opened: b.nOpened.Load(), Rejected: b.nRejected.Load()}
}

// Get implements Store.
func (b *Breaker) Get(ctx context.Context, key []byte) ([]byte, error) {
	tk, err := b.admit(ctx)
	if err != nil {
		return nil, err
	}
	v, err := b.st.Get(ctx, key)
	b.record(ctx, tk, err, false)
	return v, err
}

// Scan implements Store.
func (b *Breaker) Scan(ctx context.Context, opts ScanOptions) ([]Item, error) {
	tk, err := b.admit(ctx)
	if err != nil {
		return nil, err
	}
	items, err := b.st.Scan(ctx, opts)
	b.record(ctx, tk, err, false)
	return items, err
}

// Update implements Store.
func (b *Breaker) Update(ctx context.Context, fn func(tx Txn) error) error {
	tk, err := b.admit(ctx)
	if err != nil {
		return err
	}
	u := &watchedUpdate{fn: fn}
	err = b.st.Update(ctx, u.run)
	b.record(ctx, tk, err, u.own != nil && errors.Is(err, u.own))
	return err
}

// watchedUpdate runs the attempts of one Update on a watchedTxn (one
// allocation for the two, where a closure's variables took one each).
type watchedUpdate struct {
	fn func(tx Txn) error
	tx watchedTxn
	// own is the error of fn's last run, when the store had not failed it:
	// the caller's verdict (a reused attempt id, say), not the store's.
	own error
}

func (u *watchedUpdate) run(tx Txn) error {
	u.tx = watchedTxn{Txn: tx}
	err := u.fn(&u.tx)
	u.own = nil
	if err != nil && u.tx.err == nil {
		u.own = err
	}
	return err
}

// Close implements Store.
func (b *Breaker) Close() error { return b.st.Close() }

// ticket is a call let through the circuit.
type ticket struct {
	// gen is the circuit's state the call was admitted in.
	gen uint64
	// probe: the one call of a half-open circuit.
	probe bool
	start time.Time
}

// admit lets a call through or answers ErrUnavailable.
func (b *Breaker) admit(ctx context.Context) (ticket, error) {
	// A caller out of time does not reach the store, and its deadline says
	// nothing about the store: not counted, and no probe is spent on it.
	if err := ctx.Err(); err != nil {
		return ticket{}, err
	}
	now := b.now()
	b.mu.Lock()
	halfOpened := false
	if b.state == BreakerOpen && now.Sub(b.openedAt) >= b.coolOff {
		b.setState(BreakerHalfOpen)
		halfOpened = true
	}
	tk := ticket{gen: b.gen, start: now}
	var err error
	switch {
	case b.state == BreakerClosed:
	case b.state == BreakerHalfOpen && !b.probing:
		b.probing, tk.probe = true, true
	default:
		err = ErrUnavailable
	}
	b.mu.Unlock()
	if halfOpened {
		b.log.Debug("store circuit half-open: one probe call goes through", slog.String("store", b.name))
	}
	if err != nil {
		b.nRejected.Add(1)
	}
	return tk, err
}

// record folds a call's result into the circuit; callers says err is the
// caller's own.
func (b *Breaker) record(ctx context.Context, tk ticket, err error, callers bool) {
	switch {
	case err == nil, callers, errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict), errors.Is(err, ErrKeyspace):
		b.succeeded(tk)
	case errors.Is(ctx.Err(), context.Canceled) && b.now().Sub(tk.start) < b.slowCall:
		// The caller went away; the store may have been about to answer.
		b.mu.Lock()
		if tk.probe && tk.gen == b.gen {
			b.probing = false
		}
		b.mu.Unlock()
	default:
		b.failed(tk, err)
	}
}

func (b *Breaker) succeeded(tk ticket) {
	b.mu.Lock()
	if tk.gen != b.gen {
		b.mu.Unlock()
		return
	}
	b.inARow = 0
	b.lastOK = b.now()
	if !tk.probe {
		b.mu.Unlock()
		return
	}
	down := b.now().Sub(b.downAt)
	b.setState(BreakerClosed)
	b.mu.Unlock()
	b.log.Info("store circuit closed: the store answers again", slog.String("store", b.name), slog.Duration("after", down))
}

func (b *Breaker) failed(tk ticket, err error) {
	b.nFailures.Add(1)
	b.mu.Lock()
	if tk.gen != b.gen {
		// A call admitted before the circuit last changed: the circuit
		// already knows.
		b.mu.Unlock()
		return
	}
	b.inARow++
	now := b.now()
	if !tk.probe && (b.inARow < b.failures || now.Sub(b.lastOK) < b.outage) {
		b.mu.Unlock()
		return
	}
	inARow := b.inARow
	b.openedAt = now
	if b.state == BreakerClosed {
		b.downAt = b.openedAt
	}
	b.setState(BreakerOpen)
	b.nOpened.Add(1)
	b.mu.Unlock()
	if tk.probe {
		// A store that stays down fails one probe per cool-off: not worth
		// a warning each time.
		b.log.Debug("store circuit open again: the probe call failed", slog.String("store", b.name), slog.Any("error", err))
		return
	}
	b.log.Warn("store circuit open: store calls fail at once until a probe succeeds", slog.String("store", b.name),
		slog.Int("failures_in_a_row", inARow), slog.Duration("cool_off", b.coolOff), slog.Any("error", err))
}

// setState moves the circuit (b.mu held).
func (b *Breaker) setState(s BreakerState) {
	b.state = s
	b.gen++
	b.inARow = 0
	b.probing = false
}

// watchedTxn remembers the last error the store gave the transaction's
// function.
type watchedTxn struct {
	Txn
	err error
}

func (t *watchedTxn) Get(key []byte) ([]byte, error) {
	v, err := t.Txn.Get(key)
	if err != nil && !errors.Is(err, ErrNotFound) {
		t.err = err
	}
	return v, err
}

func (t *watchedTxn) Set(key, value []byte, ttl time.Duration) error {
	err := t.Txn.Set(key, value, ttl)
	if err != nil {
		t.err = err
	}
	return err
}

func (t *watchedTxn) Delete(key []byte) error {
	err := t.Txn.Delete(key)
	if err != nil {
		t.err = err
	}
	return err
}
