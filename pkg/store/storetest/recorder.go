package storetest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/pkg/store"
)

// Recorder is a Store that remembers every key written and every prefix
// scanned through it, so that a service's test can check them against the
// service's keyspaces.
type Recorder struct {
	store.Store

	mu      sync.Mutex
	written map[string]bool
	scanned map[string]bool
}

// Record wraps st.
func Record(st store.Store) *Recorder {
	return &Recorder{Store: st, written: map[string]bool{}, scanned: map[string]bool{}}
}

// Update implements store.Store; every key a run of fn writes or deletes
// is recorded, committed or not.
func (r *Recorder) Update(ctx context.Context, fn func(tx store.Txn) error) error {
	return r.Store.Update(ctx, func(tx store.Txn) error { return fn(recordingTxn{Txn: tx, r: r}) })
}

// Scan implements store.Store.
func (r *Recorder) Scan(ctx context.Context, opts store.ScanOptions) ([]store.Item, error) {
	r.mu.Lock()
	r.scanned[string(opts.Prefix)] = true
	r.mu.Unlock()
	return r.Store.Scan(ctx, opts)
}

// Written returns the keys written, sorted.
func (r *Recorder) Written() []string { return r.keys(r.written) }

// Scanned returns the prefixes scanned, sorted.
func (r *Recorder) Scanned() []string { return r.keys(r.scanned) }

func (r *Recorder) keys(m map[string]bool) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// CheckKeyspaces fails t for every key written outside ks and every prefix
// scanned outside a scannable keyspace of ks, and when nothing was written.
func (r *Recorder) CheckKeyspaces(t testing.TB, ks []store.Keyspace) {
	t.Helper()
	decl, err := store.NewKeyspaces(ks...)
	if err != nil {
		t.Fatal(err)
	}
	written := r.Written()
	if len(written) == 0 {
		t.Fatal("nothing was written: the test checks no key")
	}
	for _, k := range written {
		if _, ok := decl.Lookup([]byte(k)); !ok {
			t.Errorf("key %q is in no declared keyspace", k)
		}
	}
	for _, p := range r.Scanned() {
		if k, ok := decl.Lookup([]byte(p)); !ok || !k.Scannable {
			t.Errorf("scan of %q is in no scannable keyspace", p)
		}
	}
}

type recordingTxn struct {
	store.Txn
	r *Recorder
}

func (t recordingTxn) note(key []byte) {
	t.r.mu.Lock()
	t.r.written[string(key)] = true
	t.r.mu.Unlock()
}

func (t recordingTxn) Set(key, value []byte, ttl time.Duration) error {
	t.note(key)
	return t.Txn.Set(key, value, ttl)
}

func (t recordingTxn) Delete(key []byte) error {
	t.note(key)
	return t.Txn.Delete(key)
}
