package scoring

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/store"
	"google.golang.org/protobuf/types/known/timestamppb"
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

var benchStore = sync.OnceValues(func() (*store.Badger, error) {
	st, err := store.OpenBadger(store.BadgerOptions{InMemory: true})
	if err != nil {
		return nil, err
	}
	states := benchStates()
	const batch = 10_000
	for from := 0; from < benchUsers; from += batch {
		err := st.Update(context.Background(), func(tx store.Txn) error {
			for i := from; i < from+batch; i++ {
				if err := tx.Set(userKey("bench", fmt.Sprint("user", i)), states[i], 0); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return st, nil
})

// BenchmarkServiceAssess is the Assess RPC handler (record, as Decide calls
// it) against an in-memory badger holding a million users.
func BenchmarkServiceAssess(b *testing.B) {
	st, err := benchStore()
	if err != nil {
		b.Fatal(err)
	}
	svc := New(Options{Store: st})
	ctx := context.Background()
	client := &eventv1.Client{Ip: "12.12.12.12", Asn: 9500, Geo: &eventv1.Geo{Latitude: -36.85, Longitude: 174.76, Country: "NZ"}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		_, err := svc.Assess(ctx, &scoringv1.AssessRequest{Record: true, Attempt: &scoringv1.Attempt{
			AttemptId: fmt.Sprint("b", i), Tenant: "bench", UserId: fmt.Sprint("user", (i*7919)%benchUsers),
			Time: timestamppb.New(after(73*time.Hour + time.Duration(i)*time.Millisecond)), Client: client}})
		if err != nil {
			b.Fatal(err)
		}
	}
}
