package store_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
)

// fault is what faultyStore does to a call.
type fault int

const (
	healthy fault = iota
	// broken fails every call at once.
	broken
	// hung blocks every call until its context ends, as a store that
	// honours deadlines does when its server stops answering.
	hung
	// stuck blocks every call until released, then fails it.
	stuck
	// hungInTxn blocks the transaction's reads until the context ends.
	hungInTxn
	// conflicting answers every Update with ErrConflict.
	conflicting
)

var errBroken = errors.New("connection reset by peer")

// faultyStore is a real in-memory store with faults switched on and off.
type faultyStore struct {
	store.Store
	mu      sync.Mutex
	fault   fault
	release chan struct{}
	calls   atomic.Int64
}

func newFaulty(t *testing.T) *faultyStore {
	return &faultyStore{Store: storetest.Memory(t), release: make(chan struct{})}
}

func (f *faultyStore) set(ft fault) {
	f.mu.Lock()
	f.fault = ft
	f.mu.Unlock()
}

func (f *faultyStore) current() fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fault
}

// enter plays the fault at the start of a call.
func (f *faultyStore) enter(ctx context.Context) error {
	f.calls.Add(1)
	switch f.current() {
	case broken:
		return errBroken
	case hung:
		<-ctx.Done()
		return ctx.Err()
	case stuck:
		<-f.release
		return errBroken
	}
	return nil
}

func (f *faultyStore) Get(ctx context.Context, key []byte) ([]byte, error) {
	if err := f.enter(ctx); err != nil {
		return nil, err
	}
	return f.Store.Get(ctx, key)
}

func (f *faultyStore) Scan(ctx context.Context, opts store.ScanOptions) ([]store.Item, error) {
	if err := f.enter(ctx); err != nil {
		return nil, err
	}
	return f.Store.Scan(ctx, opts)
}

func (f *faultyStore) Update(ctx context.Context, fn func(tx store.Txn) error) error {
	if err := f.enter(ctx); err != nil {
		return err
	}
	switch f.current() {
	case conflicting:
		return store.ErrConflict
	case hungInTxn:
		return f.Store.Update(ctx, func(tx store.Txn) error { return fn(hungTxn{Txn: tx, ctx: ctx}) })
	}
	return f.Store.Update(ctx, fn)
}

type hungTxn struct {
	store.Txn
	ctx context.Context
}

func (t hungTxn) Get([]byte) ([]byte, error) {
	<-t.ctx.Done()
	return nil, t.ctx.Err()
}

// clock is a settable time for the breaker's cool-off.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const coolOff = 10 * time.Second

func newBreaker(t *testing.T, failures int) (*store.Breaker, *faultyStore, *clock) {
	f := newFaulty(t)
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	return store.WithBreaker(f, store.BreakerOptions{Failures: failures, CoolOff: coolOff, Name: "fake", Now: c.Now}), f, c
}

func get(b store.Store) error {
	_, err := b.Get(context.Background(), []byte("k/1"))
	return err
}

func TestBreakerOpensAfterFailuresInARowAndFailsFast(t *testing.T) {
	b, f, c := newBreaker(t, 3)
	f.set(broken)
	// A success between failures starts the count again.
	for range 2 {
		if err := get(b); !errors.Is(err, errBroken) {
			t.Fatalf("Get on a broken store = %v, want its error", err)
		}
	}
	f.set(healthy)
	if err := get(b); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get on a healthy store = %v, want ErrNotFound", err)
	}
	f.set(broken)
	for i := range 3 {
		if err := get(b); !errors.Is(err, errBroken) {
			t.Fatalf("failure %d = %v, want the store's error", i+1, err)
		}
	}
	// Three in a row, but the store answered a moment ago: not an outage yet.
	if err := get(b); !errors.Is(err, errBroken) {
		t.Fatalf("a failure right after a success = %v, want the store's error (circuit still closed)", err)
	}
	c.Add(store.DefaultBreakerOutage)
	if err := get(b); !errors.Is(err, errBroken) {
		t.Fatalf("the failure that opens the circuit = %v, want the store's error", err)
	}
	calls := f.calls.Load()
	for _, op := range []func() error{
		func() error { return get(b) },
		func() error {
			_, err := b.Scan(context.Background(), store.ScanOptions{Prefix: []byte("k/")})
			return err
		},
		func() error {
			return b.Update(context.Background(), func(tx store.Txn) error { return tx.Set([]byte("k/1"), []byte("v"), 0) })
		},
	} {
		if err := op(); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("call with the circuit open = %v, want ErrUnavailable", err)
		}
	}
	if f.calls.Load() != calls {
		t.Fatalf("the store was called %d times with the circuit open", f.calls.Load()-calls)
	}
	want := store.BreakerStats{State: store.BreakerOpen, Failures: 7, Opened: 1, Rejected: 3}
	if got := b.Stats(); got != want {
		t.Fatalf("stats = %+v, want %+v", got, want)
	}
}

