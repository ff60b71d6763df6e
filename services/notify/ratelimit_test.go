package notify

import (
	"testing"
	"time"
)

func TestRateLimitSpend(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	lim := RateLimit{Every: 10 * time.Second, Burst: 2}
	steps := []struct {
		at   time.Duration
		wait time.Duration
	}{
		{0, 0},                             // a full bucket
		{0, 0},                             // the burst
		{0, 10 * time.Second},              // empty: the next token in one interval
		{4 * time.Second, 6 * time.Second}, // refilling, nothing spent by asking
		{10 * time.Second, 0},              // one token back
		{10 * time.Second, 10 * time.Second},
		{time.Hour, 0}, // refilled, capped at the burst
		{time.Hour, 0},
		{time.Hour, 10 * time.Second},
	}
	var b bucket
	for i, s := range steps {
		var wait time.Duration
		b, wait = lim.spend(b, t0.Add(s.at))
		if wait != s.wait {
			t.Fatalf("step %d at +%v: wait %v, want %v", i, s.at, wait, s.wait)
		}
	}
	if (RateLimit{Every: -1}).off() != true || (RateLimit{}).off() != true || lim.off() {
		t.Fatal("off() is wrong")
	}
}

func TestBucketEncoding(t *testing.T) {
	b := bucket{tokens: 1.25, at: time.Unix(1_800_000_000, 123)}
	got, ok := unmarshalBucket(b.marshal())
	if !ok || got.tokens != b.tokens || !got.at.Equal(b.at) {
		t.Fatalf("round trip %+v, %v", got, ok)
	}
	for _, bad := range [][]byte{nil, make([]byte, 15), {0x7f, 0xf8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, ok := unmarshalBucket(bad); ok {
			t.Errorf("unmarshalBucket(%x) accepted a corrupt bucket", bad)
		}
	}
}
