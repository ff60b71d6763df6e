package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/redistest"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
)

// TestHungRedisCallsEndAtTheirDeadline plays a Redis that hangs (SIGSTOP:
// connections are accepted, commands are swallowed, nothing is answered).
// Every kind of call returns by its caller's deadline instead of the
// client's one-second read timeout; behind a breaker, the calls that follow
// a few hung ones fail at once, and the store is used again once it answers
// a probe.
func TestHungRedisCallsEndAtTheirDeadline(t *testing.T) {
	srv := redistest.Start(t)
	r, err := store.OpenRedis(context.Background(), store.RedisOptions{Addrs: []string{srv.Addr}, Keyspaces: storetest.Keyspaces()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Update(context.Background(), func(tx store.Txn) error { return tx.Set([]byte("scan/a"), []byte("1"), 0) }); err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		name string
		call func(context.Context, store.Store) error
	}{
		{"get", func(ctx context.Context, s store.Store) error {
			_, err := s.Get(ctx, []byte("scan/a"))
			return err
		}},
		{"update: a read, then the commit script", func(ctx context.Context, s store.Store) error {
			return s.Update(ctx, func(tx store.Txn) error {
				v, err := tx.Get([]byte("scan/a"))
				if err != nil {
					return err
				}
				return tx.Set([]byte("scan/a"), append(v, '1'), 0)
			})
		}},
		{"update: the commit script only", func(ctx context.Context, s store.Store) error {
			return s.Update(ctx, func(tx store.Txn) error { return tx.Set([]byte("scan/b"), []byte("1"), time.Hour) })
		}},
		{"scan: index range, then a pipeline of reads", func(ctx context.Context, s store.Store) error {
			_, err := s.Scan(ctx, store.ScanOptions{Prefix: []byte("scan/")})
			return err
		}},
	}
	const deadline = 100 * time.Millisecond
	// Scheduling noise on a loaded machine, far below the client's own
	// one-second timeout that a hung call used to wait out.
	const slack = 150 * time.Millisecond
	timed := func(s store.Store, call func(context.Context, store.Store) error) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		start := time.Now()
		err := call(ctx, s)
		return time.Since(start), err
	}

	srv.Pause(t)
	for _, c := range calls {
		took, err := timed(r, c.call)
		if err == nil {
			t.Fatalf("%s on a hung Redis succeeded", c.name)
		}
		if took > deadline+slack {
			t.Errorf("%s on a hung Redis took %s with a %s deadline (%v)", c.name, took, deadline, err)
		}
	}

	clk := &clock{t: time.Now()}
	b := store.WithBreaker(r, store.BreakerOptions{Failures: len(calls), CoolOff: time.Minute, Name: "redis", Now: clk.Now})
	for _, c := range calls {
		if took, err := timed(b, c.call); err == nil || took > deadline+slack {
			t.Fatalf("%s through the breaker on a hung Redis: %v after %s", c.name, err, took)
		}
	}
	for _, c := range calls {
		took, err := timed(b, c.call)
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("%s with the circuit open = %v, want ErrUnavailable", c.name, err)
		}
		// The store is not waited for at all.
		if took > deadline/2 {
			t.Errorf("%s with the circuit open took %s", c.name, took)
		}
	}

	srv.Resume()
	clk.Add(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if v, err := b.Get(ctx, []byte("scan/a")); err != nil || string(v) != "1" {
		t.Fatalf("probe after Redis thawed = %q, %v; want the stored value", v, err)
	}
	for _, c := range calls {
		if err := c.call(ctx, b); err != nil {
			t.Errorf("%s after the circuit closed: %v", c.name, err)
		}
	}
}

// TestStoppedRedisFailsCallsAtOnce: a Redis that is gone refuses
// connections, and a call fails at once instead of dialing again and again
// until its deadline (the client's default is five dials 100ms apart).
func TestStoppedRedisFailsCallsAtOnce(t *testing.T) {
	srv := redistest.Start(t)
	r, err := store.OpenRedis(context.Background(), store.RedisOptions{Addrs: []string{srv.Addr}, Keyspaces: storetest.Keyspaces()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	srv.Stop()
	// Several calls: the pooled connections die first, then every call dials.
	for i := range 8 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		_, err := r.Get(ctx, []byte("plain/1"))
		took := time.Since(start)
		cancel()
		if err == nil {
			t.Fatalf("Get %d on a stopped Redis succeeded", i+1)
		}
		// Dial retries would take 400ms; a loaded machine takes far less
		// than that to be refused.
		if took > 300*time.Millisecond {
			t.Fatalf("Get %d on a stopped Redis took %s (%v)", i+1, took, err)
		}
	}
}