func TestBreakerHalfOpenLetsOneProbeThrough(t *testing.T) {
	b, f, clk := newBreaker(t, 2)
	f.set(broken)
	_, _ = get(b), get(b)
	clk.Add(coolOff - time.Millisecond)
	if err := get(b); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("before the cool-off ends: %v, want ErrUnavailable", err)
	}

	// A failed probe opens the circuit for another cool-off.
	clk.Add(time.Millisecond)
	if err := get(b); !errors.Is(err, errBroken) {
		t.Fatalf("probe = %v, want the store's error", err)
	}
	if s := b.Stats(); s.State != store.BreakerOpen || s.Opened != 2 {
		t.Fatalf("after a failed probe: %+v, want open, opened twice", s)
	}
	clk.Add(coolOff / 2)
	if err := get(b); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("after a failed probe: %v, want ErrUnavailable for a whole cool-off", err)
	}

	// While the probe is out, every other call fails fast.
	clk.Add(coolOff)
	f.set(stuck)
	probe := make(chan error, 1)
	go func() { probe <- get(b) }()
	for f.calls.Load() < 4 {
		time.Sleep(time.Millisecond)
	}
	if s := b.Stats(); s.State != store.BreakerHalfOpen {
		t.Fatalf("probe out: state %v, want half-open", s.State)
	}
	if err := get(b); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("second call while half-open = %v, want ErrUnavailable", err)
	}
	close(f.release)
	if err := <-probe; !errors.Is(err, errBroken) {
		t.Fatalf("stuck probe = %v", err)
	}
	f.set(healthy)
	if s := b.Stats(); s.State != store.BreakerOpen {
		t.Fatalf("after the stuck probe failed: %v, want open", s.State)
	}

	// A probe that succeeds closes the circuit.
	clk.Add(coolOff)
	if err := get(b); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("probe on a healthy store = %v, want ErrNotFound (an answer)", err)
	}
	if s := b.Stats(); s.State != store.BreakerClosed {
		t.Fatalf("after a good probe: %v, want closed", s.State)
	}
	// Closed again: it takes the full count of failures to open it.
	f.set(broken)
	if err := get(b); !errors.Is(err, errBroken) {
		t.Fatal(err)
	}
	if s := b.Stats(); s.State != store.BreakerClosed {
		t.Fatalf("one failure after closing: %v, want closed", s.State)
	}
}

// TestBreakerHungCallEndsAtItsDeadline plays a store that hangs: the call
// returns at the caller's deadline and counts as a failure, also when the
// transaction's function passes the store's error on as its own.
func TestBreakerHungCallEndsAtItsDeadline(t *testing.T) {
	const deadline = 50 * time.Millisecond
	// Far below what a hung call would cost, far above scheduling noise.
	const slack = 200 * time.Millisecond
	for _, tc := range []struct {
		name  string
		fault fault
	}{
		{"store hangs", hung},
		{"store hangs inside the transaction", hungInTxn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, f, _ := newBreaker(t, 3)
			f.set(tc.fault)
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			err := b.Update(ctx, func(tx store.Txn) error {
				if _, err := tx.Get([]byte("k/1")); err != nil && !errors.Is(err, store.ErrNotFound) {
					return errors.New("read failed")
				}
				return tx.Set([]byte("k/1"), []byte("v"), 0)
			})
			if took := time.Since(start); err == nil || took > deadline+slack {
				t.Fatalf("hung Update = %v after %s, want an error by the %s deadline", err, took, deadline)
			}
			if s := b.Stats(); s.Failures != 1 {
				t.Fatalf("stats %+v, want 1 failure", s)
			}
		})
	}
}

