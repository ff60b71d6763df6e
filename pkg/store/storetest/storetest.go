// Package storetest is the conformance suite every store.Store implementation
// must pass.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/pkg/store"
)

// Run exercises the stores newStore returns.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	t.Run("GetMissing", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(ctx, []byte("missing/key")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get missing = %v, want ErrNotFound", err)
		}
	})
	t.Run("SetGetDelete", func(t *testing.T) {
		s := newStore(t)
		k := []byte("sgd/a")
		mustUpdate(t, s, func(tx store.Txn) error { return tx.Set(k, []byte("v1"), 0) })
		got, err := s.Get(ctx, k)
		if err != nil || string(got) != "v1" {
			t.Fatalf("Get = %q, %v", got, err)
		}
		mustUpdate(t, s, func(tx store.Txn) error { return tx.Delete(k) })
		if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after delete Get = %v", err)
		}
	})
	t.Run("ReadYourWritesInTxn", func(t *testing.T) {
		s := newStore(t)
		mustUpdate(t, s, func(tx store.Txn) error {
			if err := tx.Set([]byte("ryw/a"), []byte("x"), 0); err != nil {
				return err
			}
			v, err := tx.Get([]byte("ryw/a"))
			if err != nil || string(v) != "x" {
				return fmt.Errorf("in-txn Get = %q, %v", v, err)
			}
			return nil
		})
	})
	t.Run("FailedTxnWritesNothing", func(t *testing.T) {
		s := newStore(t)
		boom := errors.New("boom")
		err := s.Update(ctx, func(tx store.Txn) error {
			if err := tx.Set([]byte("fail/a"), []byte("x"), 0); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Update = %v, want boom", err)
		}
		if _, err := s.Get(ctx, []byte("fail/a")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("half-written txn: Get = %v", err)
		}
	})
	t.Run("TTLExpires", func(t *testing.T) {
		s := newStore(t)
		mustUpdate(t, s, func(tx store.Txn) error { return tx.Set([]byte("ttl/a"), []byte("x"), time.Second) })
		if _, err := s.Get(ctx, []byte("ttl/a")); err != nil {
			t.Fatalf("fresh key: %v", err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := s.Get(ctx, []byte("ttl/a"))
			if errors.Is(err, store.ErrNotFound) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("key with 1s TTL still present after 5s: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	t.Run("ScanOrderPrefixCursorReverse", func(t *testing.T) {
		s := newStore(t)
		mustUpdate(t, s, func(tx store.Txn) error {
			for _, k := range []string{"scan/b", "scan/a", "scan/c", "scam/x", "scao/y"} {
				if err := tx.Set([]byte(k), []byte(k), 0); err != nil {
					return err
				}
			}
			return nil
		})
		cases := []struct {
			name string
			opts store.ScanOptions
			want string
		}{
			{"forward", store.ScanOptions{Prefix: []byte("scan/")}, "[scan/a scan/b scan/c]"},
			{"after a, limit 1", store.ScanOptions{Prefix: []byte("scan/"), After: []byte("scan/a"), Limit: 1}, "[scan/b]"},
			{"reverse", store.ScanOptions{Prefix: []byte("scan/"), Reverse: true}, "[scan/c scan/b scan/a]"},
			{"reverse after c", store.ScanOptions{Prefix: []byte("scan/"), Reverse: true, After: []byte("scan/c")}, "[scan/b scan/a]"},
			{"no match", store.ScanOptions{Prefix: []byte("scaz/")}, "[]"},
		}
		for _, tc := range cases {
			if got := fmt.Sprint(keys(t, s, tc.opts)); got != tc.want {
				t.Errorf("%s: scan = %v, want %v", tc.name, got, tc.want)
			}
		}
	})
	t.Run("ConcurrentIncrementsAreAtomic", func(t *testing.T) {
		s := newStore(t)
		const workers, each = 8, 25
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					err := s.Update(ctx, func(tx store.Txn) error {
						n := 0
						v, err := tx.Get([]byte("ctr/n"))
						if err == nil {
							_, _ = fmt.Sscan(string(v), &n)
						} else if !errors.Is(err, store.ErrNotFound) {
							return err
						}
						return tx.Set([]byte("ctr/n"), []byte(fmt.Sprint(n+1)), 0)
					})
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		v, err := s.Get(ctx, []byte("ctr/n"))
		if err != nil || string(v) != fmt.Sprint(workers*each) {
			t.Fatalf("counter = %q, %v; want %d", v, err, workers*each)
		}
	})
}

func mustUpdate(t *testing.T, s store.Store, fn func(tx store.Txn) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func keys(t *testing.T, s store.Store, opts store.ScanOptions) []string {
	t.Helper()
	items, err := s.Scan(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = string(it.Key)
	}
	return out
}
