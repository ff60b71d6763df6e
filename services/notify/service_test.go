package notify_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/services/notify"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestWebhookReceiversThatFailTimeOutOrAreDown(t *testing.T) {
	cases := []struct {
		name string
		// setup returns the receiver URL and a function run after the first
		// delivery round (to bring a receiver back).
		respond    func(n int, w http.ResponseWriter, r *http.Request) bool
		down       bool
		duplicates bool // at-least-once: a receiver that got a request but whose answer was lost
	}{
		{name: "answers 200"},
		{name: "fails with 503 three times", respond: func(n int, w http.ResponseWriter, _ *http.Request) bool {
			if n <= 3 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return true
			}
			return false
		}},
		{name: "times out twice", duplicates: true, respond: func(n int, w http.ResponseWriter, r *http.Request) bool {
			if n <= 2 {
				<-r.Context().Done() // the client gives up; the request did arrive
				return true
			}
			return false
		}},
		{name: "is down and comes back", down: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			secretText, secret := testSecret(t)
			h := &hook{t: t, secret: secret, clk: clk, bodies: map[string][]byte{}, respond: tc.respond}
			srv := httptest.NewUnstartedServer(h)
			t.Cleanup(srv.Close)
			url := ""
			if tc.down {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				url = "http://" + l.Addr().String()
				_ = l.Close()
			} else {
				srv.Start()
				url = srv.URL
			}
			key, err := notify.DecodeSecret(secretText)
			if err != nil {
				t.Fatal(err)
			}
			s := newService(t, newStore(t), clk, notify.Options{
				Channels:        []notify.Channel{&notify.Webhook{URL: url, Secret: key, Now: clk.Now}},
				DeliveryTimeout: 200 * time.Millisecond, MaxAttempts: 10,
			})
			const n = 4
			for i := range n {
				notifyOK(t, s, alert(fmt.Sprint("deny:", i), fmt.Sprint("user-", i), clk.Now()))
			}
			deliverDue(t, s)
			if tc.down {
				if got := len(list(t, s, notifyv1.Status_STATUS_PENDING)); got != n {
					t.Fatalf("receiver down: %d pending, want %d", got, n)
				}
				l, err := net.Listen("tcp", strings.TrimPrefix(url, "http://"))
				if err != nil {
					t.Fatalf("bring the receiver back: %v", err)
				}
				srv.Listener = l
				srv.Start()
			}
			settle(t, s, clk, 30)
			if got := len(list(t, s, notifyv1.Status_STATUS_DELIVERED)); got != n {
				t.Fatalf("%d delivered, want %d", got, n)
			}
			if h.unique() != n {
				t.Fatalf("receiver saw %d distinct messages, want %d", h.unique(), n)
			}
			ids, _ := h.received()
			if !tc.duplicates && len(ids) != n {
				t.Fatalf("receiver accepted %d messages for %d notifications: %v", len(ids), n, ids)
			}
			if h.bad() != 0 {
				t.Fatalf("%d requests failed signature verification", h.bad())
			}
		})
	}
}

func TestDeadLetterAfterMaxAttemptsWithJitteredBackoff(t *testing.T) {
	clk := newClock()
	h := newHook(t, nil, clk)
	h.respond = func(int, http.ResponseWriter, *http.Request) bool { return false }
	h.respond = func(_ int, w http.ResponseWriter, _ *http.Request) bool {
		http.Error(w, "no", http.StatusInternalServerError)
		return true
	}
	s := newService(t, newStore(t), clk, notify.Options{
		Channels:    []notify.Channel{&notify.Webhook{URL: h.srv.URL, Now: clk.Now}},
		MaxAttempts: 4, BaseBackoff: time.Second, MaxBackoff: 3 * time.Second,
	})
	notifyOK(t, s, alert("deny:x", "mallory", clk.Now()))
	for attempt := 1; attempt < 4; attempt++ {
		deliverDue(t, s)
		p := list(t, s, notifyv1.Status_STATUS_PENDING)
		if len(p) != 1 || int(p[0].GetAttempts()) != attempt {
			t.Fatalf("after attempt %d: pending %v", attempt, p)
		}
		wait := p[0].GetNextAttemptTime().AsTime().Sub(clk.Now())
		full := min(time.Second<<(attempt-1), 3*time.Second)
		if wait < full/2 || wait > full {
			t.Fatalf("attempt %d: retry in %v, want within [%v, %v]", attempt, wait, full/2, full)
		}
		if p[0].GetLastError() == "" {
			t.Fatal("no last error recorded")
		}
		clk.Advance(wait)
	}
	deliverDue(t, s)
	dead := list(t, s, notifyv1.Status_STATUS_DEAD)
	if len(dead) != 1 || dead[0].GetAttempts() != 4 || dead[0].GetNextAttemptTime() != nil {
		t.Fatalf("dead letters %v", dead)
	}
	if h.count() != 4 {
		t.Fatalf("receiver got %d requests, want 4", h.count())
	}
}

