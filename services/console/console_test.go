package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/services/console"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	operatorToken = "operator-token-0123456789"
	otherToken    = "not-an-operator-token-0123"
)

// fakeDecisions records the console's calls and what they carried, and
// answers from what the test set.
type fakeDecisions struct {
	mu        sync.Mutex
	calls     []string
	tokens    []string
	clears    []*decisionv1.ClearCooldownRequest
	cooldown  *decisionv1.GetCooldownResponse
	decisions []*decisionv1.DecisionRecord
	err       error
}

func (f *fakeDecisions) record(ctx context.Context, call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	md, _ := metadata.FromOutgoingContext(ctx)
	f.tokens = append(f.tokens, strings.Join(md.Get("authorization"), ","))
	return f.err
}

func (f *fakeDecisions) ListDecisions(ctx context.Context, in *decisionv1.ListDecisionsRequest, _ ...grpc.CallOption) (*decisionv1.ListDecisionsResponse, error) {
	if err := f.record(ctx, "ListDecisions"); err != nil {
		return nil, err
	}
	return &decisionv1.ListDecisionsResponse{Decisions: f.decisions}, nil
}

func (f *fakeDecisions) GetCooldown(ctx context.Context, in *decisionv1.GetCooldownRequest, _ ...grpc.CallOption) (*decisionv1.GetCooldownResponse, error) {
	if err := f.record(ctx, "GetCooldown"); err != nil {
		return nil, err
	}
	if f.cooldown != nil {
		return f.cooldown, nil
	}
	return &decisionv1.GetCooldownResponse{UserId: strings.ToLower(strings.TrimSpace(in.GetUserId()))}, nil
}

func (f *fakeDecisions) ClearCooldown(ctx context.Context, in *decisionv1.ClearCooldownRequest, _ ...grpc.CallOption) (*decisionv1.ClearCooldownResponse, error) {
	if err := f.record(ctx, "ClearCooldown"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.clears = append(f.clears, in)
	f.mu.Unlock()
	return &decisionv1.ClearCooldownResponse{Cleared: true, Clearance: &decisionv1.CooldownClearance{UserId: in.GetUserId(), Reason: in.GetReason(), Operator: in.GetOperator()}}, nil
}

func (f *fakeDecisions) callCount(call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == call {
			n++
		}
	}
	return n
}

type fakeIncidents struct{ incidents []*notifyv1.Incident }

func (f *fakeIncidents) ListIncidents(context.Context, *notifyv1.ListIncidentsRequest, ...grpc.CallOption) (*notifyv1.ListIncidentsResponse, error) {
	return &notifyv1.ListIncidentsResponse{Incidents: f.incidents}, nil
}

// clock is a test clock that only moves when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	h     http.Handler
	dec   *fakeDecisions
	inc   *fakeIncidents
	clock *clock
}

