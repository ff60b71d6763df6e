package notify

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// pushChannel counts sends; while block is set a send waits for its
// context to end and fails with it, as a send cut short by shutdown does.
type pushChannel struct {
	sends   atomic.Int32
	block   bool
	entered chan struct{}
}

func (c *pushChannel) Name() string                 { return "push" }
func (c *pushChannel) Accepts(k notifyv1.Kind) bool { return k == notifyv1.Kind_KIND_PUSH }
func (c *pushChannel) Deliver(ctx context.Context, _ *notifyv1.Delivery) error {
	if c.block {
		c.entered <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}
	c.sends.Add(1)
	return nil
}

func claimService(t *testing.T, ch Channel, now time.Time) (*Service, store.Store) {
	t.Helper()
	st := storetest.Memory(t, Keyspaces()...)
	s, err := New(Options{Store: st, Channels: []Channel{ch}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

func queuePush(t *testing.T, s *Service, now time.Time) string {
	t.Helper()
	resp, err := s.Notify(context.Background(), &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_PUSH, IdempotencyKey: "push:1", UserId: "u", Time: timestamppb.New(now)})
	if err != nil || len(resp.GetDeliveryIds()) != 1 {
		t.Fatalf("Notify = %v, %v", resp, err)
	}
	return resp.GetDeliveryIds()[0]
}

// TestStaleDueEntryNeverSends: a delivery has one due entry, the one its
// NextAttemptTime names; another entry for it (left by an expired lease, in
// this layout or the older one) is dropped, not sent a second time.
func TestStaleDueEntryNeverSends(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	ch := &pushChannel{}
	s, st := claimService(t, ch, now)
	id := queuePush(t, s, now)
	d, err := getDelivery(storeReader{context.Background(), st}, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(context.Background(), func(tx store.Txn) error {
		stale := proto.Clone(d).(*notifyv1.Delivery)
		stale.NextAttemptTime = timestamppb.New(now.Add(-time.Second))
		if err := tx.Set(dueKey(stale), dueValue(rankUrgent, id, ch.Name()), 0); err != nil {
			return err
		}
		stale.NextAttemptTime = timestamppb.New(now.Add(-2 * time.Second))
		return tx.Set(legacyDueKey(stale), []byte(id), 0)
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeliverDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := ch.sends.Load(); n != 1 {
		t.Fatalf("%d sends of a delivery with two due entries, want 1", n)
	}
	items, err := st.Scan(context.Background(), store.ScanOptions{Prefix: []byte("notify/due/")})
	if err != nil || len(items) != 0 {
		t.Fatalf("due entries left: %d, %v", len(items), err)
	}
}

// TestShutdownDoesNotSpendAnAttempt: a send cut short by shutdown is due
// again at once, and does not count toward the attempts that dead-letter.
func TestShutdownDoesNotSpendAnAttempt(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	ch := &pushChannel{block: true, entered: make(chan struct{}, 1)}
	s, _ := claimService(t, ch, now)
	id := queuePush(t, s, now)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.DeliverDue(ctx) }()
	<-ch.entered
	cancel() // shutdown
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	got, err := getDelivery(storeReader{context.Background(), s.opts.Store}, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetStatus() != notifyv1.Status_STATUS_PENDING || got.GetAttempts() != 0 || got.GetNextAttemptTime().AsTime().After(now) {
		t.Fatalf("after a shutdown mid-send: %v", got)
	}
	ch.block = false
	if err := s.DeliverDue(context.Background()); err != nil || ch.sends.Load() != 1 {
		t.Fatalf("after the restart: %d sends, %v", ch.sends.Load(), err)
	}
}

// storeReader reads outside a transaction.
type storeReader struct {
	ctx context.Context
	st  store.Store
}

func (r storeReader) Get(key []byte) ([]byte, error) { return r.st.Get(r.ctx, key) }
