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
	"github.com/pushbackhq/pushback/services/scoring/engine"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const benchUsers = 1_000_000

var benchStart = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// benchStates are a million users with a week of ordinary history each: a
// few devices, countries and networks, a login, two pushes in the last hour.
var benchStates = sync.OnceValue(func() [][]byte {
	c := engine.DefaultConfig()
	out := make([][]byte, benchUsers)
	for i := range out {
		s := &engine.UserState{}
		for d := range 3 {
			ci := engine.ClientInfo{IP: fmt.Sprintf("10.%d.%d.%d", d, i>>8&0xff, i&0xff), Lat: 40.71427, Lon: -74.00597, HasGeo: true,
				Country: "US", City: "New York", ASN: uint32(7922 + d), DeviceID: fmt.Sprint("device-", i, "-", d)}
			c.Apply(s, engine.Observation{ID: fmt.Sprint("login", d), Kind: engine.ObsLoginSucceeded, At: benchStart.Add(time.Duration(d) * 24 * time.Hour), Client: ci})
		}
		for p := range 2 {
			c.Apply(s, engine.Observation{ID: fmt.Sprint("push", p), Kind: engine.ObsAttempt, At: benchStart.Add(72*time.Hour + time.Duration(p)*20*time.Minute)})
		}
		out[i], _ = s.MarshalBinary()
	}
	return out
})

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
			Time: timestamppb.New(benchStart.Add(73*time.Hour + time.Duration(i)*time.Millisecond)), Client: client}})
		if err != nil {
			b.Fatal(err)
		}
	}
}