func newEnv(t *testing.T, mod func(*console.Config)) *env {
	t.Helper()
	cfg := console.DefaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	e := &env{dec: &fakeDecisions{}, inc: &fakeIncidents{}, clock: &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}}
	c, err := console.New(console.Options{Config: cfg, Decisions: e.dec, Incidents: e.inc, OperatorTokens: []string{"another-operator-token-xyz", operatorToken}, Now: e.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	e.h = c.Handler()
	return e
}

// do serves one request from addr with the cookies given.
func (e *env) do(t *testing.T, method, target string, form url.Values, addr string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, target, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if addr != "" {
		r.RemoteAddr = addr
	}
	for _, c := range cookies {
		if c != nil {
			r.AddCookie(c)
		}
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF field in the page:\n%s", body)
	}
	return m[1]
}

func cookieOf(w *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// loginForm fetches the sign-in page: its CSRF cookie and field.
func (e *env) loginForm(t *testing.T) (*http.Cookie, string) {
	t.Helper()
	w := e.do(t, "GET", "/console/", nil, "")
	c := cookieOf(w, "pushback_console_login")
	if c == nil {
		t.Fatal("the sign-in page set no CSRF cookie")
	}
	return c, csrfOf(t, w.Body.String())
}

// signIn signs in as name with token and returns the session cookie and
// the session's CSRF token.
func (e *env) signIn(t *testing.T, name, token string) (*http.Cookie, string) {
	t.Helper()
	lc, csrf := e.loginForm(t)
	w := e.do(t, "POST", "/console/login", url.Values{"csrf": {csrf}, "operator": {name}, "token": {token}}, "", lc)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d\n%s", w.Code, w.Body)
	}
	sc := cookieOf(w, "pushback_console_session")
	if sc == nil {
		t.Fatal("no session cookie after signing in")
	}
	home := e.do(t, "GET", "/console/", nil, "", sc)
	if home.Code != http.StatusOK {
		t.Fatalf("home after sign-in: %d", home.Code)
	}
	return sc, csrfOf(t, home.Body.String())
}

// TestPagesNeedASession: without a session (no cookie, a made-up one) every
// page answers 401 with the sign-in form, and nothing reaches decision.
func TestPagesNeedASession(t *testing.T) {
	e := newEnv(t, nil)
	forged := &http.Cookie{Name: "pushback_console_session", Value: "made-up-session-id"}
	for _, tc := range []struct {
		method, target string
		form           url.Values
	}{
		{"GET", "/console/", nil},
		{"GET", "/console/user?user_id=alice", nil},
		{"POST", "/console/clear", url.Values{"user_id": {"alice"}, "reason": {"x"}}},
	} {
		for _, ck := range []*http.Cookie{nil, forged} {
			w := e.do(t, tc.method, tc.target, tc.form, "", ck)
			if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), `id="login-form"`) {
				t.Fatalf("%s %s (cookie %v): %d, want 401 and the sign-in form", tc.method, tc.target, ck != nil, w.Code)
			}
		}
	}
	if len(e.dec.calls) != 0 {
		t.Fatalf("decision was called without a session: %v", e.dec.calls)
	}
}

// TestSignInChecksTheToken: a token that is not an operator's starts no
// session; an operator's does, with a cookie scripts cannot read, other
// sites cannot send, scoped to the console and bounded in time.
func TestSignInChecksTheToken(t *testing.T) {
	// Many tries from one address here; TestSignInAttemptsAreBounded
	// plays the limit.
	e := newEnv(t, func(c *console.Config) { c.LoginAttempts = 100 })
	lc, csrf := e.loginForm(t)
	for _, bad := range []string{otherToken, operatorToken + "x", operatorToken[:len(operatorToken)-1]} {
		w := e.do(t, "POST", "/console/login", url.Values{"csrf": {csrf}, "operator": {"mallory"}, "token": {bad}}, "", lc)
		if w.Code != http.StatusUnauthorized || cookieOf(w, "pushback_console_session") != nil {
			t.Fatalf("sign-in with %q: %d, session cookie %v", bad, w.Code, cookieOf(w, "pushback_console_session"))
		}
	}
	w := e.do(t, "POST", "/console/login", url.Values{"csrf": {csrf}, "operator": {"ana"}, "token": {operatorToken}}, "", lc)
	sc := cookieOf(w, "pushback_console_session")
	if w.Code != http.StatusSeeOther || sc == nil {
		t.Fatalf("sign-in with an operator token: %d, cookie %v", w.Code, sc)
	}
	if !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Path != "/console/" || sc.MaxAge <= 0 || sc.MaxAge > int((24*time.Hour).Seconds()) || sc.Secure {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/console/, a bounded MaxAge, not Secure on plain HTTP", sc)
	}
	if strings.Contains(sc.Value, operatorToken) {
		t.Fatal("the session cookie carries the token")
	}
	// Behind a TLS-terminating proxy the cookie is Secure.
	s := newEnv(t, func(c *console.Config) { c.SecureCookie = true })
	lc, csrf = s.loginForm(t)
	if w := s.do(t, "POST", "/console/login", url.Values{"csrf": {csrf}, "operator": {"ana"}, "token": {operatorToken}}, "", lc); !cookieOf(w, "pushback_console_session").Secure {
		t.Fatal("console-secure-cookie: the session cookie is not Secure")
	}
	// The sign-in form itself needs its CSRF token: another site cannot
	// sign the browser in to a session of its choosing.
	if w := e.do(t, "POST", "/console/login", url.Values{"operator": {"ana"}, "token": {operatorToken}}, ""); w.Code != http.StatusForbidden {
		t.Fatalf("sign-in without the form's CSRF token: %d, want 403", w.Code)
	}
	if w := e.do(t, "POST", "/console/login", url.Values{"csrf": {"forged"}, "operator": {"ana"}, "token": {operatorToken}}, "", lc); w.Code != http.StatusForbidden {
		t.Fatalf("sign-in with a forged CSRF token: %d, want 403", w.Code)
	}
	// The operator's name goes into audit records: required, bounded.
	for _, name := range []string{"", "   ", strings.Repeat("a", 129), "ana\x1b[31m", "ana\u202eevil", "ana\u2028cleared by bo", "ana\u2029x"} {
		w := e.do(t, "POST", "/console/login", url.Values{"csrf": {csrf}, "operator": {name}, "token": {operatorToken}}, "", lc)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `<strong class="field">operator</strong>`) {
			t.Fatalf("sign-in as %q: %d, want 400 naming operator\n%s", name, w.Code, w.Body)
		}
	}
}