// TestBreakerCountsOnlyTheStoresFailures: answers and the caller's own
// errors never open the circuit, however many there are.
func TestBreakerCountsOnlyTheStoresFailures(t *testing.T) {
	own := errors.New("attempt id reused")
	expired, cancel := context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	for _, tc := range []struct {
		name  string
		fault fault
		call  func(b store.Store) error
	}{
		{"missing key", healthy, get},
		{"the transaction function's own error", healthy, func(b store.Store) error {
			return b.Update(context.Background(), func(tx store.Txn) error {
				if _, err := tx.Get([]byte("k/1")); !errors.Is(err, store.ErrNotFound) {
					return err
				}
				return own
			})
		}},
		{"conflict", conflicting, func(b store.Store) error {
			return b.Update(context.Background(), func(tx store.Txn) error { return tx.Set([]byte("k/1"), []byte("v"), 0) })
		}},
		{"caller canceled a hung call", hung, func(b store.Store) error {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(5*time.Millisecond, cancel)
			return get2(ctx, b)
		}},
		{"caller out of time before the call", hung, func(b store.Store) error { return get2(expired, b) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, f, _ := newBreaker(t, 2)
			f.set(tc.fault)
			for range 5 {
				if err := tc.call(b); err == nil {
					t.Fatal("call succeeded; the case wants an error")
				}
			}
			if s := b.Stats(); s.State != store.BreakerClosed || s.Failures != 0 {
				t.Fatalf("stats %+v, want closed without failures", s)
			}
		})
	}
}

func get2(ctx context.Context, b store.Store) error {
	_, err := b.Get(ctx, []byte("k/1"))
	return err
}

// TestBreakerCountsACallCanceledAfterTheStoreHeldIt: a gRPC server sees
// its client's deadline as a cancellation. A call the store held past
// SlowCall before its caller gave up is the store's failure.
func TestBreakerCountsACallCanceledAfterTheStoreHeldIt(t *testing.T) {
	b, f, clk := newBreaker(t, 1)
	f.set(hung)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(5*time.Millisecond, func() {
		clk.Add(store.DefaultBreakerSlowCall)
		cancel()
	})
	if err := get2(ctx, b); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled hung call = %v", err)
	}
	if s := b.Stats(); s.State != store.BreakerOpen || s.Failures != 1 {
		t.Fatalf("stats %+v, want the circuit open after one failure", s)
	}
}

// TestBreakerCanceledProbeFreesTheProbe: a probe whose caller gave up says
// nothing about the store; the next call probes instead.
func TestBreakerCanceledProbeFreesTheProbe(t *testing.T) {
	b, f, clk := newBreaker(t, 1)
	f.set(broken)
	_ = get(b)
	clk.Add(coolOff)
	f.set(hung)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(5*time.Millisecond, cancel)
	if err := get2(ctx, b); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled probe = %v", err)
	}
	f.set(healthy)
	if err := get(b); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("next call = %v, want it to probe (ErrNotFound)", err)
	}
	if s := b.Stats(); s.State != store.BreakerClosed {
		t.Fatalf("state %v, want closed", s.State)
	}
}

// TestBreakerConformance: the breaker changes nothing a healthy store does.
func TestBreakerConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, ks []store.Keyspace) store.Store {
		return store.WithBreaker(storetest.Memory(t, ks...), store.BreakerOptions{})
	})
}

// BenchmarkBreaker prices the breaker on the hot path: a read and a small
// transaction under a deadline, with and without it.
func BenchmarkBreaker(b *testing.B) {
	mem, err := store.OpenBadger(store.BadgerOptions{InMemory: true})
	if err != nil {
		b.Fatal(err)
	}
	defer mem.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for _, s := range []struct {
		name string
		st   store.Store
	}{{"bare", mem}, {"breaker", store.WithBreaker(mem, store.BreakerOptions{})}} {
		b.Run(s.name+"/get", func(b *testing.B) {
			for b.Loop() {
				_, _ = s.st.Get(ctx, []byte("k/1"))
			}
		})
		b.Run(s.name+"/update", func(b *testing.B) {
			for b.Loop() {
				_ = s.st.Update(ctx, func(tx store.Txn) error {
					if _, err := tx.Get([]byte("k/1")); err != nil && !errors.Is(err, store.ErrNotFound) {
						return err
					}
					return tx.Set([]byte("k/1"), []byte("v"), 0)
				})
			}
		})
	}
}

// TestBreakerStaysClosedUnderLoad plays a saturated machine: calls miss
// their deadlines for want of CPU while others still get answers. That is
// load, not an outage: the circuit stays closed however many fail in a
// row, as long as the store answered within the outage window.
func TestBreakerStaysClosedUnderLoad(t *testing.T) {
	b, f, c := newBreaker(t, 3)
	for range 20 {
		f.set(healthy)
		if err := get(b); !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		f.set(broken)
		for range 10 {
			if err := get(b); !errors.Is(err, errBroken) {
				t.Fatalf("= %v, want the store's error: the circuit opened under load", err)
			}
		}
		c.Add(store.DefaultBreakerOutage / 4)
	}
	if st := b.Stats(); st.Opened != 0 {
		t.Fatalf("opened %d times while the store kept answering", st.Opened)
	}
}
