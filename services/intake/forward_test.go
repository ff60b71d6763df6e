package intake

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/redistest"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// flakyObserver fails while down is set and records what it was given.
type flakyObserver struct {
	mu     sync.Mutex
	down   bool
	refuse string // events whose id starts with it are invalid to scoring
	calls  int
	ids    []string
}

func (o *flakyObserver) Observe(_ context.Context, in *scoringv1.ObserveRequest, _ ...grpc.CallOption) (*scoringv1.ObserveResponse, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls++
	if o.down {
		return nil, errors.New("scoring unavailable")
	}
	for _, e := range in.GetEvents() {
		if o.refuse != "" && strings.HasPrefix(e.GetEventId(), o.refuse) {
			return nil, status.Error(codes.InvalidArgument, "events[0]: invalid")
		}
	}
	for _, e := range in.GetEvents() {
		o.ids = append(o.ids, e.GetEventId())
	}
	return &scoringv1.ObserveResponse{}, nil
}

func (o *flakyObserver) set(down bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.down = down
}

func (o *flakyObserver) seen() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := slices.Clone(o.ids)
	slices.Sort(out)
	return out
}

func batch(prefix string, n int, at time.Time) []*eventv1.AuthEvent {
	out := make([]*eventv1.AuthEvent, n)
	for i := range out {
		out[i] = &eventv1.AuthEvent{EventId: fmt.Sprintf("%s-%03d", prefix, i), UserId: fmt.Sprint("u", i%7),
			Type: eventv1.EventType_EVENT_TYPE_PUSH_SENT, Time: timestamppb.New(at), Factor: eventv1.Factor_FACTOR_PUSH,
			Source: &eventv1.Source{Idp: "okta"}}
	}
	return out
}

// pending counts forwarding records of both layouts.
func pending(t *testing.T, st store.Store) int {
	t.Helper()
	n := 0
	for _, p := range []string{pendingPrefix, legacyMarkPrefix} {
		items, err := st.Scan(context.Background(), store.ScanOptions{Prefix: []byte(p)})
		if err != nil {
			t.Fatal(err)
		}
		n += len(items)
	}
	return n
}