func TestOutboxSurvivesRestart(t *testing.T) {
	clk := newClock()
	st := newStore(t)
	h := newHook(t, nil, clk)
	ch := []notify.Channel{&notify.Webhook{URL: h.srv.URL}}
	first := newService(t, st, clk, notify.Options{Channels: ch})
	resp := notifyOK(t, first, alert("deny:r", "rita", clk.Now()))
	// The first process stops before its worker ran; the next one delivers.
	second := newService(t, st, clk, notify.Options{Channels: ch})
	dup := notifyOK(t, second, alert("deny:r", "rita", clk.Now()))
	if !dup.GetDuplicate() || strings.Join(dup.GetDeliveryIds(), ",") != strings.Join(resp.GetDeliveryIds(), ",") {
		t.Fatalf("idempotency key not kept across restart: %v vs %v", dup, resp)
	}
	deliverDue(t, second)
	if h.unique() != 1 {
		t.Fatalf("receiver saw %d messages, want 1", h.unique())
	}
}

func TestIncidentFoldsAlertsAndUpdatesWhileTheAttackGoesOn(t *testing.T) {
	clk := newClock()
	_, secret := testSecret(t)
	h := newHook(t, secret, clk)
	s := newService(t, newStore(t), clk, notify.Options{
		Channels:       []notify.Channel{&notify.Webhook{URL: h.srv.URL, Secret: secret, Now: clk.Now}},
		IncidentWindow: 30 * time.Minute, UpdateInterval: 5 * time.Minute,
	})
	t0 := clk.Now()
	first := notifyOK(t, s, alert("deny:1", "alice", t0))
	if first.GetCoalesced() || first.GetIncidentId() == "" {
		t.Fatalf("first alert: %v", first)
	}
	deliverDue(t, s)
	for i := 2; i <= 5; i++ {
		clk.Set(t0.Add(time.Duration(i-1) * time.Minute))
		r := notifyOK(t, s, alert(fmt.Sprint("deny:", i), "alice", clk.Now()))
		if !r.GetCoalesced() || r.GetIncidentId() != first.GetIncidentId() {
			t.Fatalf("deny %d: %v, want folded into %s", i, r, first.GetIncidentId())
		}
		deliverDue(t, s) // nothing is due before the update interval
	}
	other := notifyOK(t, s, alert("deny:b1", "bob", clk.Now()))
	if other.GetIncidentId() == first.GetIncidentId() || other.GetCoalesced() {
		t.Fatalf("bob shares alice's incident: %v", other)
	}
	deliverDue(t, s)
	if got := h.unique(); got != 2 {
		t.Fatalf("before the update interval the receiver has %d alerts, want 2 (alice's first, bob's)", got)
	}
	clk.Set(t0.Add(5 * time.Minute))
	deliverDue(t, s)
	clk.Set(t0.Add(20 * time.Minute))
	deliverDue(t, s)
	_, bodies := h.received()
	type got struct {
		typ, user string
		count     int
	}
	var seen []got
	for _, b := range bodies {
		e := decodeEvent(t, b)
		seen = append(seen, got{e.Type, e.Data.Notification.UserID, e.Data.Incident.Count})
	}
	want := []got{{"alert.raised", "alice", 1}, {"alert.raised", "bob", 1}, {"alert.updated", "alice", 5}}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("alerts %v, want %v", seen, want)
	}
	last := decodeEvent(t, bodies[2])
	if !last.Data.Incident.LastTime.Equal(t0.Add(4*time.Minute)) || !last.Data.Incident.FirstTime.Equal(t0) {
		t.Fatalf("update incident times %+v", last.Data.Incident)
	}
	if last.Data.Notification.DecisionID != "dec-deny:5" {
		t.Fatalf("update names decision %s, want the latest", last.Data.Notification.DecisionID)
	}
	// After a quiet window a new attack is a new incident, alerted at once.
	clk.Set(t0.Add(45 * time.Minute))
	again := notifyOK(t, s, alert("deny:6", "alice", clk.Now()))
	if again.GetCoalesced() || again.GetIncidentId() == first.GetIncidentId() {
		t.Fatalf("after a quiet window: %v", again)
	}
	deliverDue(t, s)
	if h.unique() != 4 {
		t.Fatalf("receiver has %d alerts, want 4", h.unique())
	}
}

