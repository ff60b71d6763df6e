package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrKeyspace is returned (wrapped, with the key) for a key outside every
// declared keyspace, and for a Scan outside every scannable one. It is the
// caller's mistake, not the store's: a key nobody declared would be written
// where no index and no hash tag expects it.
var ErrKeyspace = errors.New("store: key outside the declared keyspaces")

// Keyspace is a range of keys a service owns, declared by that service:
// the store knows no service's key layout.
type Keyspace struct {
	// Prefix every key of the keyspace starts with; it ends with "/". No
	// declared prefix may start with another.
	Prefix string
	// Scannable keyspaces may be scanned (Scan's prefix starts with
	// Prefix). Redis keeps an ordered index of their keys, one more write
	// per Set or Delete; the other keys are point reads only.
	Scannable bool
	// HashTagParts is how many "/"-separated parts of a key after Prefix
	// belong to its Redis hash tag (with Prefix): keys that agree on them
	// hash to one slot, so one user's keys stay together. 0 tags the whole
	// key.
	HashTagParts int
	// PresumeAbsent says a transaction that reads a key of the keyspace
	// usually finds none (an idempotency key, written once and read to
	// refuse a reuse). A store whose reads are round trips (Redis) then
	// takes an uncached key as absent and lets the commit's check confirm
	// it: a key that is there after all fails the check, and the function
	// runs again on its value. Results are the same either way. A right
	// guess saves the read's round trip; a wrong one costs the refused
	// check instead of the read, and a second run of the function. Declare
	// it only where the function, run on an absent key, does no extra work
	// of its own (a scan it would not otherwise make).
	PresumeAbsent bool
}

// Keyspaces is a validated set of declarations, sorted by prefix.
type Keyspaces struct {
	ks []Keyspace
}

// NewKeyspaces checks and merges declarations: the union of those of the
// services a process runs. A keyspace declared twice alike is kept once;
// declared twice differently, or nested in another, it is an error.
func NewKeyspaces(decl ...Keyspace) (Keyspaces, error) {
	ks := slices.Clone(decl)
	slices.SortFunc(ks, func(a, b Keyspace) int { return strings.Compare(a.Prefix, b.Prefix) })
	ks = slices.Compact(ks)
	for i, k := range ks {
		if k.Prefix == "" || !strings.HasSuffix(k.Prefix, "/") {
			return Keyspaces{}, fmt.Errorf("store: keyspace %q: the prefix must end with \"/\"", k.Prefix)
		}
		if k.HashTagParts < 0 {
			return Keyspaces{}, fmt.Errorf("store: keyspace %q: negative hash tag parts", k.Prefix)
		}
		if i > 0 && strings.HasPrefix(k.Prefix, ks[i-1].Prefix) {
			if k.Prefix == ks[i-1].Prefix {
				return Keyspaces{}, fmt.Errorf("store: keyspace %q declared twice, differently", k.Prefix)
			}
			return Keyspaces{}, fmt.Errorf("store: keyspace %q is inside keyspace %q", k.Prefix, ks[i-1].Prefix)
		}
	}
	return Keyspaces{ks: ks}, nil
}

// Len is the number of keyspaces.
func (s Keyspaces) Len() int { return len(s.ks) }

// Lookup returns the keyspace key is in. Prefixes do not nest, so the only
// candidate is the greatest prefix not above key.
func (s Keyspaces) Lookup(key []byte) (Keyspace, bool) {
	i, _ := slices.BinarySearchFunc(s.ks, key, func(k Keyspace, key []byte) int {
		return bytes.Compare([]byte(k.Prefix), key)
	})
	// ks[i] is the first prefix >= key: it matches only when equal to the
	// whole key; otherwise the one before it is the candidate.
	if i < len(s.ks) && s.ks[i].Prefix == string(key) {
		return s.ks[i], true
	}
	if i > 0 && bytes.HasPrefix(key, []byte(s.ks[i-1].Prefix)) {
		return s.ks[i-1], true
	}
	return Keyspace{}, false
}

// check returns the keyspace of key, or ErrKeyspace.
func (s Keyspaces) check(key []byte) (Keyspace, error) {
	k, ok := s.Lookup(key)
	if !ok {
		return Keyspace{}, fmt.Errorf("%w: %q", ErrKeyspace, key)
	}
	return k, nil
}

// checkScan returns the scannable keyspace a scan of prefix stays in, or
// ErrKeyspace.
func (s Keyspaces) checkScan(prefix []byte) (Keyspace, error) {
	k, ok := s.Lookup(prefix)
	if !ok || !k.Scannable {
		return Keyspace{}, fmt.Errorf("%w: scan prefix %q is in no scannable keyspace", ErrKeyspace, prefix)
	}
	return k, nil
}

// hashTagEnd is where key's hash tag ends: after Prefix and HashTagParts
// more parts (the "/" after the last one excluded), or at the end of key.
func (k Keyspace) hashTagEnd(key []byte) int {
	if k.HashTagParts == 0 {
		return len(key)
	}
	parts := 0
	for i := len(k.Prefix); i < len(key); i++ {
		if key[i] == '/' {
			parts++
			if parts == k.HashTagParts {
				return i
			}
		}
	}
	return len(key)
}
