// Package store is the storage interface every Pushback service uses, with
// an embedded badger implementation and a Redis one shared by replicas. All
// keys are byte strings ordered lexicographically; values are opaque bytes.
//
// Every key belongs to a keyspace that the service writing it declares
// (Keyspace); a process opens its store with the declarations of the
// services it runs. A key outside them, or a scan outside a scannable one,
// is ErrKeyspace on every implementation. The package knows no service's
// keys.
package store

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// ErrNotFound is returned by Get when a key does not exist (or has expired).
var ErrNotFound = errors.New("store: key not found")

// ErrConflict is returned by Update when the transaction kept conflicting
// with concurrent writers after every retry.
var ErrConflict = errors.New("store: transaction conflict")

// Reader reads keys inside a transaction.
type Reader interface {
	// Get returns a copy of the value of key, or ErrNotFound.
	Get(key []byte) ([]byte, error)
}

// Txn reads and writes keys atomically.
type Txn interface {
	Reader
	// Set writes key; ttl 0 means the key never expires.
	Set(key, value []byte, ttl time.Duration) error
	// Delete removes key.
	Delete(key []byte) error
}

// Item is one key and its value.
type Item struct {
	Key   []byte
	Value []byte
}

// ScanOptions selects a key range.
type ScanOptions struct {
	// Prefix every returned key starts with.
	Prefix []byte
	// After, when set, skips keys up to and including After (exclusive cursor).
	After []byte
	// Limit caps the number of items (0 means no limit).
	Limit int
	// Reverse returns keys in descending order.
	Reverse bool
}

// Store is the storage every service depends on.
type Store interface {
	// Get reads one key outside of any transaction.
	Get(ctx context.Context, key []byte) ([]byte, error)
	// Update runs fn in a serialisable read-write transaction and commits it
	// durably before returning. fn may be called more than once when
	// concurrent writers conflict, each time on fresh values, so it must
	// not have side effects beyond tx; only the writes of the run that
	// commits are applied, and none when fn returns an error.
	Update(ctx context.Context, fn func(tx Txn) error) error
	// Scan returns the items of a key range in key order; opts.Prefix must
	// be inside a scannable keyspace. Expired keys are left out.
	Scan(ctx context.Context, opts ScanOptions) ([]Item, error)
	// Close releases the store.
	Close() error
}

// PrefixEnd returns the smallest key greater than every key with prefix.
func PrefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// maxAttempts bounds the retries of a conflicting transaction.
const maxAttempts = 256

// backoff waits before retry attempt+1 of a conflicting transaction: not at
// first, then a jittered pause that grows with the attempt up to 5ms, so
// writers contending for one key take turns instead of colliding again.
func backoff(ctx context.Context, attempt int) error {
	if attempt < 2 {
		return nil
	}
	limit := min(time.Duration(attempt)*100*time.Microsecond, 5*time.Millisecond)
	t := time.NewTimer(time.Duration(rand.Int64N(int64(limit)) + 1))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