// TestFormsNeedTheCSRFToken plays a cross-site request: the browser sends
// the session cookie with a form another page made, without the CSRF
// token (or with a forged one, or another session's). It is refused and
// nothing is cleared.
func TestFormsNeedTheCSRFToken(t *testing.T) {
	e := newEnv(t, nil)
	sc, csrf := e.signIn(t, "ana", operatorToken)
	_, otherCSRF := e.signIn(t, "bo", operatorToken)
	for _, forged := range []string{"", "forged", otherCSRF, csrf[:len(csrf)-1]} {
		form := url.Values{"user_id": {"alice"}, "reason": {"the caller asked nicely"}}
		if forged != "" {
			form.Set("csrf", forged)
		}
		if w := e.do(t, "POST", "/console/clear", form, "", sc); w.Code != http.StatusForbidden {
			t.Fatalf("clear with CSRF %q: %d, want 403", forged, w.Code)
		}
		if w := e.do(t, "POST", "/console/logout", url.Values{"csrf": {forged}}, "", sc); w.Code != http.StatusForbidden {
			t.Fatalf("sign-out with CSRF %q: %d, want 403", forged, w.Code)
		}
	}
	if n := e.dec.callCount("ClearCooldown"); n != 0 {
		t.Fatalf("ClearCooldown called %d times by forged forms", n)
	}
	if w := e.do(t, "GET", "/console/", nil, "", sc); w.Code != http.StatusOK {
		t.Fatalf("a forged sign-out ended the session: %d", w.Code)
	}
	// The real sign-out ends the session.
	if w := e.do(t, "POST", "/console/logout", url.Values{"csrf": {csrf}}, "", sc); w.Code != http.StatusSeeOther || cookieOf(w, "pushback_console_session").MaxAge >= 0 {
		t.Fatalf("sign-out: %d", w.Code)
	}
	if w := e.do(t, "GET", "/console/", nil, "", sc); w.Code != http.StatusUnauthorized {
		t.Fatalf("the session outlived its sign-out: %d", w.Code)
	}
}

