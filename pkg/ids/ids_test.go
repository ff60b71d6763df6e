package ids_test

import (
	"testing"
	"time"

	"github.com/pushbackhq/pushback/pkg/ids"
)

func TestIDsAreUniqueAndSortByTime(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	prev := ""
	for i := 0; i < 1000; i++ {
		id := ids.New(t0.Add(time.Duration(i) * time.Millisecond))
		if len(id) != 26 {
			t.Fatalf("id %q has %d characters", id, len(id))
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		if id <= prev {
			t.Fatalf("id %q does not sort after %q", id, prev)
		}
		prev = id
	}
	if a, b := ids.New(t0), ids.New(t0); a == b {
		t.Fatal("two ids of the same millisecond are equal")
	}
}

func TestTimeOfAnID(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 123_000_000, time.UTC)
	got, ok := ids.Time(ids.New(at))
	if !ok || !got.Equal(at) {
		t.Fatalf("Time = %v, %v; want %v", got, ok, at)
	}
	for _, bad := range []string{"", "not-an-id", "0123456789abcdefghjkmnpqr"} {
		if _, ok := ids.Time(bad); ok {
			t.Errorf("Time(%q) accepted", bad)
		}
	}
}

func TestSequenceSortsInOrderOfMaking(t *testing.T) {
	var s ids.Sequence
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	prev := ""
	for i := range 1000 {
		now := at
		if i%100 == 99 {
			now = at.Add(-time.Second) // a clock that stepped back
		}
		id := s.Next(now)
		if id <= prev {
			t.Fatalf("id %d %s does not sort after %s", i, id, prev)
		}
		if _, ok := ids.Time(id); !ok {
			t.Fatalf("id %s is not an id", id)
		}
		prev = id
	}
	if f := ids.Floor(at); f > ids.New(at) || ids.Floor(at.Add(time.Millisecond)) <= ids.New(at) {
		t.Fatal("Floor does not bound the ids of its millisecond")
	}
}