// TestFoldedAlertIsANewMessage: an alert whose first attempt failed and
// into which another denial was folded goes out under a new message id, so
// a receiver that drops repeated ids does not drop the update.
func TestFoldedAlertIsANewMessage(t *testing.T) {
	clk := newClock()
	h := newHook(t, nil, clk)
	var firstID string
	h.respond = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n == 1 {
			firstID = r.Header.Get("webhook-id")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	s := newService(t, newStore(t), clk, notify.Options{Channels: []notify.Channel{&notify.Webhook{URL: h.srv.URL}}})
	notifyOK(t, s, alert("deny:1", "alice", clk.Now()))
	deliverDue(t, s) // fails: the receiver is busy
	notifyOK(t, s, alert("deny:2", "alice", clk.Now()))
	settle(t, s, clk, 5)
	ids, bodies := h.received()
	if firstID == "" || len(ids) != 1 || ids[0] != firstID+".2" || decodeEvent(t, bodies[0]).Data.Incident.Count != 2 {
		t.Fatalf("first attempt %q, then %q: want the updated alert as %q", firstID, ids, firstID+".2")
	}
}

func TestDenialDuringAnInFlightAlertGetsAFollowUp(t *testing.T) {
	clk := newClock()
	h := newHook(t, nil, clk)
	var s *notify.Service
	h.respond = func(n int, _ http.ResponseWriter, _ *http.Request) bool {
		if n == 1 { // a denial arrives while the first alert is on the wire
			if _, err := s.Notify(context.Background(), alert("deny:2", "alice", clk.Now())); err != nil {
				t.Error(err)
			}
		}
		return false
	}
	s = newService(t, newStore(t), clk, notify.Options{
		Channels: []notify.Channel{&notify.Webhook{URL: h.srv.URL}}, UpdateInterval: 5 * time.Minute,
	})
	notifyOK(t, s, alert("deny:1", "alice", clk.Now()))
	deliverDue(t, s)
	p := list(t, s, notifyv1.Status_STATUS_PENDING)
	if len(p) != 1 || p[0].GetIncident().GetCount() != 2 {
		t.Fatalf("pending follow-up %v, want one with count 2", p)
	}
	settle(t, s, clk, 5)
	_, bodies := h.received()
	if len(bodies) != 2 || decodeEvent(t, bodies[0]).Data.Incident.Count != 1 || decodeEvent(t, bodies[1]).Data.Incident.Count != 2 {
		t.Fatalf("received %q", bodies)
	}
}

func TestPerChannelRateLimit(t *testing.T) {
	clk := newClock()
	alerts := newHook(t, nil, clk)
	pushes := newHook(t, nil, clk)
	s := newService(t, newStore(t), clk, notify.Options{
		Channels: []notify.Channel{
			&notify.Webhook{URL: alerts.srv.URL},
			&notify.Push{Provider: &notify.WebhookPushProvider{URL: pushes.srv.URL}, Now: clk.Now},
		},
		RateLimits: map[string]notify.RateLimit{"webhook": {Every: time.Minute, Burst: 2}},
	})
	for i := range 5 {
		notifyOK(t, s, alert(fmt.Sprint("deny:", i), fmt.Sprint("user-", i), clk.Now()))
		notifyOK(t, s, &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_PUSH, IdempotencyKey: fmt.Sprint("push:", i), UserId: fmt.Sprint("user-", i), Time: timestamppb.New(clk.Now())})
	}
	deliverDue(t, s)
	if alerts.unique() != 2 || pushes.unique() != 5 {
		t.Fatalf("first round: %d alerts (want the burst of 2), %d pushes (want all 5, never limited)", alerts.unique(), pushes.unique())
	}
	for _, d := range list(t, s, notifyv1.Status_STATUS_PENDING) {
		if d.GetAttempts() != 0 {
			t.Fatalf("a rate-limited delivery counted an attempt: %v", d)
		}
	}
	clk.Advance(time.Minute)
	deliverDue(t, s)
	if alerts.unique() != 3 {
		t.Fatalf("after one interval %d alerts, want 3", alerts.unique())
	}
	settle(t, s, clk, 10)
	if alerts.unique() != 5 {
		t.Fatalf("in the end %d alerts, want 5", alerts.unique())
	}
}