// TestClearNeedsAReason: the reason is what the audit record keeps; a
// missing, blank, overlong or control-laden one is a 400 naming the field
// and never reaches decision. A good one goes through ClearCooldown with
// the operator's name and their own token.
func TestClearNeedsAReason(t *testing.T) {
	e := newEnv(t, nil)
	sc, csrf := e.signIn(t, "ana", operatorToken)
	for _, reason := range []string{"", "  \n ", strings.Repeat("r", 1025), "ok\x00", "call-back \u2066verified"} {
		w := e.do(t, "POST", "/console/clear", url.Values{"csrf": {csrf}, "user_id": {"alice"}, "reason": {reason}}, "", sc)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `<strong class="field">reason</strong>`) {
			t.Fatalf("reason %q: %d, want 400 naming reason\n%s", reason, w.Code, w.Body)
		}
	}
	if w := e.do(t, "POST", "/console/clear", url.Values{"csrf": {csrf}, "reason": {"fine"}}, "", sc); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `<strong class="field">user_id</strong>`) {
		t.Fatalf("no user: %d, want 400 naming user_id", w.Code)
	}
	if n := e.dec.callCount("ClearCooldown"); n != 0 {
		t.Fatalf("ClearCooldown called %d times with bad input", n)
	}
	w := e.do(t, "POST", "/console/clear", url.Values{"csrf": {csrf}, "user_id": {"Alice"}, "reason": {"verified by call-back\r\nticket 42"}}, "", sc)
	if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/console/user?") {
		t.Fatalf("clear: %d %s", w.Code, w.Header().Get("Location"))
	}
	got := e.dec.clears[0]
	if got.GetUserId() != "Alice" || got.GetReason() != "verified by call-back\r\nticket 42" || got.GetOperator() != "ana" {
		t.Fatalf("ClearCooldown request %v", got)
	}
	if tok := e.dec.tokens[len(e.dec.tokens)-1]; tok != "Bearer "+operatorToken {
		t.Fatalf("ClearCooldown carried authorization %q, want the operator's own token", tok)
	}
	// What decision refuses is shown as a 400 naming its field.
	e.dec.err = apierr.InvalidArgument(apierr.FieldViolation{Field: "user_id", Description: "is not a user id"})
	w = e.do(t, "POST", "/console/clear", url.Values{"csrf": {csrf}, "user_id": {"x"}, "reason": {"fine"}}, "", sc)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `<strong class="field">user_id</strong>: is not a user id`) {
		t.Fatalf("decision's refusal: %d\n%s", w.Code, w.Body)
	}
}

// TestUserPageNeedsAUserID: a search without a user id, or with control
// characters, is a 400 naming user_id.
func TestUserPageNeedsAUserID(t *testing.T) {
	e := newEnv(t, nil)
	sc, _ := e.signIn(t, "ana", operatorToken)
	for _, q := range []string{"", "?user_id=", "?user_id=%20%20", "?user_id=a%00b", "?user_id=" + strings.Repeat("a", 257)} {
		w := e.do(t, "GET", "/console/user"+q, nil, "", sc)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `<strong class="field">user_id</strong>`) {
			t.Fatalf("GET /console/user%s: %d, want 400 naming user_id", q, w.Code)
		}
	}
	if w := e.do(t, "GET", "/console/user?user_id=a&tenant=t%07", nil, "", sc); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `<strong class="field">tenant</strong>`) {
		t.Fatalf("bad tenant: %d, want 400 naming tenant", w.Code)
	}
}

