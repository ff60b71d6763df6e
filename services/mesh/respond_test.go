package mesh_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/connectors/okta/oktatest"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/store/redistest"
	"github.com/pushbackhq/pushback/services/mesh"
	"github.com/pushbackhq/pushback/services/scoring"
)

// alertSink is an alert webhook that keeps what it receives.
type alertSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []string
}

func newAlertSink(t *testing.T) *alertSink {
	s := &alertSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, string(b))
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// naming returns the first alert body that contains every one of words.
func (s *alertSink) naming(words ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.bodies {
		all := true
		for _, w := range words {
			all = all && strings.Contains(b, w)
		}
		if all {
			return b
		}
	}
	return ""
}

// eventually polls cond every 100ms until it holds or within runs out.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// oktaHookRecord is one Okta System Log event as an Event Hook carries it.
func oktaHookRecord(id, typ, result, reason, factor, login, ip string, at time.Time) map[string]any {
	ev := map[string]any{
		"uuid": id, "published": at.Format(time.RFC3339Nano), "eventType": typ, "version": "0",
		"actor":                 map[string]any{"id": "00u1ada", "type": "User", "alternateId": login},
		"client":                map[string]any{"ipAddress": ip, "device": "Computer", "userAgent": map[string]any{"rawUserAgent": "Mozilla/5.0"}},
		"outcome":               map[string]any{"result": result, "reason": reason},
		"authenticationContext": map[string]any{"externalSessionId": "idx-attacker-1"},
	}
	if factor != "" {
		ev["debugContext"] = map[string]any{"debugData": map[string]any{"factor": factor}}
	}
	return ev
}

// oktaFatigueSuccess is an Event Hook delivery of a fatigue attack that
// worked: pushes from the attacker's address, denied one after another,
// then approved.
func oktaFatigueSuccess(login string, end time.Time) []byte {
	var events []map[string]any
	start := end.Add(-3 * time.Minute)
	for i := range 6 {
		at := start.Add(time.Duration(i) * 25 * time.Second)
		events = append(events,
			oktaHookRecord(fmt.Sprintf("%s-push-%d", login, i), "system.push.send_factor_verify_push", "SUCCESS", "", "OKTA_VERIFY_PUSH", login, "203.0.113.66", at),
			oktaHookRecord(fmt.Sprintf("%s-deny-%d", login, i), "user.mfa.okta_verify.deny_push", "SUCCESS", "", "OKTA_VERIFY_PUSH", login, "203.0.113.66", at.Add(5*time.Second)))
	}
	events = append(events,
		oktaHookRecord(login+"-push-last", "system.push.send_factor_verify_push", "SUCCESS", "", "OKTA_VERIFY_PUSH", login, "203.0.113.66", end.Add(-10*time.Second)),
		oktaHookRecord(login+"-approve", "user.authentication.auth_via_mfa", "SUCCESS", "", "OKTA_VERIFY_PUSH", login, "203.0.113.66", end))
	b, _ := json.Marshal(map[string]any{"eventType": "com.okta.event_hook", "eventTypeVersion": "1.0", "cloudEventsVersion": "0.1",
		"eventId": "hook-delivery-1", "data": map[string]any{"events": events}})
	return b
}

func postIngest(t *testing.T, m *running, format string, body []byte) {
	t.Helper()
	resp, err := http.Post("http://"+m.httpAddr+"/v1/ingest/"+format, "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s", format, resp.StatusCode, b)
	}
}

// TestOktaFatigueSuccessIsAlertedAndRevoked is the acceptance: a
// fatigue success posted as an Okta Event Hook, with no Decide call at all,
// leads within 20s to an alert naming APPROVAL_AFTER_BURST and to the
// user's Okta sessions cleared, after the login was resolved to the id.
func TestOktaFatigueSuccessIsAlertedAndRevoked(t *testing.T) {
	t.Run("badger", func(t *testing.T) { oktaFatigueSuccessIsAlertedAndRevoked(t, mesh.Default()) })
	t.Run("redis", func(t *testing.T) {
		cfg := mesh.Default()
		cfg.StoreKind, cfg.RedisAddrs = "redis", []string{redistest.Start(t).Addr}
		oktaFatigueSuccessIsAlertedAndRevoked(t, cfg)
	})
}

