package engine

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

const benchUsers = 1_000_000

// typicalState is a user with a week of ordinary history: a few devices,
// countries and networks, a login, two pushes in the last hour.
func typicalState(i int) *UserState {
	c := DefaultConfig()
	s := &UserState{}
	for d := range 3 {
		ci := nyc
		ci.IP = fmt.Sprintf("10.%d.%d.%d", d, i>>8&0xff, i&0xff)
		ci.DeviceID = fmt.Sprint("device-", i, "-", d)
		ci.ASN = uint32(7922 + d)
		c.Apply(s, Observation{ID: fmt.Sprint("login", d), Kind: ObsLoginSucceeded, At: after(time.Duration(d) * 24 * time.Hour), Client: ci})
	}
	for p := range 2 {
		c.Apply(s, Observation{ID: fmt.Sprint("push", p), Kind: ObsAttempt, At: after(72*time.Hour + time.Duration(p)*20*time.Minute), Client: nyc})
	}
	return s
}

var benchStates = sync.OnceValue(func() [][]byte {
	out := make([][]byte, benchUsers)
	for i := range out {
		out[i], _ = typicalState(i).MarshalBinary()
	}
	return out
})

// BenchmarkEngineRecord is the scorer's hot path on one of a million users'
// states: decode, apply the attempt, assess, encode.
func BenchmarkEngineRecord(b *testing.B) {
	states := benchStates()
	c := DefaultConfig()
	at := after(73 * time.Hour)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		var s UserState
		if err := s.UnmarshalBinary(states[i%benchUsers]); err != nil {
			b.Fatal(err)
		}
		ra, _ := c.Record("user", &s, Observation{ID: fmt.Sprint(i), Kind: ObsAttempt, At: at, Client: auckland}, nil)
		if ra == nil {
			b.Fatal("no assessment")
		}
		if _, err := s.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEngineAssess is the read-only assessment of a decoded state.
func BenchmarkEngineAssess(b *testing.B) {
	s := typicalState(1)
	c := DefaultConfig()
	at := after(73 * time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		c.Assess("user", s, at)
	}
}