func TestRateLimitIsSharedByReplicasAndSurvivesARestart(t *testing.T) {
	clk := newClock()
	alerts := newHook(t, nil, clk)
	st := newStore(t)
	opts := func() notify.Options {
		return notify.Options{Channels: []notify.Channel{&notify.Webhook{URL: alerts.srv.URL}},
			RateLimits: map[string]notify.RateLimit{"webhook": {Every: time.Minute, Burst: 2}}}
	}
	a, b := newService(t, st, clk, opts()), newService(t, st, clk, opts())
	for i := range 6 {
		notifyOK(t, []*notify.Service{a, b}[i%2], alert(fmt.Sprint("deny:", i), fmt.Sprint("user-", i), clk.Now()))
	}
	deliverDue(t, a)
	deliverDue(t, b)
	if alerts.unique() != 2 {
		t.Fatalf("two replicas delivered %d alerts, want the one shared burst of 2", alerts.unique())
	}
	// A replica started later spends from the same, empty bucket.
	deliverDue(t, newService(t, st, clk, opts()))
	if alerts.unique() != 2 {
		t.Fatalf("a restarted replica delivered %d alerts in all, want still 2", alerts.unique())
	}
	clk.Advance(time.Minute)
	deliverDue(t, b)
	deliverDue(t, a)
	if alerts.unique() != 3 {
		t.Fatalf("after one interval %d alerts, want 3", alerts.unique())
	}
}

// slowChannel counts sends; each waits until release is closed. It carries
// pushes, or SOC alerts when alerts is set.
type slowChannel struct {
	sends   atomic.Int32
	entered chan struct{}
	release chan struct{}
	alerts  bool
}

func (c *slowChannel) Name() string { return "slow" }
func (c *slowChannel) Accepts(k notifyv1.Kind) bool {
	if c.alerts {
		return k == notifyv1.Kind_KIND_SOC_ALERT
	}
	return k == notifyv1.Kind_KIND_PUSH
}
func (c *slowChannel) Deliver(ctx context.Context, _ *notifyv1.Delivery) error {
	c.sends.Add(1)
	c.entered <- struct{}{}
	<-c.release
	return nil
}

// TestReplicasSendADeliveryOnce: two notify replicas on one store scan the
// same due delivery at the same time; one claims it, the other leaves it,
// and a stale due entry of a finished delivery never sends it again.
func TestReplicasSendADeliveryOnce(t *testing.T) {
	clk := newClock()
	st := newStore(t)
	ch := &slowChannel{entered: make(chan struct{}, 4), release: make(chan struct{})}
	a := newService(t, st, clk, notify.Options{Channels: []notify.Channel{ch}})
	b := newService(t, st, clk, notify.Options{Channels: []notify.Channel{ch}})
	notifyOK(t, a, &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_PUSH, IdempotencyKey: "push:1", UserId: "u", Time: timestamppb.New(clk.Now())})

	errs := make(chan error, 2)
	go func() { errs <- a.DeliverDue(context.Background()) }()
	<-ch.entered // a is sending
	go func() { errs <- b.DeliverDue(context.Background()) }()
	// b finds nothing to claim and returns while a is still sending.
	select {
	case err := <-errs:
		if err != nil {
			t.Fatal(err)
		}
	case <-ch.entered:
		close(ch.release)
		t.Fatal("the second replica sent the delivery the first was sending")
	}
	close(ch.release)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if n := ch.sends.Load(); n != 1 {
		t.Fatalf("%d sends of one delivery by two replicas, want 1", n)
	}
	// Later rounds on both replicas send nothing more.
	clk.Advance(time.Hour)
	deliverDue(t, a)
	deliverDue(t, b)
	if n := ch.sends.Load(); n != 1 {
		t.Fatalf("%d sends after later rounds, want 1", n)
	}
	if got := list(t, a, notifyv1.Status_STATUS_DELIVERED); len(got) != 1 || got[0].GetAttempts() != 1 {
		t.Fatalf("delivered: %v", got)
	}
}

