package engine

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// busyState is a user at the bounds of steady state: a full history of
// devices, countries and networks, every finding, the id memory full and
// an hour of pushes.
func busyState(t testing.TB, pushes int) *UserState {
	c := DefaultConfig()
	s := &UserState{}
	for i := range c.HistoryLimit {
		ci := nyc
		ci.IP = fmt.Sprint("198.51.100.", i)
		ci.DeviceID = fmt.Sprintf("device-%02d-0f8e7d6c-5b4a-4939-8271-6a5b4c3d2e1f", i)
		ci.Country = fmt.Sprintf("C%d", i)
		ci.ASN = uint32(64500 + i)
		c.Apply(s, Observation{ID: fmt.Sprint("login", i), Kind: ObsLoginSucceeded, At: after(time.Duration(i) * time.Minute), Client: ci})
	}
	start := after(time.Hour)
	for i := range pushes {
		kind := ObsAttempt
		if i%2 == 1 {
			kind = ObsPushDenied
		}
		c.Apply(s, Observation{ID: fmt.Sprint("push", i), Kind: kind, At: start.Add(time.Duration(i) * 3 * time.Second), Client: auckland})
	}
	c.Apply(s, Observation{ID: "approve", Kind: ObsPushApproved, At: start.Add(time.Duration(pushes)*3*time.Second + time.Second), Client: auckland, Responder: nyc})
	if s.finding(FindingTravel) == nil || s.finding(FindingMismatch) == nil || (pushes >= 6 && s.finding(FindingAfterBurst) == nil) {
		t.Fatalf("busy state lacks findings: %+v", s.Findings)
	}
	return s
}

func TestStateRoundTrip(t *testing.T) {
	for _, s := range []*UserState{{}, busyState(t, 10), busyState(t, 400)} {
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back UserState
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		// Coordinates are kept to 1e-5 degrees (about a metre) and
		// distances to 0.1 km: compare the re-encoding.
		b2, _ := back.MarshalBinary()
		if string(b) != string(b2) {
			t.Fatal("re-encoding differs")
		}
		if !reflect.DeepEqual(back.Pushes, s.Pushes) || back.Streak != s.Streak || len(back.Findings) != len(s.Findings) {
			t.Fatal("round trip lost data")
		}
		c := DefaultConfig()
		now := time.UnixMilli(s.UpdatedAt)
		if fmt.Sprint(c.Assess("u", s, now)) != fmt.Sprint(c.Assess("u", &back, now)) {
			t.Fatal("assessment changed across a restart")
		}
	}
}

// TestStateSize measures the bytes a user costs and holds them to the
// documented budget: <= 2 KiB in steady state, and bounded under attack.
func TestStateSize(t *testing.T) {
	tests := []struct {
		name   string
		s      *UserState
		budget int
	}{
		{"new user after one login", func() *UserState {
			s := &UserState{}
			DefaultConfig().Apply(s, Observation{ID: "l", Kind: ObsLoginSucceeded, At: t0, Client: nyc})
			return s
		}(), 128},
		{"steady state: full history, 10 pushes in the hour", busyState(t, 10), 2048},
		{"under attack: push list saturated", busyState(t, 1000), 2048 + 128*4},
	}
	for _, tt := range tests {
		b, _ := tt.s.MarshalBinary()
		t.Logf("%s: %d bytes", tt.name, len(b))
		if len(b) > tt.budget {
			t.Errorf("%s: %d bytes > %d", tt.name, len(b), tt.budget)
		}
	}
}

// A state written by the first release (device ids as strings) still loads.
func TestStateV1(t *testing.T) {
	v1 := []byte{stateV1}
	v1 = append(v1, 0x02)       // UpdatedAt = 1 (zigzag)
	v1 = append(v1, 0x00, 0x00) // no pushes, no seen
	v1 = append(v1, 0, 0, 0, 0) // streak, denied, timed out, since
	v1 = append(v1, 0, 0)       // fraud, strong auth
	v1 = append(v1, 0, 0)       // location: at, ip ""
	v1 = append(v1, make([]byte, 8)...)
	v1 = append(v1, 0, 0, 0)             // accuracy, country, city
	v1 = append(v1, 1, 3, 'p', 'h', 'n') // devices ["phn"]
	v1 = append(v1, 1, 2, 'U', 'S')      // countries
	v1 = append(v1, 1, 0x90, 0x3e)       // ASNs [7952]
	var s UserState
	if err := s.UnmarshalBinary(v1); err != nil {
		t.Fatal(err)
	}
	if len(s.Devices) != 1 || s.Devices[0] != hashID("phn") || s.Countries[0] != "US" || s.ASNs[0] != 7952 {
		t.Fatalf("v1 decoded to %+v", s)
	}
}

// A state written by the second release (no push context) still loads:
// its pushes have an unknown context, its fatigue finding none, and it
// assesses as it did.
func TestStateV2(t *testing.T) {
	s := &UserState{UpdatedAt: t0.UnixMilli(),
		Pushes:   []Push{{At: t0.UnixMilli() - 2000, Kind: KindAttempt}, {At: t0.UnixMilli() - 1000, Kind: KindTimedOut}},
		Findings: []Finding{{Code: FindingAfterBurst, At: t0.UnixMilli(), Confidence: 1, Threshold: 3, Streak: 3}}}
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// Version 3 adds, to a fatigue finding, its class and approver (a byte
	// each) and three counts (a byte each at zero): the rest is version 2.
	v2 := append([]byte{stateV2}, b[1:len(b)-5]...)
	var back UserState
	if err := back.UnmarshalBinary(v2); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, s) {
		t.Fatalf("v2 decoded to %+v, want %+v", back, *s)
	}
	sig := signal(DefaultConfig().Assess("u", &back, t0), SignalApprovalAfterBurst)
	if sig.GetBurst().GetContext() != "no context" || sig.GetConfidence() != 1 || sig.GetWeight() != 90 {
		t.Fatalf("a stored fatigue success lost its weight: %v", sig)
	}
	// A version 3 byte with its top bit set is no push.
	b[1+binary.PutVarint(make([]byte, 10), s.UpdatedAt)+1+binary.PutVarint(make([]byte, 10), s.Pushes[0].At)] |= 0x80
	if err := back.UnmarshalBinary(b); err == nil {
		t.Fatal("a corrupt push decoded")
	}
}

// FuzzUserState: any bytes in the store decode to a state or an error,
// never a panic, and whatever decodes re-encodes to the same bytes.
func FuzzUserState(f *testing.F) {
	for _, s := range []*UserState{{}, busyState(f, 10)} {
		b, _ := s.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{stateVersion, 0x02, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s UserState
		if err := s.UnmarshalBinary(b); err != nil {
			return
		}
		c := DefaultConfig()
		c.Assess("u", &s, time.UnixMilli(s.UpdatedAt))
		var src SourceState
		_ = src.UnmarshalBinary(b)
	})
}
