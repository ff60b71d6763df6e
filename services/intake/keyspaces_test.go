package intake

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
	"google.golang.org/grpc"
)

// downObserver fails while down is set.
type downObserver struct{ down atomic.Bool }

func (o *downObserver) Observe(context.Context, *scoringv1.ObserveRequest, ...grpc.CallOption) (*scoringv1.ObserveResponse, error) {
	if o.down.Load() {
		return nil, errors.New("scoring is down")
	}
	return &scoringv1.ObserveResponse{}, nil
}

// TestKeyspacesHoldEveryKey runs intake's calls on a store that refuses
// keys outside intake's declared keyspaces (as every store the mesh opens
// does) and checks every key written and every prefix scanned.
func TestKeyspacesHoldEveryKey(t *testing.T) {
	rec := storetest.Record(storetest.Memory(t, Keyspaces()...))
	obs := &downObserver{}
	obs.down.Store(true)
	s, err := New(Options{Store: rec, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)
	var batch []*eventv1.AuthEvent
	for i := range 4 {
		batch = append(batch, pushTo(fmt.Sprint("e/", i), "acme/x", "bob/y", t0.Add(time.Duration(i)*time.Second)))
	}
	if res, err := s.Store(ctx, batch); err != nil || res.Accepted != 4 {
		t.Fatalf("Store = %+v, %v", res, err)
	}
	// Scoring was down: the batch waits, and is forwarded once it is back.
	obs.down.Store(false)
	if err := s.ForwardPending(ctx); err != nil {
		t.Fatal(err)
	}
	if list, err := s.ListEvents(ctx, &intakev1.ListEventsRequest{Tenant: "acme/x", UserId: "bob/y", PageSize: 2}); err != nil || len(list.GetEvents()) != 2 {
		t.Fatalf("ListEvents = %v, %v", list, err)
	}
	rec.CheckKeyspaces(t, Keyspaces())
	for _, p := range []string{"intake/seen/", "intake/event/", pendingPrefix} {
		found := false
		for _, k := range rec.Written() {
			found = found || strings.HasPrefix(k, p)
		}
		if !found {
			t.Errorf("nothing written under %s: the test no longer covers it", p)
		}
	}
}