func oktaFatigueSuccessIsAlertedAndRevoked(t *testing.T, cfg mesh.Config) {
	alerts := newAlertSink(t)
	org := oktatest.NewServer()
	defer org.Close()
	org.AddUser("00u1ada9XyZ", "ada@example.com")
	cfg.Notify.AlertWebhook = alerts.srv.URL
	cfg.Connectors.Okta.URL = org.URL()
	cfg.Connectors.Okta.Token = org.Token
	m := start(t, cfg)

	postIngest(t, m, "okta", oktaFatigueSuccess("Ada@Example.com", time.Now().UTC().Add(-time.Second)))
	eventually(t, 20*time.Second, "alert naming APPROVAL_AFTER_BURST and Okta sessions cleared", func() bool {
		return alerts.naming("APPROVAL_AFTER_BURST", "fatigue-success") != "" && len(org.Revoked()) > 0
	})
	if r := org.Revoked(); len(r) != 1 || r[0].UserID != "00u1ada9XyZ" {
		t.Fatalf("revoked %+v, want the one user 00u1ada9XyZ", r)
	}
	var lookedUp bool
	for _, req := range org.Requests() {
		if req.Method == http.MethodGet && strings.HasPrefix(req.Path, "/api/v1/users/") {
			lookedUp = true
		}
		if req.Method == http.MethodDelete && !lookedUp {
			t.Fatalf("sessions cleared before the login was resolved: %+v", org.Requests())
		}
		if req.Authorization != "SSWS "+org.Token {
			t.Fatalf("request without the API token: %+v", req)
		}
	}
	// The incident lists the action and its result.
	nc := notifyv1.NewNotificationServiceClient(m.conn)
	ctx := context.Background()
	list, err := nc.ListIncidents(ctx, &notifyv1.ListIncidentsRequest{})
	if err != nil || len(list.GetIncidents()) != 1 {
		t.Fatalf("incidents %v, %v", list, err)
	}
	var taken *notifyv1.Delivery
	eventually(t, 10*time.Second, "the incident shows the action taken", func() bool {
		inc, err := nc.GetIncident(ctx, &notifyv1.GetIncidentRequest{IncidentId: list.GetIncidents()[0].GetIncidentId()})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range inc.GetDeliveries() {
			if d.GetChannel() == "okta" && d.GetStatus() == notifyv1.Status_STATUS_DELIVERED {
				taken = d
			}
		}
		return taken != nil
	})
	if !strings.Contains(taken.GetResult(), "00u1ada9XyZ") {
		t.Fatalf("action result %q", taken.GetResult())
	}
}

// TestRiskFeedOverHTTP: a risk reader follows a tenant's risk changes as
// Server-Sent Events; opened before a user's burst, it streams that
// user's change; reconnecting with Last-Event-ID resumes after it; bad
// parameters and missing credentials answer JSON errors.
func TestRiskFeedOverHTTP(t *testing.T) {
	const reader = "risk-reader-token-0123456789"
	cfg := mesh.Default()
	cfg.Auth.ScoringTokens = []string{reader}
	cfg.Auth.IntakeToken = "log-shipper-token-0123456789"
	m := start(t, cfg)
	base := "http://" + m.httpAddr + scoring.FeedPath
	get := func(ctx context.Context, url, token, lastID string) *http.Response {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for name, c := range map[string]struct {
		url, token string
		code       int
		want       string
	}{
		"no token":       {base, "", http.StatusUnauthorized, "UNAUTHENTICATED"},
		"log shipper":    {base, "log-shipper-token-0123456789", http.StatusForbidden, "PERMISSION_DENIED"},
		"unknown signal": {base + "?signals=PUSH_BURST,NOPE", reader, http.StatusBadRequest, `"field":"signals[1]"`},
		"bad score":      {base + "?min_score=many", reader, http.StatusBadRequest, `"field":"min_score"`},
	} {
		resp := get(context.Background(), c.url, c.token, "")
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != c.code || !strings.Contains(string(b), c.want) {
			t.Errorf("%s: %d %s; want %d and %s", name, resp.StatusCode, b, c.code, c.want)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp := get(ctx, base+"?min_score=1&signals=PUSH_BURST", reader, "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("feed: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := sseEvents(resp.Body)
	ingest := func(user string, from time.Time) {
		body := oktaFatigueSuccess(user, from)
		req, _ := http.NewRequest(http.MethodPost, "http://"+m.httpAddr+"/v1/ingest/okta", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer log-shipper-token-0123456789")
		r, err := http.DefaultClient.Do(req)
		if err != nil || r.StatusCode != http.StatusOK {
			t.Fatalf("ingest: %v %v", r, err)
		}
		_ = r.Body.Close()
	}
	ingest("Lea@Example.com", time.Now().UTC().Add(-time.Minute))
	var first sseEvent
	select {
	case first = <-events:
	case <-ctx.Done():
		t.Fatal("no risk event within 30s")
	}
	if first.event != "risk" || first.id == "" || !strings.Contains(first.data, `"userId":"lea@example.com"`) || !strings.Contains(first.data, "PUSH_BURST") {
		t.Fatalf("first event %+v", first)
	}
	_ = resp.Body.Close()

	// Away, then back with the last id seen: what happened meanwhile is
	// there, nothing from before.
	ingest("Max@Example.com", time.Now().UTC().Add(-time.Minute))
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	again := get(ctx2, base+"?min_score=1", reader, first.id)
	defer again.Body.Close()
	resumed := sseEvents(again.Body)
	for {
		select {
		case e := <-resumed:
			if e.id <= first.id {
				t.Fatalf("event %s at or before Last-Event-ID %s", e.id, first.id)
			}
			if strings.Contains(e.data, `"userId":"max@example.com"`) {
				return
			}
		case <-ctx2.Done():
			t.Fatal("the resumed feed did not deliver the change made while away")
		}
	}
}

type sseEvent struct{ id, event, data string }

// sseEvents parses a Server-Sent Events body.
func sseEvents(body io.Reader) <-chan sseEvent {
	out := make(chan sseEvent, 64)
	go func() {
		defer close(out)
		var cur sseEvent
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.event != "" {
					out <- cur
				}
				cur = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				cur.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				cur.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				cur.data = line[6:]
			}
		}
	}()
	return out
}
