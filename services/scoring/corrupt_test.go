package scoring

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
	"github.com/pushbackhq/pushback/services/scoring/engine"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestUnreadableStateIsReplaced: a stored state that does not decode is
// replaced by a new one, so the user is protected again at once instead of
// every decision falling to its failure mode.
func TestUnreadableStateIsReplaced(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	st := storetest.Memory(t)
	s := New(Options{Store: st, Now: func() time.Time { return now }})
	if err := st.Update(ctx, func(tx store.Txn) error {
		return tx.Set(userKey("acme", "gina"), []byte{0xde, 0xad, 0xbe, 0xef}, 0)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRisk(ctx, &scoringv1.GetRiskRequest{Tenant: "acme", UserId: "gina"}); err != nil {
		t.Fatalf("GetRisk over an unreadable state: %v", err)
	}
	if _, err := s.Observe(ctx, &scoringv1.ObserveRequest{Events: []*eventv1.AuthEvent{{EventId: "e1", Tenant: "acme", UserId: "gina",
		Type: eventv1.EventType_EVENT_TYPE_PUSH_DENIED, Time: timestamppb.New(now), Factor: eventv1.Factor_FACTOR_PUSH}}}); err != nil {
		t.Fatalf("Observe over an unreadable state: %v", err)
	}
	var last *scoringv1.RiskAssessment
	for i := range 5 {
		resp, err := s.Assess(ctx, &scoringv1.AssessRequest{Record: true, Attempt: &scoringv1.Attempt{
			AttemptId: fmt.Sprint("a", i), Tenant: "acme", UserId: "gina", Time: timestamppb.New(now.Add(time.Duration(i) * 10 * time.Second))}})
		if err != nil {
			t.Fatal(err)
		}
		last = resp.GetAssessment()
	}
	if !slices.ContainsFunc(last.GetSignals(), func(s *scoringv1.Signal) bool { return s.GetCode() == engine.SignalPushBurst }) {
		t.Fatalf("pushes after the reset are not counted: %v", last.GetSignals())
	}
}
