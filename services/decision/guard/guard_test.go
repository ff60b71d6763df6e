package guard

import (
	"reflect"
	"testing"
	"time"
)

const minute = int64(time.Minute / time.Millisecond)

func sample(ids ...uint64) State {
	var s State
	for i, id := range ids {
		s.Record(Attempt{ID: id, At: int64(i) * minute, Familiar: id%2 == 0}, Context{IP: "203.0.113.1", ASN: 64666, Device: "d"}, int64(len(ids))*minute)
	}
	return s
}

func TestRecordCountsEachAttemptOnce(t *testing.T) {
	s := sample(1, 2, 3)
	if s.Record(Attempt{ID: 2, At: 5 * minute}, Context{}, 5*minute) {
		t.Fatal("a retried attempt was recorded again")
	}
	if n := s.Count(3*minute, 10*time.Minute, false); n != 3 {
		t.Fatalf("Count = %d, want 3", n)
	}
	if n := s.Count(3*minute, 10*time.Minute, true); n != 1 {
		t.Fatalf("familiar Count = %d, want 1", n)
	}
	// Attempts within the window only.
	if n := s.Count(3*minute, 150*time.Second, false); n != 2 {
		t.Fatalf("Count over 150s = %d, want 2", n)
	}
}

func TestMergeIsCommutativeAndIdempotent(t *testing.T) {
	a, b := sample(1, 2, 3), sample(3, 4, 5)
	b.Start(2*minute, 15*time.Minute)
	ab, ba := a.Clone(), b.Clone()
	ab.Merge(b, 4*minute)
	ba.Merge(a, 4*minute)
	if !reflect.DeepEqual(ab.Attempts, ba.Attempts) || ab.Cooldown != ba.Cooldown || len(ab.Attempts) != 5 {
		t.Fatalf("merge depends on order: %+v vs %+v", ab, ba)
	}
	again := ab.Clone()
	again.Merge(b, 4*minute)
	again.Merge(a, 4*minute)
	if !reflect.DeepEqual(again.Attempts, ab.Attempts) || again.Cooldown != ab.Cooldown {
		t.Fatal("merging twice changed the state")
	}
}

func TestClearedCooldownStaysClearedAfterMerge(t *testing.T) {
	var s State
	s.Start(0, 15*time.Minute)
	stale := s.Clone()
	s.Clear(minute)
	s.Merge(stale, 2*minute)
	if s.Active(2 * minute) {
		t.Fatal("a stale copy brought a cleared cooldown back")
	}
	s.Start(3*minute, 15*time.Minute)
	if !s.Active(4 * minute) {
		t.Fatal("a cooldown started after the clearing does not hold")
	}
}

func TestEscalateNeverShortens(t *testing.T) {
	var s State
	s.Start(0, 2*time.Hour)
	s.Escalate(minute, func(int) time.Duration { return 15 * time.Minute })
	if s.Cooldown.Until != 2*60*minute || s.Cooldown.Level != 2 {
		t.Fatalf("cooldown %+v, want it kept at 2h, level 2", s.Cooldown)
	}
}

func TestPruneBoundsTheState(t *testing.T) {
	var s State
	for i := range 3 * MaxAttempts {
		s.Record(Attempt{ID: uint64(i), At: int64(i)}, Context{IP: string(rune('a' + i%26)), Device: string(rune('A' + i%26))}, int64(i))
	}
	ips, _, devices := s.Bound()
	if len(s.Attempts) != MaxAttempts || len(ips) != MaxBound || len(devices) != MaxBound {
		t.Fatalf("kept %d attempts, %d IPs, %d devices", len(s.Attempts), len(ips), len(devices))
	}
	s.Prune(Horizon.Milliseconds() + 4*MaxAttempts)
	if len(s.Attempts) != 0 || !s.Idle(Horizon.Milliseconds()+4*MaxAttempts) {
		t.Fatalf("%d attempts past the horizon kept", len(s.Attempts))
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	s := sample(7, 8, 9)
	s.Start(minute, 15*time.Minute)
	s.Clear(30)
	got, err := Unmarshal(s.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip: %+v, want %+v", got, s)
	}
	b := s.Marshal()
	for i := range b {
		if _, err := Unmarshal(b[:i]); err == nil {
			t.Fatalf("a state cut at %d bytes decoded", i)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	s := sample(1, 2)
	f.Add(s.Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := Unmarshal(b)
		if err != nil {
			return
		}
		if _, err := Unmarshal(st.Marshal()); err != nil {
			t.Fatalf("a decoded state does not encode back: %v", err)
		}
	})
}
