package scoring

import (
	"fmt"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/services/scoring/engine"
)

func TestSourceCacheKeepsMarksCommittedDuringItsRead(t *testing.T) {
	c := newSourceCache(1024, engine.SprayConfig{Window: 10 * time.Minute, MaxUsers: 4})
	if _, ok := c.get([]byte("asn/1")); ok {
		t.Fatal("an empty cache had the source")
	}
	// Another push commits its mark while the first read is under way.
	c.apply("asn/1", []engine.SourceUser{{User: 9, At: 5_000}})
	// The read returns what the store held before that commit.
	c.fill("asn/1", &engine.SourceState{Users: []engine.SourceUser{{User: 1, At: 1_000}, {User: 2, At: 2_000}}})
	src, ok := c.get([]byte("asn/1"))
	if !ok || len(src.Users) != 3 || src.Users[2].User != 9 {
		t.Fatalf("after the read: %+v %v, want users 1, 2 and the mark of 9 committed meanwhile", src, ok)
	}
	// A second read's late fill does not replace what the cache holds.
	c.fill("asn/1", &engine.SourceState{})
	if src, _ := c.get([]byte("asn/1")); len(src.Users) != 3 {
		t.Fatalf("a late fill replaced the source: %+v", src)
	}
	// A copy: the caller's changes stay the caller's.
	src.Users[0].User = 42
	if again, _ := c.get([]byte("asn/1")); again.Users[0].User != 1 {
		t.Fatal("get returned the cache's own slice")
	}
}

func TestSourceCacheMergesAsNoteSource(t *testing.T) {
	sp := engine.SprayConfig{Window: time.Minute, MaxUsers: 3}
	c := newSourceCache(1024, sp)
	c.get([]byte("ip/a"))
	c.fill("ip/a", &engine.SourceState{})
	// The same user again replaces its mark; marks stay in time order.
	c.apply("ip/a", []engine.SourceUser{{User: 1, At: 10_000}, {User: 2, At: 5_000}, {User: 1, At: 20_000, Vouched: true}})
	src, _ := c.get([]byte("ip/a"))
	if len(src.Users) != 2 || src.Users[0].User != 2 || src.Users[1].User != 1 || !src.Users[1].Vouched {
		t.Fatalf("%+v", src.Users)
	}
	// Past MaxUsers the oldest go; past the window of the newest, too.
	c.apply("ip/a", []engine.SourceUser{{User: 3, At: 30_000}, {User: 4, At: 40_000}})
	src, _ = c.get([]byte("ip/a"))
	if len(src.Users) != 3 || src.Users[0].User != 1 {
		t.Fatalf("MaxUsers: %+v", src.Users)
	}
	c.apply("ip/a", []engine.SourceUser{{User: 5, At: 95_000}})
	src, _ = c.get([]byte("ip/a"))
	if len(src.Users) != 2 || src.Users[0].User != 4 || src.Users[1].User != 5 {
		t.Fatalf("window: %+v", src.Users)
	}
	// A source never read is not made up from one mark: the store holds more.
	c.apply("ip/b", []engine.SourceUser{{User: 7, At: 1}})
	if _, ok := c.get([]byte("ip/b")); ok {
		t.Fatal("a mark alone made a cached source")
	}
}

func TestSourceCacheIsBoundedAndForgetsFailedReads(t *testing.T) {
	c := newSourceCache(64, engine.SprayConfig{Window: time.Minute, MaxUsers: 4})
	for i := range 10_000 {
		k := fmt.Sprint("ip/", i)
		c.get([]byte(k))
		c.fill(k, &engine.SourceState{Users: []engine.SourceUser{{User: uint64(i), At: int64(i)}}})
	}
	n := 0
	for i := range c.shards {
		n += len(c.shards[i].m)
	}
	if n > 64+sourceShards {
		t.Fatalf("%d sources cached, bound 64", n)
	}
	c.get([]byte("ip/failed"))
	c.forget("ip/failed")
	c.apply("ip/failed", []engine.SourceUser{{User: 1, At: 1}})
	if _, ok := c.get([]byte("ip/failed")); ok {
		t.Fatal("a failed read left the source cached")
	}
}

// The keys are built without fmt; they must be the bytes fmt built.
func TestKeysAsFormatted(t *testing.T) {
	for _, c := range []struct {
		tenant, user string
		mark         uint64
	}{{"", "alice", 0}, {"acme", "a/b", 0xdeadbeef}, {"50%", "bob", 1<<64 - 1}} {
		if got, want := string(userKey(c.tenant, c.user)), fmt.Sprintf("scoring/user/%s/%s", store.KeyPart(c.tenant), store.KeyPart(c.user)); got != want {
			t.Errorf("userKey = %q, want %q", got, want)
		}
		if got, want := string(markKey([]byte("scoring/source/t/ip/1.2.3.4"), c.mark)), fmt.Sprintf("scoring/source/t/ip/1.2.3.4/%016x", c.mark); got != want {
			t.Errorf("markKey = %q, want %q", got, want)
		}
	}
}
