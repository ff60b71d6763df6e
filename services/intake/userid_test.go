package intake

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
	"github.com/pushbackhq/pushback/pkg/userid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// userObserver records what scoring is handed.
type userObserver struct {
	mu  sync.Mutex
	got []*eventv1.AuthEvent
}

func (o *userObserver) Observe(_ context.Context, in *scoringv1.ObserveRequest, _ ...grpc.CallOption) (*scoringv1.ObserveResponse, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, in.GetEvents()...)
	return &scoringv1.ObserveResponse{}, nil
}

func pushTo(id, tenant, user string, at time.Time) *eventv1.AuthEvent {
	return &eventv1.AuthEvent{EventId: id, Tenant: tenant, UserId: user, Type: eventv1.EventType_EVENT_TYPE_PUSH_SENT, Time: timestamppb.New(at)}
}

// TestIngestedSpellingsLandOnOneUser: events logged under several spellings
// of a user are stored, and forwarded, under one; each keeps the spelling
// the identity provider logged. De-duplication is by event id alone.
func TestIngestedSpellingsLandOnOneUser(t *testing.T) {
	obs := &userObserver{}
	s, err := New(Options{Store: storetest.Memory(t, Keyspaces()...), Observer: obs,
		UserIDs: userid.NewRules(userid.Fold, map[string]userid.Rule{"acme": userid.Exact})})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)
	batch := []*eventv1.AuthEvent{
		pushTo("e1", "", "Bob@Example.com", t0),
		pushTo("e2", "", "bob@example.com", t0.Add(time.Second)),
		pushTo("e3", "", "ＢＯＢ@example.com", t0.Add(2*time.Second)),
		pushTo("e4", "acme", "Bob@Example.com", t0),
	}
	res, err := s.Store(ctx, batch)
	if err != nil || res.Accepted != 4 {
		t.Fatalf("Store = %+v, %v", res, err)
	}
	if batch[0].GetUserId() != "Bob@Example.com" || batch[0].GetRawUserId() != "" {
		t.Fatalf("the caller's event was modified: %v", batch[0])
	}
	// A re-delivery spelled differently is still the same event.
	if res, err := s.Store(ctx, []*eventv1.AuthEvent{pushTo("e1", "", "BOB@EXAMPLE.COM", t0)}); err != nil || res.Duplicates != 1 {
		t.Fatalf("re-delivery = %+v, %v", res, err)
	}
	list, err := s.ListEvents(ctx, &intakev1.ListEventsRequest{UserId: "Bob@example.COM"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"e1": "Bob@Example.com", "e2": "", "e3": "ＢＯＢ@example.com"}
	if len(list.GetEvents()) != len(want) {
		t.Fatalf("ListEvents = %v", list.GetEvents())
	}
	for _, e := range list.GetEvents() {
		if e.GetUserId() != "bob@example.com" || e.GetRawUserId() != want[e.GetEventId()] {
			t.Errorf("%s: user %q raw %q, want bob@example.com and %q", e.GetEventId(), e.GetUserId(), e.GetRawUserId(), want[e.GetEventId()])
		}
	}
	// acme's ids are case-sensitive: Bob is not bob there.
	acme, err := s.ListEvents(ctx, &intakev1.ListEventsRequest{Tenant: "acme", UserId: "bob@example.com"})
	if err != nil || len(acme.GetEvents()) != 0 {
		t.Fatalf("acme bob: %v, %v", acme.GetEvents(), err)
	}
	if acme, err = s.ListEvents(ctx, &intakev1.ListEventsRequest{Tenant: "acme", UserId: "Bob@Example.com"}); err != nil || len(acme.GetEvents()) != 1 {
		t.Fatalf("acme Bob: %v, %v", acme.GetEvents(), err)
	}
	// Scoring was handed the canonical ids.
	obs.mu.Lock()
	for _, e := range obs.got {
		if e.GetTenant() == "" && e.GetUserId() != "bob@example.com" {
			t.Errorf("scoring got %s as %q", e.GetEventId(), e.GetUserId())
		}
	}
	if len(obs.got) != 4 {
		t.Errorf("scoring got %d events, want 4", len(obs.got))
	}
	obs.mu.Unlock()
	// An id of white space only has no canonical form.
	_, err = s.Store(ctx, []*eventv1.AuthEvent{pushTo("e9", "", "\u3000", t0)})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("white-space user: %v", err)
	}
}

// TestOktaUserIDNotUTF8IsRefused: an Okta Event Hook whose user id holds a
// byte that is not UTF-8, or a lone surrogate escape, is answered 400
// naming the field, and nothing of it is stored (encoding/json would have
// stored the user as "bob\uFFFD").
func TestOktaUserIDNotUTF8IsRefused(t *testing.T) {
	s, _ := newTestService(t)
	h := AdapterHandler(direct{s}, AdapterOptions{})
	for name, user := range map[string]string{"raw byte": "bob\xff@example.com", "lone surrogate": `bob\udc00@example.com`} {
		hook := `{"eventType":"com.okta.event_hook","data":{"events":[` +
			`{"uuid":"ok-1","published":"2024-05-01T02:00:00Z","eventType":"system.push.send_factor_verify_push","actor":{"type":"User","alternateId":"alice@example.com"},"outcome":{"result":"SUCCESS"}},` +
			`{"uuid":"bad-1","published":"2024-05-01T02:00:00Z","eventType":"system.push.send_factor_verify_push","actor":{"type":"User","alternateId":"` + user + `"},"outcome":{"result":"SUCCESS"}}]}}`
		rec, body := do(t, h, http.MethodPost, "/v1/ingest/okta", []byte(hook), nil)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"data.events[1].actor.alternateId"`) ||
			!strings.Contains(rec.Body.String(), "not valid UTF-8") {
			t.Fatalf("%s: %d %v, want 400 naming data.events[1].actor.alternateId", name, rec.Code, body)
		}
	}
	list, err := s.ListEvents(context.Background(), &intakev1.ListEventsRequest{UserId: "alice@example.com"})
	if err != nil || len(list.GetEvents()) != 0 {
		t.Fatalf("a refused batch stored %v, %v", list.GetEvents(), err)
	}
}