// TestAttackerTextRendersInert: user ids, device names, evidence, reasons
// and operators' names come from outside (an attacker picks their device
// name and the id they push to); every one renders as text, never markup.
func TestAttackerTextRendersInert(t *testing.T) {
	e := newEnv(t, nil)
	const (
		script = `<script>alert(1)</script>`
		img    = `"><img src=x onerror=alert(2)>`
	)
	at := timestamppb.New(e.clock.now())
	e.dec.cooldown = &decisionv1.GetCooldownResponse{UserId: "eve" + script, Active: true, Until: at, Since: at, Level: 1,
		BoundDevices: []string{"phone" + img}, BoundIps: []string{"198.51.100.7"},
		Clearances: []*decisionv1.CooldownClearance{{ClearedAt: at, Reason: "because" + script, Operator: "op" + img, Credential: "sha256:0011"}}}
	e.dec.decisions = []*decisionv1.DecisionRecord{{
		DecisionId: "d" + img, DecidedAt: at, RawUserId: "EVE" + script,
		Request: &decisionv1.DecideRequest{UserId: "eve" + script, AppId: "vpn" + img, Factor: eventv1.Factor_FACTOR_PUSH,
			Client: &eventv1.Client{Ip: "198.51.100.7", DeviceId: "dev" + script}},
		Response: &decisionv1.DecideResponse{Outcome: decisionv1.Outcome_OUTCOME_DENY, Reasons: []string{"burst" + script}, MatchedRules: []string{"r" + img},
			Cooldown: durationpb.New(10 * time.Minute),
			Risk: &scoringv1.RiskAssessment{Score: 90, Signals: []*scoringv1.Signal{{Code: "NEW_DEVICE", Weight: 10, Summary: "new device" + img,
				Evidence: &scoringv1.Signal_Novelty{Novelty: &scoringv1.NoveltyEvidence{Value: "iPhone" + script}}}}}},
	}}
	e.inc.incidents = []*notifyv1.Incident{{IncidentId: "i" + img, UserId: "eve" + script, Signals: []string{"S" + script}, Rules: []string{"R" + img}}}
	sc, _ := e.signIn(t, "ana"+img, operatorToken)
	w := e.do(t, "GET", "/console/user?user_id="+url.QueryEscape(" EVE"+script), nil, "", sc)
	body := w.Body.String()
	if w.Code != http.StatusOK {
		t.Fatalf("user page: %d\n%s", w.Code, body)
	}
	for _, live := range []string{"<script>", "<img", "onerror=alert(2)>"} {
		if strings.Contains(body, live) {
			t.Fatalf("the page carries live markup %q:\n%s", live, body)
		}
	}
	for _, inert := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(2)&gt;"} {
		if !strings.Contains(body, inert) {
			t.Fatalf("the page does not show %q as text:\n%s", inert, body)
		}
	}
	// Every field the attacker chose is on the page, as text.
	for _, want := range []string{"iPhone&lt;script&gt;", "dev&lt;script&gt;", "burst&lt;script&gt;", "because&lt;script&gt;", "phone&#34;&gt;&lt;img"} {
		if !strings.Contains(body, want) {
			t.Fatalf("the page does not show %q:\n%s", want, body)
		}
	}
	// And a page that echoes the typed id on an error escapes it too.
	w = e.do(t, "GET", "/console/user?user_id="+url.QueryEscape(strings.Repeat("a", 300)+script), nil, "", sc)
	if strings.Contains(w.Body.String(), "<script>") {
		t.Fatal("the error page carries live markup")
	}
}

// TestSecurityHeaders: every answer forbids scripts, framing and referrers.
func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, nil)
	for _, target := range []string{"/console/", "/console/console.css", "/console/nope", "/console/user?user_id=a"} {
		w := e.do(t, "GET", target, nil, "")
		h := w.Header()
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Fatalf("%s: CSP %q", target, csp)
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cache-Control") != "no-store" {
			t.Fatalf("%s: headers %v", target, h)
		}
	}
}

// TestSignInAttemptsAreBounded plays a token-guessing run from one
// address: past the limit even the right token is refused until the
// window passes; another address is not held back.
func TestSignInAttemptsAreBounded(t *testing.T) {
	e := newEnv(t, func(c *console.Config) { c.LoginAttempts = 5 })
	lc, csrf := e.loginForm(t)
	try := func(addr, token string) int {
		return e.do(t, "POST", "/console/login", url.Values{"csrf": {csrf}, "operator": {"m"}, "token": {token}}, addr, lc).Code
	}
	for i := range 5 {
		if code := try("203.0.113.9:4000", fmt.Sprint(otherToken, i)); code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i, code)
		}
	}
	if code := try("203.0.113.9:4001", operatorToken); code != http.StatusTooManyRequests {
		t.Fatalf("past the limit, the right token: %d, want 429", code)
	}
	if code := try("192.0.2.1:4000", operatorToken); code != http.StatusSeeOther {
		t.Fatalf("another address: %d, want 303", code)
	}
	e.clock.add(console.LoginWindow)
	if code := try("203.0.113.9:4002", operatorToken); code != http.StatusSeeOther {
		t.Fatalf("after the window: %d, want 303", code)
	}
}

