package intake

import (
	"context"
	"log/slog"
	"testing"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestPolledPageWithOneBadRecordStoresTheRest: a record intake refuses
// (here one without a user) must not hold its source's cursor for ever:
// the page's other events are stored and the page counts as saved.
func TestPolledPageWithOneBadRecordStoresTheRest(t *testing.T) {
	in, err := New(Options{Store: storetest.Memory(t)})
	if err != nil {
		t.Fatal(err)
	}
	at := timestamppb.New(time.Now().Add(-time.Minute))
	ev := func(id, user string) *eventv1.AuthEvent {
		return &eventv1.AuthEvent{EventId: id, UserId: user, Type: eventv1.EventType_EVENT_TYPE_PUSH_DENIED, Time: at, Source: &eventv1.Source{Idp: "okta"}}
	}
	save := saveTo(in, slog.New(slog.DiscardHandler))
	if err := save(context.Background(), []*eventv1.AuthEvent{ev("a", "amy"), ev("bad", ""), ev("c", "cal")}); err != nil {
		t.Fatalf("save: %v", err)
	}
	for _, u := range []string{"amy", "cal"} {
		resp, err := in.ListEvents(context.Background(), &intakev1.ListEventsRequest{UserId: u})
		if err != nil || len(resp.GetEvents()) != 1 {
			t.Fatalf("%s's events: %v, %v", u, resp.GetEvents(), err)
		}
	}
}
