package entra_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"

	"github.com/pushbackhq/pushback/connectors/entra"
	"github.com/pushbackhq/pushback/connectors/entra/entratest"
	"github.com/pushbackhq/pushback/connectors/poll"
	"github.com/pushbackhq/pushback/connectors/respond"
	"github.com/pushbackhq/pushback/services/intake/formats"
)

var base = time.Date(2026, 3, 6, 9, 0, 0, 0, time.UTC)

func readPage(t *testing.T, src poll.Source, cursor string, since time.Time) poll.Page {
	t.Helper()
	p, err := src.Read(context.Background(), cursor, since)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return p
}

// signInIDs parses a page with intake's entra format and returns the ids
// of the outcomes (a push's "#push" twin and earlier steps left out).
func signInIDs(t *testing.T, body []byte) []string {
	t.Helper()
	b, err := formats.Parse(formats.Entra, body, formats.Options{Tenant: "t1"})
	if err != nil {
		t.Fatalf("intake's entra format refused the page: %v", err)
	}
	var ids []string
	for _, e := range b.Events {
		if !strings.Contains(e.GetEventId(), "#") {
			ids = append(ids, e.GetEventId())
		}
	}
	return ids
}

// logSource is c's source with a clock an hour after base.
func logSource(c *entra.Client) *entra.LogSource {
	src := c.LogSource()
	entra.SetLogClock(src, func() time.Time { return base.Add(time.Hour) })
	return src
}

