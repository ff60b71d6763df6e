package notify_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/services/notify"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// captured is one request a webhook receiver got: its body and headers.
type captured struct {
	body   []byte
	header http.Header
}

// capture is a receiver that records what it gets and verifies nothing:
// the official library does that afterwards.
func capture(t *testing.T) (*httptest.Server, func() []captured) {
	var mu sync.Mutex
	var got []captured
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, captured{body: b, header: r.Header.Clone()})
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []captured {
		mu.Lock()
		defer mu.Unlock()
		return append([]captured(nil), got...)
	}
}

// TestWebhookSignaturesVerifyWithTheStandardWebhooksLibrary delivers a SOC
// alert and a push with notify's own code and checks each request with the
// official Standard Webhooks library, as a receiver would; then plays what
// an attacker on the path would send (an edited body, a replay an hour
// late, another message's id, a signature made with another secret) and
// requires the library to refuse each.
func TestWebhookSignaturesVerifyWithTheStandardWebhooksLibrary(t *testing.T) {
	secret, key := testSecret(t)
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	otherSecret, _ := testSecret(t)
	other, err := standardwebhooks.NewWebhook(otherSecret)
	if err != nil {
		t.Fatal(err)
	}
	srv, got := capture(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The library checks timestamps against the real clock: these
	// deliveries are made with it, one of them an hour in the past.
	late := func() time.Time { return time.Now().Add(-time.Hour) }
	alert := &notifyv1.Delivery{DeliveryId: "dlv-1", Channel: "webhook", Notification: &notifyv1.NotifyRequest{
		Kind: notifyv1.Kind_KIND_SOC_ALERT, IdempotencyKey: "deny:1", UserId: "alice", DecisionId: "dec-1",
		Title: "Push bombing blocked", Message: "5 pushes in 10 minutes", Time: timestamppb.Now(),
		Attributes: map[string]string{"signals": "PUSH_BURST"},
	}, Incident: &notifyv1.Incident{IncidentId: "inc-1", Count: 3}}
	for _, w := range []*notify.Webhook{{URL: srv.URL, Secret: key}, {URL: srv.URL, Secret: key, Now: late}} {
		if err := w.Deliver(ctx, alert); err != nil {
			t.Fatal(err)
		}
	}
	push := &notify.WebhookPushProvider{URL: srv.URL, Secret: key}
	if err := push.Send(ctx, notify.PushMessage{ID: "dlv-2", Kind: "push", UserID: "alice", Title: "Sign in?", Body: "Approve the sign-in", NumberChallenge: "42"}); err != nil {
		t.Fatal(err)
	}
	reqs := got()
	if len(reqs) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(reqs))
	}
	fresh, stale, pushed := reqs[0], reqs[1], reqs[2]

	for name, r := range map[string]captured{"alert": fresh, "push": pushed} {
		if err := wh.Verify(r.body, r.header); err != nil {
			t.Fatalf("%s: the official library refuses notify's signature: %v", name, err)
		}
	}
	if fresh.header.Get(standardwebhooks.HeaderWebhookID) != "dlv-1.3" {
		t.Fatalf("webhook-id %q, want the delivery id and the incident count", fresh.header.Get(standardwebhooks.HeaderWebhookID))
	}

	edited := append([]byte(nil), fresh.body...)
	edited[len(edited)/2] ^= 0x01
	swappedID := fresh.header.Clone()
	swappedID.Set(standardwebhooks.HeaderWebhookID, pushed.header.Get(standardwebhooks.HeaderWebhookID))
	// A replay made to look fresh: the signature covers the timestamp.
	movedTime := stale.header.Clone()
	movedTime.Set(standardwebhooks.HeaderWebhookTimestamp, fresh.header.Get(standardwebhooks.HeaderWebhookTimestamp))
	attacks := []struct {
		name   string
		wh     *standardwebhooks.Webhook
		body   []byte
		header http.Header
		want   error
	}{
		{"edited body", wh, edited, fresh.header, standardwebhooks.ErrNoMatchingSignature},
		{"another delivery's body", wh, pushed.body, fresh.header, standardwebhooks.ErrNoMatchingSignature},
		{"another message id", wh, fresh.body, swappedID, standardwebhooks.ErrNoMatchingSignature},
		{"late delivery with a fresh timestamp", wh, stale.body, movedTime, standardwebhooks.ErrNoMatchingSignature},
		{"an hour late", wh, stale.body, stale.header, standardwebhooks.ErrMessageTooOld},
		{"another secret", other, fresh.body, fresh.header, standardwebhooks.ErrNoMatchingSignature},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			if err := a.wh.Verify(a.body, a.header); !errors.Is(err, a.want) {
				t.Fatalf("Verify: %v, want %v", err, a.want)
			}
		})
	}
	// What made the late delivery fail is its age alone: its signature
	// is notify's own.
	if err := wh.VerifyIgnoringTimestamp(stale.body, stale.header); err != nil {
		t.Fatalf("the late delivery's signature: %v", err)
	}
}
