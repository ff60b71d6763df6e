package notify_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/services/notify"
	"google.golang.org/protobuf/types/known/timestamppb"
)

type pushEvent struct {
	Type string             `json:"type"`
	Data notify.PushMessage `json:"data"`
}

func TestPushCarriesTheNumberChallenge(t *testing.T) {
	clk := newClock()
	_, secret := testSecret(t)
	h := newHook(t, secret, clk)
	s := newService(t, newStore(t), clk, notify.Options{Channels: []notify.Channel{
		&notify.Push{Provider: &notify.WebhookPushProvider{URL: h.srv.URL, Secret: secret, Now: clk.Now}, Now: clk.Now},
	}})
	notifyOK(t, s, &notifyv1.NotifyRequest{
		Kind: notifyv1.Kind_KIND_PUSH, IdempotencyKey: "push:a1", UserId: "alice", Tenant: "acme", DeviceId: "phone-1",
		DecisionId: "dec-1", NumberChallenge: "47", Time: timestamppb.New(clk.Now()),
	})
	notifyOK(t, s, &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_PUSH, IdempotencyKey: "push:a2", UserId: "alice", Time: timestamppb.New(clk.Now())})
	deliverDue(t, s)
	_, bodies := h.received()
	if len(bodies) != 2 {
		t.Fatalf("provider received %d pushes, want 2", len(bodies))
	}
	var first, second pushEvent
	_ = json.Unmarshal(bodies[0], &first)
	_ = json.Unmarshal(bodies[1], &second)
	if first.Data.DecisionID != "dec-1" { // both were due at the same moment
		first, second = second, first
	}
	if first.Type != "push.requested" || first.Data.NumberChallenge != "47" || first.Data.DeviceID != "phone-1" || first.Data.Tenant != "acme" ||
		!first.Data.ExpireTime.Equal(clk.Now().Add(5*time.Minute)) {
		t.Fatalf("number-matching push %+v", first)
	}
	if second.Data.NumberChallenge != "" || second.Data.Kind != "push" {
		t.Fatalf("plain push %+v", second)
	}
}

func TestPushPastItsLifetimeIsDropped(t *testing.T) {
	clk := newClock()
	h := newHook(t, nil, clk)
	h.respond = func(n int, w http.ResponseWriter, _ *http.Request) bool {
		http.Error(w, "provider down", http.StatusBadGateway)
		return true
	}
	s := newService(t, newStore(t), clk, notify.Options{
		Channels:    []notify.Channel{&notify.Push{Provider: &notify.WebhookPushProvider{URL: h.srv.URL}, TTL: time.Minute, Now: clk.Now}},
		BaseBackoff: 40 * time.Second, MaxBackoff: 40 * time.Second,
	})
	notifyOK(t, s, &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_PUSH, IdempotencyKey: "push:late", UserId: "alice", Time: timestamppb.New(clk.Now())})
	deliverDue(t, s)
	clk.Advance(time.Minute)
	deliverDue(t, s)
	dead := list(t, s, notifyv1.Status_STATUS_DEAD)
	if len(dead) != 1 || !strings.Contains(dead[0].GetLastError(), "expired") || h.count() != 1 {
		t.Fatalf("dead %v after %d provider calls, want the expired push dropped after 1", dead, h.count())
	}
}

func TestSlackIncomingWebhook(t *testing.T) {
	cases := []struct {
		name   string
		status int
		want   notifyv1.Status
	}{
		{"accepted", http.StatusOK, notifyv1.Status_STATUS_DELIVERED},
		{"webhook revoked: permanent", http.StatusNotFound, notifyv1.Status_STATUS_DEAD},
		{"rate limited by Slack: retried", http.StatusTooManyRequests, notifyv1.Status_STATUS_PENDING},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var got map[string]any
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				_ = json.Unmarshal(b, &got)
				mu.Unlock()
				if r.Header.Get("Content-Type") != "application/json" {
					http.Error(w, "invalid_payload", http.StatusBadRequest)
					return
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte("ok"))
			}))
			defer srv.Close()
			clk := newClock()
			logs := &logBuffer{}
			secretPath := "/services/T000/B000/XXXXSECRETXXXX"
			s := newService(t, newStore(t), clk, notify.Options{Channels: []notify.Channel{&notify.Slack{URL: srv.URL + secretPath}}, Logger: logs.logger()})
			req := alert("deny:1", "<alice>", clk.Now())
			notifyOK(t, s, req)
			deliverDue(t, s)
			d := list(t, s, notifyv1.Status_STATUS_UNSPECIFIED)
			if len(d) != 1 || d[0].GetStatus() != tc.want {
				t.Fatalf("delivery %v, want %v", d, tc.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if text, _ := got["text"].(string); text != "Push denied for &lt;alice&gt;" {
				t.Fatalf("text %q", got["text"])
			}
			if blocks, _ := got["blocks"].([]any); len(blocks) != 3 {
				t.Fatalf("blocks %v", got["blocks"])
			}
			if strings.Contains(logs.String(), "SECRET") || strings.Contains(d[0].GetLastError(), "SECRET") {
				t.Fatalf("the Slack webhook path leaked: %s / %s", logs.String(), d[0].GetLastError())
			}
		})
	}
}

func TestSecretsNeverReachTheLogWhenAReceiverIsDown(t *testing.T) {
	clk := newClock()
	logs := &logBuffer{}
	secretText, secret := testSecret(t)
	s := newService(t, newStore(t), clk, notify.Options{
		Channels: []notify.Channel{
			&notify.Slack{URL: "http://127.0.0.1:1/services/T1/B1/TOPSECRETPATH"},
			&notify.Webhook{ChannelName: "soc", URL: "http://127.0.0.1:1/hook", Secret: secret},
		},
		Logger: logs.logger(), MaxAttempts: 2,
	})
	notifyOK(t, s, alert("deny:1", "alice", clk.Now()))
	settle(t, s, clk, 5)
	out := logs.String()
	if !strings.Contains(out, "dead-lettered") {
		t.Fatalf("no dead letter logged:\n%s", out)
	}
	for _, secret := range []string{"TOPSECRETPATH", secretText, strings.TrimPrefix(secretText, "whsec_")} {
		if strings.Contains(out, secret) {
			t.Fatalf("log contains a secret:\n%s", out)
		}
	}
}