func id(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

// addSignIns adds n sign-ins a second apart from at, ids first..first+n-1.
func addSignIns(s *entratest.Server, first, n int, at time.Time) {
	var ins []entratest.SignIn
	for i := range n {
		ins = append(ins, entratest.SignIn{ID: id(first + i), Created: at.Add(time.Duration(i) * time.Second)})
	}
	s.AddSignIn(ins...)
}

func signInRequests(s *entratest.Server) []entratest.Request {
	var out []entratest.Request
	for _, r := range s.Requests() {
		if r.Path == "/v1.0/auditLogs/signIns" {
			out = append(out, r)
		}
	}
	return out
}

func TestLogSourceFirstRead(t *testing.T) {
	s, c := setup(t)
	src := c.LogSource()
	if src.Name() != "entra" || src.Format() != "entra" {
		t.Fatalf("Name %q, Format %q", src.Name(), src.Format())
	}
	if _, err := formats.ParseFormat(src.Format()); err != nil {
		t.Fatal(err)
	}
	entra.SetLogClock(src, func() time.Time { return base.Add(time.Hour) })
	s.AddSignIn(entratest.SignIn{ID: id(0), Created: base.Add(-time.Second)})
	addSignIns(s, 1, 3, base)
	p := readPage(t, src, "", base.Add(300*time.Millisecond))
	if p.More {
		t.Error("More on the only page")
	}
	if !p.Newest.Equal(base.Add(2 * time.Second)) {
		t.Errorf("Newest = %s", p.Newest)
	}
	if got, want := signInIDs(t, p.Body), []string{id(3), id(2), id(1)}; !slices.Equal(got, want) {
		t.Errorf("ids %v, want %v (newest first, none before since)", got, want)
	}
	reqs := signInRequests(s)
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	q, _ := url.ParseQuery(reqs[0].Query)
	if q.Get("$filter") != "createdDateTime ge 2026-03-06T09:00:00Z" || q.Get("$top") != "1000" || len(q) != 2 {
		t.Errorf("query %q", reqs[0].Query)
	}
}

func TestLogSourceSinceClampedToRetention(t *testing.T) {
	s, c := setup(t)
	src := c.LogSource()
	entra.SetLogClock(src, func() time.Time { return base })
	readPage(t, src, "", base.Add(-365*24*time.Hour))
	q, _ := url.ParseQuery(signInRequests(s)[0].Query)
	want := "createdDateTime ge " + base.Add(-entra.LogRetention+time.Hour).Format(time.RFC3339)
	if q.Get("$filter") != want {
		t.Errorf("$filter %q, want %q", q.Get("$filter"), want)
	}
}

func TestLogSourcePagesThroughNextLink(t *testing.T) {
	s, c := setup(t)
	addSignIns(s, 1, 2500, base)
	src := logSource(c)
	seen := map[string]bool{}
	cursor := ""
	for i, more := range []bool{true, true, false} {
		p := readPage(t, src, cursor, base)
		if p.More != more {
			t.Fatalf("page %d: More %v", i, p.More)
		}
		ids := signInIDs(t, p.Body)
		if want := []int{1000, 1000, 500}[i]; len(ids) != want {
			t.Fatalf("page %d: %d sign-ins, want %d", i, len(ids), want)
		}
		for _, x := range ids {
			if seen[x] {
				t.Fatalf("page %d: %s again within the window", i, x)
			}
			seen[x] = true
		}
		cursor = p.Cursor
	}
	if len(seen) != 2500 {
		t.Fatalf("%d sign-ins, want 2500", len(seen))
	}
	reqs := signInRequests(s)
	for i, r := range reqs[1:] {
		q, _ := url.ParseQuery(r.Query)
		if q.Get("$skiptoken") == "" {
			t.Errorf("request %d does not follow the nextLink: %q", i+1, r.Query)
		}
	}
}

func TestLogSourceWindowBoundary(t *testing.T) {
	s, c := setup(t)
	src := logSource(c)
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	s.AddSignIn(
		entratest.SignIn{ID: id(0), Created: at(0)},
		entratest.SignIn{ID: id(10), Created: at(10)},
		entratest.SignIn{ID: id(20), Created: at(20)},
		entratest.SignIn{ID: id(22), Created: at(22)},
	)
	p := readPage(t, src, "", base)
	if got := signInIDs(t, p.Body); len(got) != 4 || p.More {
		t.Fatalf("first window: %v, More %v", got, p.More)
	}
	// Written late: a sign-in created within LogOverlap of the newest one
	// read; and a new one.
	s.AddSignIn(entratest.SignIn{ID: id(19), Created: at(19)}, entratest.SignIn{ID: id(30), Created: at(30)})
	p = readPage(t, src, p.Cursor, base)
	if got, want := signInIDs(t, p.Body), []string{id(30), id(22), id(20), id(19)}; !slices.Equal(got, want) {
		t.Fatalf("second window %v, want %v: the late and new ones, again only those within %s of the newest", got, want, entra.LogOverlap)
	}
	q, _ := url.ParseQuery(signInRequests(s)[1].Query)
	if want := "createdDateTime ge " + at(22).Add(-entra.LogOverlap).Format(time.RFC3339); q.Get("$filter") != want {
		t.Errorf("$filter %q, want %q", q.Get("$filter"), want)
	}
	// Nothing new: the next window starts 5 minutes before at(30) and
	// never before the previous window's start.
	p = readPage(t, src, p.Cursor, base)
	if got := signInIDs(t, p.Body); !slices.Equal(got, []string{id(30)}) {
		t.Errorf("third window %v", got)
	}
	p2 := readPage(t, src, p.Cursor, base)
	if p2.Cursor != p.Cursor {
		t.Error("an unchanged window moved the cursor")
	}
}

func TestLogSourceEmptyWindowKeepsStart(t *testing.T) {
	s, c := setup(t)
	src := logSource(c)
	p := readPage(t, src, "", base)
	if len(signInIDs(t, p.Body)) != 0 || p.More || !p.Newest.IsZero() {
		t.Fatalf("empty log: %+v", p)
	}
	addSignIns(s, 1, 1, base)
	p = readPage(t, src, p.Cursor, time.Time{})
	if got := signInIDs(t, p.Body); !slices.Equal(got, []string{id(1)}) {
		t.Fatalf("got %v", got)
	}
}

func TestLogSourceRestartMidWindow(t *testing.T) {
	s, c := setup(t)
	addSignIns(s, 1, 2500, base)
	p := readPage(t, logSource(c), "", base)
	first := signInIDs(t, p.Body)
	if !p.More {
		t.Fatal("no second page")
	}
	// A new process: a new client (new token), the stored cursor.
	c2, err := entra.New(config(s))
	if err != nil {
		t.Fatal(err)
	}
	src := logSource(c2)
	seen := map[string]bool{}
	for _, x := range first {
		seen[x] = true
	}
	for cursor := p.Cursor; ; {
		p := readPage(t, src, cursor, time.Time{})
		for _, x := range signInIDs(t, p.Body) {
			if seen[x] {
				t.Fatalf("%s read twice within the window", x)
			}
			seen[x] = true
		}
		cursor = p.Cursor
		if !p.More {
			break
		}
	}
	if len(seen) != 2500 {
		t.Fatalf("%d sign-ins after the restart, want 2500", len(seen))
	}
}

// hostileGraph is a Graph whose List signIns page carries next as its
// @odata.nextLink; tokens come from the fake.
func hostileGraph(t *testing.T, s *entratest.Server, next func(self string) string) *entra.Client {
	t.Helper()
	var self string
	h := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"value":[{"id":%q,"createdDateTime":"2026-03-06T09:00:00Z","userPrincipalName":"ada@contoso.com","status":{"errorCode":0}}],"@odata.nextLink":%q}`, id(1), next(self))
	}))
	t.Cleanup(h.Close)
	self = h.URL
	cfg := config(s)
	cfg.GraphURL = h.URL
	c, err := entra.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLogSourceRefusesForeignNextLink(t *testing.T) {
	var evil atomic.Int32
	e := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { evil.Add(1) }))
	defer e.Close()
	eu, _ := url.Parse(e.URL)
	for name, next := range map[string]func(self string) string{
		"other origin": func(string) string { return e.URL + "/v1.0/auditLogs/signIns?$skiptoken=x" },
		"other path":   func(self string) string { return self + "/v1.0/users?$skiptoken=x" },
		"dot segments": func(self string) string { return self + "/v1.0/auditLogs/signIns/../../users?$skiptoken=x" },
		"userinfo":     func(self string) string { return self + "@" + eu.Host + "/v1.0/auditLogs/signIns?$skiptoken=x" },
		"longer host":  func(self string) string { return self + ".evil.example/v1.0/auditLogs/signIns?$skiptoken=x" },
		"fragment":     func(self string) string { return self + "/v1.0/auditLogs/signIns?$skiptoken=x#y" },
		"no skiptoken": func(self string) string { return self + "/v1.0/auditLogs/signIns?$top=1" },
		"scheme downgraded": func(self string) string {
			return "ftp" + strings.TrimPrefix(self, "http") + "/v1.0/auditLogs/signIns?$skiptoken=x"
		},
	} {
		t.Run(name, func(t *testing.T) {
			s, _ := setup(t)
			c := hostileGraph(t, s, next)
			_, err := logSource(c).Read(context.Background(), "", base)
			if err == nil || !respond.IsPermanent(err) || !strings.Contains(err.Error(), "nextLink") {
				t.Fatalf("err %v, want a permanent refusal of the nextLink", err)
			}
		})
	}
	// A stored cursor pointing elsewhere is refused before any request.
	s, c := setup(t)
	cur, _ := json.Marshal(map[string]string{"from": "2026-03-06T09:00:00Z", "next": e.URL + "/v1.0/auditLogs/signIns?$skiptoken=x"})
	_, err := logSource(c).Read(context.Background(), base64.RawURLEncoding.EncodeToString(cur), base)
	if err == nil || !respond.IsPermanent(err) {
		t.Fatalf("foreign cursor: %v", err)
	}
	if n := evil.Load(); n != 0 || s.GraphRequests() != 0 {
		t.Fatalf("%d requests to the foreign origin, %d to Graph", n, s.GraphRequests())
	}
	for _, bad := range []string{"!", base64.RawURLEncoding.EncodeToString([]byte(`{"from":"yesterday"}`)), base64.RawURLEncoding.EncodeToString([]byte(`{"from":"2026-03-06T09:00:00Z","x":1}`))} {
		if _, err := logSource(c).Read(context.Background(), bad, base); !respond.IsPermanent(err) {
			t.Errorf("cursor %q: %v, want permanent", bad, err)
		}
	}
}

func TestLogSourceRateLimited(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		s, c := setup(t)
		s.FailNext(1, status, "9")
		_, err := logSource(c).Read(context.Background(), "", base)
		var ra *respond.RetryAfter
		if !errors.As(err, &ra) || ra.Wait != 9*time.Second || respond.IsPermanent(err) {
			t.Fatalf("HTTP %d: %v, want RetryAfter 9s", status, err)
		}
		if _, err := logSource(c).Read(context.Background(), "", base); err != nil {
			t.Fatalf("after the wait: %v", err)
		}
	}
}

func TestLogSourceNeedsAuditLogRead(t *testing.T) {
	s, c := setup(t)
	s.SetPermissions(entratest.UserRevokeSessions, entratest.UserRead)
	_, err := logSource(c).Read(context.Background(), "", base)
	if !respond.IsPermanent(err) || !strings.Contains(err.Error(), "Authorization_RequestDenied") {
		t.Fatalf("%v, want permanent Authorization_RequestDenied", err)
	}
	s.SetPermissions(entratest.AuditLogRead)
	if _, err := logSource(c).Read(context.Background(), "", base); err != nil {
		t.Fatalf("with %s: %v", entratest.AuditLogRead, err)
	}
	s.SetPremium(false)
	_, err = logSource(c).Read(context.Background(), "", base)
	if !respond.IsPermanent(err) || !strings.Contains(err.Error(), "Authentication_RequestFromNonPremiumTenantOrB2CTenant") {
		t.Fatalf("without P1/P2: %v, want permanent Authentication_RequestFromNonPremiumTenantOrB2CTenant", err)
	}
}

func TestLogSourceExpiredTokenRefetchedOnce(t *testing.T) {
	s, c := setup(t)
	addSignIns(s, 1, 1, base)
	readPage(t, logSource(c), "", base)
	s.ExpireTokens()
	p := readPage(t, logSource(c), "", base)
	if len(signInIDs(t, p.Body)) != 1 || s.TokenRequests() != 2 || s.Unauthorized() != 1 {
		t.Fatalf("tokens %d, 401s %d", s.TokenRequests(), s.Unauthorized())
	}
	s.RejectTokens(true)
	if _, err := logSource(c).Read(context.Background(), "", base); err == nil || s.Unauthorized() != 3 {
		t.Fatalf("rejected tokens: %v, %d 401s", err, s.Unauthorized())
	}
}

func TestLogSourcePageParsesIntoEvents(t *testing.T) {
	s, c := setup(t)
	push := func(ok bool, detail string) []any {
		return []any{
			map[string]any{"authenticationMethod": "Password", "succeeded": true, "authenticationStepResultDetail": "Correct password"},
			map[string]any{"authenticationMethod": "Mobile app notification", "succeeded": ok, "authenticationStepResultDetail": detail},
		}
	}
	s.AddSignIn(
		entratest.SignIn{ID: id(1), Created: base, Resource: map[string]any{
			"userPrincipalName": "ada@contoso.com", "ipAddress": "203.0.113.7",
			"status":                map[string]any{"errorCode": 500121, "failureReason": "Authentication failed during strong authentication request.", "additionalDetails": "MFA denied; user declined the authentication"},
			"authenticationDetails": push(false, "MFA denied; user declined the authentication"),
		}},
		entratest.SignIn{ID: id(2), Created: base.Add(time.Minute), Resource: map[string]any{
			"userPrincipalName": "ada@contoso.com", "ipAddress": "203.0.113.7",
			"status":                map[string]any{"errorCode": 0},
			"authenticationDetails": push(true, "MFA successfully completed"),
		}},
		entratest.SignIn{ID: id(3), Created: base.Add(2 * time.Minute)}, // password only
	)
	p := readPage(t, logSource(c), "", base)
	b, err := formats.Parse(formats.Entra, p.Body, formats.Options{Tenant: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]eventv1.EventType{}
	for _, e := range b.Events {
		got[e.GetEventId()] = e.GetType()
	}
	want := map[string]eventv1.EventType{
		id(1) + "#push": eventv1.EventType_EVENT_TYPE_PUSH_SENT,
		id(1):           eventv1.EventType_EVENT_TYPE_PUSH_DENIED,
		id(2) + "#push": eventv1.EventType_EVENT_TYPE_PUSH_SENT,
		id(2):           eventv1.EventType_EVENT_TYPE_PUSH_APPROVED,
		id(3):           eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED,
	}
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %v, want %v", k, got[k], v)
		}
	}
}

func TestLogSourceIndentsLongPages(t *testing.T) {
	if entra.MaxBodyLine != formats.MaxRecordBytes {
		t.Fatalf("the connector indents past %d bytes, intake reads lines up to %d", entra.MaxBodyLine, formats.MaxRecordBytes)
	}
	s, c := setup(t)
	pad := strings.Repeat("x", 2000)
	var ins []entratest.SignIn
	for i := range 1000 {
		ins = append(ins, entratest.SignIn{ID: id(i), Created: base.Add(time.Duration(i) * time.Second), Resource: map[string]any{
			"userPrincipalName": "ada@contoso.com", "status": map[string]any{"errorCode": 0}, "userAgent": pad,
		}})
	}
	s.AddSignIn(ins...)
	p := readPage(t, logSource(c), "", base)
	if len(p.Body) <= entra.MaxBodyLine {
		t.Fatalf("body of %d bytes", len(p.Body))
	}
	if n := len(signInIDs(t, p.Body)); n != 1000 {
		t.Fatalf("%d sign-ins parsed, want 1000", n)
	}
}
