package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
	"github.com/pushbackhq/pushback/services/intake"
	"github.com/pushbackhq/pushback/services/notify"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// observed records what intake forwards to scoring.
type observed struct {
	mu     sync.Mutex
	events []*eventv1.AuthEvent
}

func (o *observed) Observe(_ context.Context, in *scoringv1.ObserveRequest, _ ...grpc.CallOption) (*scoringv1.ObserveResponse, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, in.GetEvents()...)
	return &scoringv1.ObserveResponse{}, nil
}

// startIntake serves the real intake service over gRPC on 127.0.0.1.
func startIntake(t *testing.T) intakev1.IntakeServiceClient {
	t.Helper()
	in, err := intake.New(intake.Options{Store: storetest.Memory(t, intake.Keyspaces()...), Observer: &observed{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	in.Register(srv)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return intakev1.NewIntakeServiceClient(conn)
}

var formToken = regexp.MustCompile(`name="t" value="([^"]+)"`)

func TestReportLinkRoundTripEndsInAFraudReport(t *testing.T) {
	clk := newClock()
	ic := startIntake(t)
	notices := newHook(t, nil, clk)
	links := &notify.ReportLinks{Key: []byte("0123456789abcdef0123456789abcdef"), TTL: time.Hour}
	// The mesh serves the link; the notice carries its public address.
	var revokes []*notifyv1.NotifyRequest
	var revMu sync.Mutex
	web := httptest.NewServer(notify.ReportHandler(notify.ReportHandlerOptions{Links: links, Intake: ic, Now: clk.Now,
		Notifier: notifierFunc(func(r *notifyv1.NotifyRequest) { revMu.Lock(); revokes = append(revokes, r); revMu.Unlock() })}))
	defer web.Close()
	links.BaseURL = web.URL

	s := newService(t, newStore(t), clk, notify.Options{
		Channels:    []notify.Channel{&notify.Push{Provider: &notify.WebhookPushProvider{URL: notices.srv.URL}, Notices: true, Now: clk.Now}},
		ReportLinks: links, NoticeDelay: 2 * time.Minute,
	})
	var incident string
	for i, key := range []string{"deny:1", "deny:2", "deny:3", "deny:4"} {
		r := alert(key, "alice", clk.Now())
		r.Tenant = "acme"
		incident = notifyOK(t, s, r).GetIncidentId()
		if i < 3 {
			clk.Advance(20 * time.Second)
		}
	}
	deliverDue(t, s)
	if notices.unique() != 0 {
		t.Fatal("the notice went out before the burst was counted")
	}
	clk.Advance(2 * time.Minute)
	deliverDue(t, s)
	clk.Advance(5 * time.Minute)
	notifyOK(t, s, alert("deny:5", "alice", clk.Now())) // same incident: no second notice
	deliverDue(t, s)
	_, bodies := notices.received()
	if len(bodies) != 1 {
		t.Fatalf("user got %d notices, want 1", len(bodies))
	}
	var ev pushEvent
	if err := json.Unmarshal(bodies[0], &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "notice.created" || !strings.Contains(ev.Data.Title, "We blocked 4 push requests you did not start") || ev.Data.ReportURL == "" {
		t.Fatalf("notice %+v", ev)
	}

	// A link scanner's GET files nothing; it shows the one button.
	resp, err := http.Get(ev.Data.ReportURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	m := formToken.FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("GET %d:\n%s", resp.StatusCode, page)
	}
	if evs := events(t, ic, "acme", "alice"); len(evs) != 0 {
		t.Fatalf("GET recorded %v", evs)
	}
	// The click, twice: one FRAUD_REPORTED event.
	for range 2 {
		resp, err = http.PostForm(web.URL+notify.ReportPath, url.Values{"t": {string(m[1])}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Thank you") {
			t.Fatalf("POST %d:\n%s", resp.StatusCode, body)
		}
	}
	evs := events(t, ic, "acme", "alice")
	if len(evs) != 1 {
		t.Fatalf("intake holds %d events for alice, want 1", len(evs))
	}
	e := evs[0]
	if e.GetType() != eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED || e.GetTenant() != "acme" || e.GetEventId() != "report:"+incident ||
		!e.GetTime().AsTime().Equal(clk.Now()) {
		t.Fatalf("event %v", e)
	}
	revMu.Lock()
	defer revMu.Unlock()
	if len(revokes) == 0 || revokes[0].GetSecurityEvent().GetType() != notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_SESSION_REVOKED {
		t.Fatalf("no session revocation queued: %v", revokes)
	}
}

func TestReportLinkRejectsExpiredAndTamperedTokens(t *testing.T) {
	clk := newClock()
	ic := startIntake(t)
	links := &notify.ReportLinks{Key: []byte("0123456789abcdef0123456789abcdef"), TTL: time.Hour}
	web := httptest.NewServer(notify.ReportHandler(notify.ReportHandlerOptions{Links: links, Intake: ic, Now: clk.Now}))
	defer web.Close()
	good := links.Token(notify.ReportClaims{UserID: "bob", Nonce: "n1"}, clk.Now())
	other := &notify.ReportLinks{Key: []byte("another key of thirty-two bytes!")}
	cases := []struct {
		name  string
		token string
		after time.Duration
		want  int
	}{
		{"valid", good, 0, http.StatusOK},
		{"expired", good, time.Hour, http.StatusGone},
		{"signed with another key", other.Token(notify.ReportClaims{UserID: "bob", Nonce: "n1"}, clk.Now()), 0, http.StatusBadRequest},
		{"claims changed", tamper(good), 0, http.StatusBadRequest},
		{"empty", "", 0, http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			clk.Set(c.Now().Add(tc.after))
			resp, err := http.PostForm(web.URL+notify.ReportPath, url.Values{"t": {tc.token}})
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	if evs := events(t, ic, "", "bob"); len(evs) != 1 {
		t.Fatalf("intake holds %d reports for bob, want only the valid one", len(evs))
	}
}

func events(t *testing.T, ic intakev1.IntakeServiceClient, tenant, user string) []*eventv1.AuthEvent {
	t.Helper()
	resp, err := ic.ListEvents(context.Background(), &intakev1.ListEventsRequest{Tenant: tenant, UserId: user})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetEvents()
}

type notifierFunc func(*notifyv1.NotifyRequest)

func (f notifierFunc) Notify(_ context.Context, in *notifyv1.NotifyRequest, _ ...grpc.CallOption) (*notifyv1.NotifyResponse, error) {
	f(in)
	return &notifyv1.NotifyResponse{}, nil
}

// tamper changes one character of a token's claims.
func tamper(tok string) string {
	b := []byte(tok)
	if b[5] == 'A' {
		b[5] = 'B'
	} else {
		b[5] = 'A'
	}
	return string(b)
}
