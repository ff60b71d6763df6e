package scoring

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/services/scoring/engine"
)

// sources keeps the engine's spray state in the store: each user's mark on
// a source is its own key (sourceKey + "/" + the user's hash), written in
// the transaction tx with the mark's TTL.
//
// Recent reads marks with a plain scan, outside the transaction's conflict
// tracking: every push of one source would otherwise conflict with every
// other (one ASN carries many users). Each user's mark is its own key, so
// the transaction only touches keys of this user.
//
// marks, when set, holds the marks this transaction wrote (pushes and
// vouches) but the store's scan cannot see yet: the later events of a
// batch count with them (a class of new hires in one IdP log export
// pushes and approves in one batch). tx is nil for a read-only preview.
type sources struct {
	ctx   context.Context
	s     *Service
	tx    store.Txn
	marks map[string][]engine.SourceUser
	// last and lastKey remember the store key of the source asked about
	// last: a push asks about each source three times in a row.
	last    engine.SourceKey
	lastKey []byte
}

// key returns the store key prefix of k.
func (src *sources) key(k engine.SourceKey) []byte {
	if src.lastKey == nil || k != src.last {
		src.last, src.lastKey = k, sourceKey(k)
	}
	return src.lastKey
}

// sourceKey is the store key prefix of a source.
func sourceKey(k engine.SourceKey) []byte {
	if k.IP != "" {
		return fmt.Appendf(nil, "scoring/source/%s/ip/%s", store.KeyPart(k.Tenant), k.IP)
	}
	return fmt.Appendf(nil, "scoring/source/%s/asn/%d", store.KeyPart(k.Tenant), k.ASN)
}

// markKey is one user's mark on a source.
func markKey(source []byte, user uint64) []byte {
	k := make([]byte, 0, len(source)+1+16)
	k = append(append(k, source...), '/')
	return store.AppendUint(k, user, 16, 16)
}

// Recent implements engine.Sources.
func (src *sources) Recent(k engine.SourceKey, limit int) ([]engine.SourceUser, error) {
	source := src.key(k)
	users, err := src.recent(source, limit)
	if err != nil {
		return nil, err
	}
	if written := src.marks[string(source)]; len(written) > 0 {
		// What this transaction wrote is newer than what the scan read.
		slices.SortFunc(users, func(a, b engine.SourceUser) int { return cmp.Compare(a.At, b.At) })
		at := make(map[uint64]int, len(users)+len(written))
		for i, u := range users {
			at[u.User] = i
		}
		for _, m := range written {
			if i, ok := at[m.User]; ok {
				users[i] = m
			} else {
				at[m.User] = len(users)
				users = append(users, m)
			}
		}
	}
	return users, nil
}

// recent returns at most limit marks on source, from the cache when it
// holds the source, else from the store (and then into the cache).
func (src *sources) recent(source []byte, limit int) ([]engine.SourceUser, error) {
	c := src.s.sources
	if c != nil {
		if st, ok := c.get(source); ok {
			// Oldest first: the newest limit of them.
			return st.Users[max(len(st.Users)-limit, 0):], nil
		}
	}
	prefix := append(source[:len(source):len(source)], '/')
	items, err := src.s.store.Scan(src.ctx, store.ScanOptions{Prefix: prefix, Limit: limit})
	if err != nil {
		if c != nil {
			c.forget(string(source))
		}
		return nil, err
	}
	users := make([]engine.SourceUser, 0, len(items))
	for _, it := range items {
		h, err := strconv.ParseUint(string(it.Key[len(prefix):]), 16, 64)
		if err != nil {
			continue
		}
		if m, ok := engine.DecodeMark(h, it.Value); ok {
			users = append(users, m)
		}
	}
	if c != nil {
		slices.SortFunc(users, func(a, b engine.SourceUser) int { return cmp.Compare(a.At, b.At) })
		c.fill(string(source), &engine.SourceState{Users: users})
	}
	return users, nil
}

// Mark implements engine.Sources. A mark that cannot be decoded is none.
func (src *sources) Mark(k engine.SourceKey, user uint64) (engine.SourceUser, bool, error) {
	b, err := src.tx.Get(markKey(src.key(k), user))
	if errors.Is(err, store.ErrNotFound) {
		return engine.SourceUser{}, false, nil
	}
	if err != nil {
		return engine.SourceUser{}, false, err
	}
	m, ok := engine.DecodeMark(user, b)
	return m, ok, nil
}

// SetMark implements engine.Sources.
func (src *sources) SetMark(k engine.SourceKey, m engine.SourceUser, ttl time.Duration) error {
	source := src.key(k)
	if err := src.tx.Set(markKey(source, m.User), engine.EncodeMark(m), ttl); err != nil {
		return err
	}
	if src.marks != nil {
		list := src.marks[string(source)]
		if i := slices.IndexFunc(list, func(u engine.SourceUser) bool { return u.User == m.User }); i >= 0 {
			list[i] = m
		} else {
			src.marks[string(source)] = append(list, m)
		}
	}
	return nil
}