func TestForwardingQueueSurvivesAScoringOutage(t *testing.T) {
	stores := []struct {
		name string
		open func(t *testing.T) store.Store
	}{
		{"badger", func(t *testing.T) store.Store { return storetest.Memory(t, Keyspaces()...) }},
		{"redis", func(t *testing.T) store.Store {
			srv := redistest.Start(t)
			st, err := store.OpenRedis(context.Background(), store.RedisOptions{Addrs: []string{srv.Addr}, Keyspaces: Keyspaces()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		}},
	}
	for _, tt := range stores {
		t.Run(tt.name, func(t *testing.T) { forwardingOutage(t, tt.open(t)) })
	}
}

func forwardingOutage(t *testing.T, st store.Store) {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	obs := &flakyObserver{}
	s, err := New(Options{Store: st, Observer: obs, Now: func() time.Time { return *clock.Load() }})
	if err != nil {
		t.Fatal(err)
	}

	// Forwarded at once: nothing stays queued.
	if _, err := s.Store(ctx, batch("a", 5, now)); err != nil {
		t.Fatal(err)
	}
	if n := pending(t, st); n != 0 {
		t.Fatalf("%d forwarding records after a forwarded batch, want 0", n)
	}

	// Scoring is down: the batches are stored and acknowledged, one record each.
	obs.set(true)
	for _, p := range []string{"b", "c"} {
		res, err := s.Store(ctx, batch(p, 150, now))
		if err != nil || res.Accepted != 150 {
			t.Fatalf("store during the outage: %+v, %v", res, err)
		}
	}
	if n := pending(t, st); n != 2 {
		t.Fatalf("%d forwarding records during the outage, want one per batch (2)", n)
	}
	// Records stored moments ago belong to the calls that stored them.
	obs.set(false)
	if err := s.ForwardPending(ctx); err != nil || pending(t, st) != 2 || len(obs.seen()) != 5 {
		t.Fatalf("a retry pass took fresh records: %v, %d left, scoring saw %d events", err, pending(t, st), len(obs.seen()))
	}
	obs.set(true)
	later := now.Add(time.Minute)
	clock.Store(&later)
	if err := s.ForwardPending(ctx); err == nil {
		t.Fatal("ForwardPending succeeded while scoring is down")
	}
	if n := pending(t, st); n != 2 {
		t.Fatalf("a failed retry removed records: %d left, want 2", n)
	}

	// A record from the earlier per-event layout is drained too.
	legacy := batch("legacy", 1, now)[0]
	b, _ := proto.Marshal(legacy)
	if err := st.Update(ctx, func(tx store.Txn) error {
		if err := tx.Set(eventKey(legacy), b, 0); err != nil {
			return err
		}
		return tx.Set(append([]byte(legacyMarkPrefix), eventKey(legacy)...), nil, 0)
	}); err != nil {
		t.Fatal(err)
	}
	// A record whose events expired, one whose event cannot be read and one
	// that cannot be read itself are dropped without blocking the rest.
	if err := st.Update(ctx, func(tx store.Txn) error {
		if err := tx.Set([]byte("intake/event/-/bad/1/x"), []byte{0xff, 0xff}, 0); err != nil {
			return err
		}
		if err := tx.Set([]byte(pendingPrefix+"0000000000000000000000gone"), encodeKeys([][]byte{[]byte("intake/event/-/gone/1/x")}), 0); err != nil {
			return err
		}
		if err := tx.Set([]byte(pendingPrefix+"0000000000000000000000junk"), []byte{0x05, 'a'}, 0); err != nil {
			return err
		}
		return tx.Set([]byte(pendingPrefix+"00000000000000000000000bad"), encodeKeys([][]byte{[]byte("intake/event/-/bad/1/x")}), 0)
	}); err != nil {
		t.Fatal(err)
	}

	obs.set(false)
	if err := s.ForwardPending(ctx); err != nil {
		t.Fatal(err)
	}
	if n := pending(t, st); n != 0 {
		t.Fatalf("%d forwarding records after recovery, want 0", n)
	}
	var want []string
	for _, p := range []string{"a", "b", "c", "legacy"} {
		n := map[string]int{"a": 5, "b": 150, "c": 150, "legacy": 1}[p]
		for _, e := range batch(p, n, now) {
			want = append(want, e.GetEventId())
		}
	}
	slices.Sort(want)
	if got := obs.seen(); !slices.Equal(got, want) {
		t.Fatalf("scoring saw %d events, want each of %d exactly once", len(got), len(want))
	}
}

func TestForwardingRecordEncoding(t *testing.T) {
	tests := []struct {
		name string
		keys [][]byte
	}{
		{"one", [][]byte{[]byte("intake/event/-/u/1/a")}},
		{"several", [][]byte{[]byte("k1"), []byte(""), make([]byte, 300)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeKeys(encodeKeys(tt.keys))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, tt.keys, func(a, b []byte) bool { return string(a) == string(b) }) {
				t.Fatalf("round trip = %q, want %q", got, tt.keys)
			}
		})
	}
	for _, bad := range [][]byte{{0x05, 'a'}, {0xff}} {
		if _, err := decodeKeys(bad); err == nil {
			t.Errorf("decodeKeys(%x) accepted a corrupt record", bad)
		}
	}
}

// TestRefusedRecordDoesNotBlockTheQueue: a pending record whose events
// scoring refuses as invalid is dropped from the queue (the events stay
// stored); the records behind it are forwarded.
func TestRefusedRecordDoesNotBlockTheQueue(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	st := storetest.Memory(t, Keyspaces()...)
	obs := &flakyObserver{down: true}
	clock := now
	s, err := New(Options{Store: st, Observer: obs, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"x", "y"} {
		if _, err := s.Store(ctx, batch(p, 3, now)); err != nil {
			t.Fatal(err)
		}
	}
	obs.mu.Lock()
	obs.down, obs.refuse = false, "x"
	obs.mu.Unlock()
	clock = now.Add(time.Minute)
	if err := s.ForwardPending(ctx); err != nil {
		t.Fatalf("ForwardPending: %v", err)
	}
	if n := pending(t, st); n != 0 {
		t.Fatalf("%d records left, want 0", n)
	}
	if got := obs.seen(); len(got) != 3 || !strings.HasPrefix(got[0], "y") {
		t.Fatalf("scoring got %v, want the three y events", got)
	}
	if resp, err := s.ListEvents(ctx, &intakev1.ListEventsRequest{UserId: "u0"}); err != nil || len(resp.GetEvents()) == 0 {
		t.Fatalf("the refused events are no longer stored: %v, %v", resp, err)
	}
}