// TestSessionsAreBounded: a session ends at its lifetime, and the map of
// sessions never grows past its bound.
func TestSessionsAreBounded(t *testing.T) {
	e := newEnv(t, func(c *console.Config) { c.SessionTTL = time.Hour; c.MaxSessions = 2 })
	first, _ := e.signIn(t, "a", operatorToken)
	e.clock.add(time.Minute)
	second, _ := e.signIn(t, "b", operatorToken)
	third, _ := e.signIn(t, "c", operatorToken)
	if w := e.do(t, "GET", "/console/", nil, "", first); w.Code != http.StatusUnauthorized {
		t.Fatalf("the oldest session outlived the bound: %d", w.Code)
	}
	if w := e.do(t, "GET", "/console/", nil, "", second); w.Code != http.StatusOK {
		t.Fatalf("a newer session ended: %d", w.Code)
	}
	e.clock.add(time.Hour)
	if w := e.do(t, "GET", "/console/", nil, "", third); w.Code != http.StatusUnauthorized {
		t.Fatalf("a session outlived its lifetime: %d", w.Code)
	}
}

// TestCrossSiteSignInsDoNotLockOut plays a page on another site that makes
// the operator's browser post the sign-in form again and again (without
// the form's CSRF cookie, which SameSite=Strict keeps from a cross-site
// post): the posts are refused, and they do not spend the sign-in budget
// of the operator's address (under kubectl port-forward, every operator's).
func TestCrossSiteSignInsDoNotLockOut(t *testing.T) {
	e := newEnv(t, func(c *console.Config) { c.LoginAttempts = 3 })
	const addr = "127.0.0.1:5000"
	for i := range 20 {
		w := e.do(t, "POST", "/console/login", url.Values{"operator": {"m"}, "token": {fmt.Sprint(otherToken, i)}}, addr)
		if w.Code != http.StatusForbidden {
			t.Fatalf("cross-site sign-in %d: %d, want 403", i, w.Code)
		}
	}
	lc, csrf := e.loginForm(t)
	if w := e.do(t, "POST", "/console/login", url.Values{"csrf": {csrf}, "operator": {"ana"}, "token": {operatorToken}}, addr, lc); w.Code != http.StatusSeeOther {
		t.Fatalf("the operator's own sign-in after a cross-site flood: %d, want 303", w.Code)
	}
}

// TestSignInLimitHoldsAcrossAnIPv6Prefix plays a guesser who owns an IPv6
// /64 (every host does) and takes a new address for each guess, and one
// who sends X-Forwarded-For: both are held to one address's budget.
func TestSignInLimitHoldsAcrossAnIPv6Prefix(t *testing.T) {
	e := newEnv(t, func(c *console.Config) { c.LoginAttempts = 5 })
	lc, csrf := e.loginForm(t)
	try := func(addr, token string, xff string) int {
		r := httptest.NewRequest("POST", "/console/login", strings.NewReader(url.Values{"csrf": {csrf}, "operator": {"m"}, "token": {token}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		r.RemoteAddr = addr
		r.AddCookie(lc)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		return w.Code
	}
	for i := range 5 {
		if code := try(fmt.Sprintf("[2001:db8:1:2::%x]:4000", i+1), fmt.Sprint(otherToken, i), ""); code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i, code)
		}
	}
	if code := try("[2001:db8:1:2:ffff::9]:4000", operatorToken, ""); code != http.StatusTooManyRequests {
		t.Fatalf("past the limit, another address of the same /64: %d, want 429", code)
	}
	if code := try("[2001:db8:1:3::1]:4000", operatorToken, ""); code != http.StatusSeeOther {
		t.Fatalf("another /64: %d, want 303", code)
	}
	for i := range 5 {
		try("198.51.100.4:4000", fmt.Sprint(otherToken, i), fmt.Sprintf("192.0.2.%d", i))
	}
	if code := try("198.51.100.4:4000", operatorToken, "192.0.2.200"); code != http.StatusTooManyRequests {
		t.Fatalf("X-Forwarded-For reset the limit: %d, want 429", code)
	}
	// An IPv4 address seen as IPv4-mapped IPv6 is the same address.
	if code := try("[::ffff:198.51.100.4]:4000", operatorToken, ""); code != http.StatusTooManyRequests {
		t.Fatalf("an IPv4-mapped form of a limited address: %d, want 429", code)
	}
}