// TestHangingReceiverDoesNotHoldUpPushes: a SOC webhook that hangs keeps
// one attempt busy; the push queued behind it still goes out.
func TestHangingReceiverDoesNotHoldUpPushes(t *testing.T) {
	clk := newClock()
	pushes := newHook(t, nil, clk)
	soc := &slowChannel{entered: make(chan struct{}, 4), release: make(chan struct{}), alerts: true}
	s := newService(t, newStore(t), clk, notify.Options{Channels: []notify.Channel{soc,
		&notify.Push{Provider: &notify.WebhookPushProvider{URL: pushes.srv.URL}, Now: clk.Now}}})
	notifyOK(t, s, alert("deny:1", "u1", clk.Now()))
	clk.Advance(time.Second) // the push is due after the alert
	notifyOK(t, s, &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_PUSH, IdempotencyKey: "push:1", UserId: "u2", Time: timestamppb.New(clk.Now())})
	done := make(chan error, 1)
	go func() { done <- s.DeliverDue(context.Background()) }()
	<-soc.entered // the alert hangs
	for range 2000 {
		if pushes.unique() == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if pushes.unique() != 1 {
		close(soc.release)
		t.Fatal("the push waited behind a hanging SOC webhook")
	}
	close(soc.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// rateless fails every transaction that reads a rate-limit bucket.
type rateless struct{ store.Store }

type ratelessTxn struct{ store.Txn }

func (r rateless) Update(ctx context.Context, fn func(tx store.Txn) error) error {
	return r.Store.Update(ctx, func(tx store.Txn) error { return fn(ratelessTxn{tx}) })
}

func (t ratelessTxn) Get(key []byte) ([]byte, error) {
	if strings.HasPrefix(string(key), "notify/rate/") {
		return nil, errors.New("store unavailable")
	}
	return t.Txn.Get(key)
}

func TestRateLimitStoreFailureDoesNotHoldUpDeliveries(t *testing.T) {
	clk := newClock()
	alerts := newHook(t, nil, clk)
	s := newService(t, rateless{newStore(t)}, clk, notify.Options{
		Channels:   []notify.Channel{&notify.Webhook{URL: alerts.srv.URL}},
		RateLimits: map[string]notify.RateLimit{"webhook": {Every: time.Minute, Burst: 1}},
	})
	for i := range 3 {
		notifyOK(t, s, alert(fmt.Sprint("deny:", i), fmt.Sprint("user-", i), clk.Now()))
	}
	deliverDue(t, s)
	if alerts.unique() != 3 {
		t.Fatalf("%d alerts delivered while the bucket could not be read, want all 3", alerts.unique())
	}
}

func TestNotifyValidation(t *testing.T) {
	s := newService(t, newStore(t), newClock(), notify.Options{})
	cases := []struct {
		name  string
		req   *notifyv1.NotifyRequest
		field string
	}{
		{"no kind", &notifyv1.NotifyRequest{IdempotencyKey: "k"}, "kind"},
		{"no key", &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_SOC_ALERT}, "idempotency_key"},
		{"bad email", &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_USER_NOTICE, IdempotencyKey: "k", UserEmail: "not an address"}, "user_email"},
		{"bad challenge", &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_PUSH, IdempotencyKey: "k", NumberChallenge: "4a"}, "number_challenge"},
		{"security event without type", &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_SECURITY_EVENT, IdempotencyKey: "k", UserId: "u", SecurityEvent: &notifyv1.SecurityEvent{}}, "security_event.type"},
		{"security event on an alert", &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_SOC_ALERT, IdempotencyKey: "k", SecurityEvent: &notifyv1.SecurityEvent{}}, "security_event"},
		{"assurance change without level", &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_SECURITY_EVENT, IdempotencyKey: "k", UserId: "u",
			SecurityEvent: &notifyv1.SecurityEvent{Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_ASSURANCE_LEVEL_CHANGE}}, "security_event.current_level"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Notify(context.Background(), tc.req)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("err %v, want InvalidArgument naming %s", err, tc.field)
			}
		})
	}
}

func TestDuplicateChannelNamesAreRejected(t *testing.T) {
	_, err := notify.New(notify.Options{Store: newStore(t), Channels: []notify.Channel{&notify.Webhook{URL: "http://a"}, &notify.Webhook{URL: "http://b"}}})
	if err == nil {
		t.Fatal("two channels named webhook were accepted")
	}
}

func TestAlertsFallBackToTheLogWhenNoChannelCarriesThem(t *testing.T) {
	clk := newClock()
	logs := &logBuffer{}
	s := newService(t, newStore(t), clk, notify.Options{Logger: logs.logger(),
		Channels: []notify.Channel{&notify.Push{Provider: &notify.WebhookPushProvider{URL: "http://127.0.0.1:1"}}}})
	resp := notifyOK(t, s, alert("deny:1", "alice", clk.Now()))
	deliverDue(t, s)
	if len(resp.GetDeliveryIds()) != 1 || !strings.Contains(logs.String(), `"decision_id":"dec-deny:1"`) {
		t.Fatalf("alert %v not logged:\n%s", resp, logs.String())
	}
}
