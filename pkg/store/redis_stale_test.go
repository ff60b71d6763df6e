package store

import (
	"context"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/pkg/store/redistest"
)

// TestRedisDropStaleKeepsAKeyWrittenAgain: an index entry is removed only
// for a key that is still gone when the removal runs; one written again
// since the scan read it keeps its entry, so scans still find it.
func TestRedisDropStaleKeepsAKeyWrittenAgain(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	r, err := OpenRedis(ctx, RedisOptions{Addrs: []string{srv.Addr}, Keyspaces: []Keyspace{{Prefix: "scan/", Scannable: true}}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, k := range []string{"scan/back", "scan/gone"} {
		if err := r.Update(ctx, func(tx Txn) error { return tx.Set([]byte(k), []byte("v"), time.Hour) }); err != nil {
			t.Fatal(err)
		}
	}
	// Both looked expired to a scan; "scan/back" was written again since.
	ks, _ := r.ks.Lookup([]byte("scan/"))
	if err := r.c.Del(ctx, r.rkey(ks, []byte("scan/gone"))).Err(); err != nil {
		t.Fatal(err)
	}
	r.dropStale(ctx, ks, []any{"scan/back", "scan/gone"})
	items, err := r.Scan(ctx, ScanOptions{Prefix: []byte("scan/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || string(items[0].Key) != "scan/back" {
		t.Fatalf("scan after dropping stale entries: %v, want scan/back alone", items)
	}
	left, err := r.c.ZRange(ctx, r.indexKey(ks), 0, -1).Result()
	if err != nil || len(left) != 1 || left[0] != "scan/back" {
		t.Fatalf("index %v, %v; want only scan/back", left, err)
	}
}
