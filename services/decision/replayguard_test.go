package decision

import (
	"fmt"
	"testing"
	"time"
)

func TestReplayGuard(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	g := newReplayGuard(10*time.Minute, 3)
	steps := []struct {
		sig   string
		at    time.Duration
		first bool
	}{
		{"a", 0, true},
		{"a", time.Minute, false},      // a replay within the window
		{"b", time.Minute, true},       //
		{"a", 11 * time.Minute, true},  // a's window is over
		{"c", 11 * time.Minute, true},  //
		{"d", 11 * time.Minute, true},  // over the bound: the oldest (b) is forgotten
		{"b", 11 * time.Minute, true},  //
		{"d", 12 * time.Minute, false}, //
	}
	for i, s := range steps {
		if got := g.firstUse(s.sig, t0.Add(s.at)); got != s.first {
			t.Fatalf("step %d: firstUse(%q, +%v) = %v, want %v", i, s.sig, s.at, got, s.first)
		}
	}
	if len(g.order) > 3 || len(g.seen) > 3 {
		t.Fatalf("the guard holds %d/%d signatures, bound 3", len(g.order), len(g.seen))
	}
	for i := range 1000 {
		g.firstUse(fmt.Sprint("flood-", i), t0.Add(13*time.Minute))
	}
	if len(g.order) > 3 || len(g.seen) > 3 {
		t.Fatalf("after a flood the guard holds %d/%d signatures, bound 3", len(g.order), len(g.seen))
	}
}
