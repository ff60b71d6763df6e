package auth0_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/connectors/auth0"
	"github.com/pushbackhq/pushback/connectors/auth0/auth0test"
	"github.com/pushbackhq/pushback/connectors/respond"
	"github.com/pushbackhq/pushback/pkg/outbound"
)

func newClient(t *testing.T, domain, id, secret string, mod ...func(*auth0.Config)) *auth0.Client {
	t.Helper()
	cfg := auth0.DefaultConfig()
	cfg.Domain, cfg.ClientID, cfg.ClientSecret = domain, id, secret
	for _, m := range mod {
		m(&cfg)
	}
	c, err := auth0.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func fake(t *testing.T, mod ...func(*auth0.Config)) (*auth0test.Server, *auth0.Client) {
	t.Helper()
	s := auth0test.NewServer()
	t.Cleanup(s.Close)
	return s, newClient(t, s.URL(), s.ClientID, s.ClientSecret, mod...)
}

func allowBlock(c *auth0.Config) { c.BlockUser = true }

func revoke(user string) respond.Request {
	return respond.Request{Tenant: "acme", UserID: user, Action: respond.RevokeSessions, IncidentID: "inc1"}
}

func block(user string) respond.Request {
	return respond.Request{Tenant: "acme", UserID: user, Action: respond.BlockUser, IncidentID: "inc1"}
}

func TestRevokeSessions(t *testing.T) {
	s, c := fake(t)
	s.AddUser("auth0|abc")
	s.AddUser("auth0|other")
	res, err := c.Do(context.Background(), revoke("auth0|abc"))
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if got := s.Revoked(); !slices.Equal(got, []string{"auth0|abc"}) {
		t.Fatalf("revoked %q", got)
	}
	if res.IdPUserID != "auth0|abc" || res.Detail != "DELETE /api/v2/users/auth0%7Cabc/sessions: 202" {
		t.Fatalf("result %+v", res)
	}
	reqs := s.Requests()
	if len(reqs) != 2 || reqs[0].Method != http.MethodPost || reqs[0].Path != "/oauth/token" ||
		reqs[1].Method != http.MethodDelete || reqs[1].Path != "/api/v2/users/auth0%7Cabc/sessions" {
		t.Fatalf("requests %+v", reqs)
	}
	var body map[string]string
	if err := json.Unmarshal([]byte(reqs[0].Body), &body); err != nil || reqs[0].ContentType != "application/json" {
		t.Fatalf("token request %q (%s): %v", reqs[0].Body, reqs[0].ContentType, err)
	}
	want := map[string]string{"grant_type": "client_credentials", "client_id": s.ClientID, "client_secret": s.ClientSecret, "audience": s.Audience()}
	if fmt.Sprint(body) != fmt.Sprint(want) {
		t.Fatalf("token request %v, want %v", body, want)
	}
	if !strings.HasPrefix(reqs[1].Authorization, "Bearer ") || reqs[1].Accept != "application/json" || !strings.Contains(reqs[1].UserAgent, "pushback") {
		t.Fatalf("management headers %+v", reqs[1])
	}
}

func TestBlockUser(t *testing.T) {
	s, c := fake(t, allowBlock)
	s.AddUser("google-oauth2|1234")
	res, err := c.Do(context.Background(), block("google-oauth2|1234"))
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if got := s.Blocked(); !slices.Equal(got, []string{"google-oauth2|1234"}) || !s.IsBlocked("google-oauth2|1234") {
		t.Fatalf("blocked %q", got)
	}
	if len(s.Revoked()) != 0 {
		t.Fatalf("revoked %q", s.Revoked())
	}
	last := s.Requests()[len(s.Requests())-1]
	if last.Method != http.MethodPatch || last.Path != "/api/v2/users/google-oauth2%7C1234" || last.Body != `{"blocked":true}` || last.ContentType != "application/json" {
		t.Fatalf("request %+v", last)
	}
	if res.IdPUserID != "google-oauth2|1234" || !strings.HasPrefix(res.Detail, "PATCH /api/v2/users/google-oauth2%7C1234") || !strings.HasSuffix(res.Detail, ": 200") {
		t.Fatalf("result %+v", res)
	}
}

func TestBlockUserOffByDefault(t *testing.T) {
	s, c := fake(t)
	s.AddUser("auth0|abc")
	if c.Name() != "auth0" || !c.Supports(respond.RevokeSessions) || c.Supports(respond.BlockUser) || c.Supports(respond.RevokeTokens) {
		t.Fatal("Supports: want revoke_sessions only")
	}
	if _, err := c.Do(context.Background(), block("auth0|abc")); !respond.IsPermanent(err) {
		t.Fatalf("err %v, want permanent", err)
	}
	if len(s.Requests()) != 0 || s.IsBlocked("auth0|abc") {
		t.Fatalf("requests %+v", s.Requests())
	}
	_, c2 := fake(t, allowBlock)
	if !c2.Supports(respond.BlockUser) {
		t.Fatal("auth0-block-user does not allow block_user")
	}
}

func TestUnknownUserIsPermanent(t *testing.T) {
	s, c := fake(t, allowBlock)
	for _, req := range []respond.Request{revoke("auth0|nobody"), block("auth0|nobody")} {
		_, err := c.Do(context.Background(), req)
		if !respond.IsPermanent(err) {
			t.Fatalf("%s: err %v, want permanent", req.Action, err)
		}
		for _, want := range []string{"user not found", "inexistent_user", "HTTP 404"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q lacks %q", req.Action, err, want)
			}
		}
	}
	if len(s.Revoked())+len(s.Blocked()) != 0 {
		t.Fatal("acted on an unknown user")
	}
}

func TestBadClientSecretIsPermanent(t *testing.T) {
	s := auth0test.NewServer()
	defer s.Close()
	s.AddUser("auth0|abc")
	c := newClient(t, s.URL(), s.ClientID, "wrong-secret-value")
	_, err := c.Do(context.Background(), revoke("auth0|abc"))
	if !respond.IsPermanent(err) || !strings.Contains(err.Error(), "access_denied") || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("err %v, want permanent 401 access_denied", err)
	}
	if strings.Contains(err.Error(), "wrong-secret-value") {
		t.Fatalf("error %q carries the secret", err)
	}
	if len(s.Revoked()) != 0 {
		t.Fatal("revoked without a token")
	}
}

func TestFakeTokenEndpoint(t *testing.T) {
	s := auth0test.NewServer()
	defer s.Close()
	post := func(body map[string]string) (int, map[string]any) {
		b, _ := json.Marshal(body)
		resp, err := http.Post(s.URL()+"/oauth/token", "application/json", strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := outbound.ReadBody(resp, 0)
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		return resp.StatusCode, out
	}
	good := map[string]string{"grant_type": "client_credentials", "client_id": s.ClientID, "client_secret": s.ClientSecret, "audience": s.Audience()}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range good {
			m[a] = b
		}
		m[k] = v
		return m
	}
	if code, out := post(good); code != 200 || out["access_token"] == "" || out["token_type"] != "Bearer" || out["expires_in"] != float64(86400) {
		t.Fatalf("good: %d %v", code, out)
	}
	for _, tc := range []struct {
		body  map[string]string
		code  int
		error string
	}{
		{with("client_secret", "x"), 401, "access_denied"},
		{with("client_id", "x"), 401, "access_denied"},
		{with("audience", "https://other.example/api/v2/"), 403, "access_denied"},
		{with("grant_type", "password"), 400, "unsupported_grant_type"},
	} {
		if code, out := post(tc.body); code != tc.code || out["error"] != tc.error {
			t.Errorf("%v: %d %v", tc.body, code, out)
		}
	}
	if s.TokenRequests() != 5 {
		t.Fatalf("token requests %d", s.TokenRequests())
	}
}

func TestFakeManagementNeedsIssuedToken(t *testing.T) {
	s := auth0test.NewServer()
	defer s.Close()
	s.AddUser("auth0|abc")
	for _, auth := range []string{"", "Bearer not-issued", "SSWS " + s.ClientSecret, "bearer x"} {
		req, _ := http.NewRequest(http.MethodDelete, s.URL()+"/api/v2/users/auth0%7Cabc/sessions", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := outbound.ReadBody(resp, 0)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), `"statusCode":401`) {
			t.Errorf("Authorization %q: HTTP %d %s", auth, resp.StatusCode, body)
		}
	}
	if len(s.Revoked()) != 0 {
		t.Fatalf("revoked %q", s.Revoked())
	}
}

func TestInsufficientScopeIsPermanent(t *testing.T) {
	s, c := fake(t)
	s.AddUser("auth0|abc")
	s.SetScopes("read:users")
	_, err := c.Do(context.Background(), revoke("auth0|abc"))
	if !respond.IsPermanent(err) || !strings.Contains(err.Error(), "insufficient_scope") || !strings.Contains(err.Error(), "HTTP 403") {
		t.Fatalf("err %v, want permanent 403 insufficient_scope", err)
	}
}

func TestRateLimitIsRetryAfter(t *testing.T) {
	s, c := fake(t)
	s.AddUser("auth0|abc")
	s.SetRateLimit(1)
	if _, err := c.Do(context.Background(), revoke("auth0|abc")); err != nil {
		t.Fatalf("first Do: %v", err)
	}
	_, err := c.Do(context.Background(), revoke("auth0|abc"))
	var ra *respond.RetryAfter
	if !errors.As(err, &ra) {
		t.Fatalf("err %v, want *respond.RetryAfter", err)
	}
	if ra.Wait <= 0 || ra.Wait > 61*time.Second {
		t.Fatalf("wait %s, want the time to x-ratelimit-reset (0-60s)", ra.Wait)
	}
	if respond.IsPermanent(err) || !strings.Contains(err.Error(), "too_many_requests") {
		t.Fatalf("err %v", err)
	}
}

func TestRateLimitHeaders(t *testing.T) {
	for _, tc := range []struct {
		name     string
		headers  map[string]string
		min, max time.Duration
	}{
		{"x-ratelimit-reset", map[string]string{"x-ratelimit-reset": strconv.FormatInt(time.Now().Add(30*time.Second).Unix(), 10)}, 25 * time.Second, 31 * time.Second},
		{"retry-after first", map[string]string{"Retry-After": "7", "x-ratelimit-reset": strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)}, 7 * time.Second, 7 * time.Second},
		{"capped", map[string]string{"x-ratelimit-reset": strconv.FormatInt(time.Now().Add(48*time.Hour).Unix(), 10)}, outbound.MaxWait, outbound.MaxWait},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for k, v := range tc.headers {
				w.Header()[k] = []string{v}
			}
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":"too_many_requests","error_description":"Rate limit exceeded."}`)
		}))
		c := newClient(t, srv.URL, "id", "secret")
		_, err := c.Do(context.Background(), revoke("auth0|abc"))
		srv.Close()
		var ra *respond.RetryAfter
		if !errors.As(err, &ra) || ra.Wait < tc.min || ra.Wait > tc.max {
			t.Errorf("%s: err %v, want a wait in [%s, %s]", tc.name, err, tc.min, tc.max)
		}
	}
}

func TestServerErrorIsRetryable(t *testing.T) {
	s, c := fake(t)
	s.AddUser("auth0|abc")
	var ra *respond.RetryAfter

	s.FailNext(1) // the token request
	_, err := c.Do(context.Background(), revoke("auth0|abc"))
	if err == nil || respond.IsPermanent(err) || errors.As(err, &ra) || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("token 500: err %v, want a plain retryable error", err)
	}
	if _, err := c.Do(context.Background(), revoke("auth0|abc")); err != nil {
		t.Fatalf("retry: %v", err)
	}
	s.FailNext(1) // the management call, with the token cached
	_, err = c.Do(context.Background(), revoke("auth0|abc"))
	if err == nil || respond.IsPermanent(err) || errors.As(err, &ra) || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("management 500: err %v, want a plain retryable error", err)
	}
	if got := s.Revoked(); len(got) != 1 {
		t.Fatalf("revoked %q", got)
	}
}

func TestHungServerTimesOut(t *testing.T) {
	short := func(c *auth0.Config) { c.Timeout = 200 * time.Millisecond }
	for _, cached := range []bool{false, true} {
		s, c := fake(t, short)
		s.AddUser("auth0|abc")
		if cached {
			if _, err := c.Do(context.Background(), revoke("auth0|abc")); err != nil {
				t.Fatal(err)
			}
		}
		s.SetHang(true)
		start := time.Now()
		_, err := c.Do(context.Background(), revoke("auth0|abc"))
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Fatalf("token cached %v: Do took %s with a 200ms timeout", cached, elapsed)
		}
		var ra *respond.RetryAfter
		if err == nil || respond.IsPermanent(err) || errors.As(err, &ra) {
			t.Fatalf("token cached %v: err %v, want a retryable timeout", cached, err)
		}
	}
}

func TestContextCancelStopsDo(t *testing.T) {
	s, c := fake(t)
	s.AddUser("auth0|abc")
	s.SetHang(true)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Do(ctx, revoke("auth0|abc"))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("err %v after %s, want the context's deadline", err, time.Since(start))
	}
}

func TestTokenCached(t *testing.T) {
	s, c := fake(t)
	s.AddUser("auth0|abc")
	for i := range 3 {
		if _, err := c.Do(context.Background(), revoke("auth0|abc")); err != nil {
			t.Fatalf("Do %d: %v", i, err)
		}
	}
	if n := s.TokenRequests(); n != 1 {
		t.Fatalf("%d token requests for 3 calls, want 1", n)
	}
}

func TestConcurrentCallersShareOneTokenRequest(t *testing.T) {
	s, c := fake(t)
	for i := range 20 {
		s.AddUser(fmt.Sprintf("auth0|u%d", i))
	}
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Do(context.Background(), revoke(fmt.Sprintf("auth0|u%d", i))); err != nil {
				t.Error(err)
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := s.TokenRequests(); n != 1 || failed.Load() != 0 || len(s.Revoked()) != 20 {
		t.Fatalf("%d token requests, %d failures, %d revoked; want 1, 0, 20", n, failed.Load(), len(s.Revoked()))
	}
}

func TestRefusedTokenIsReplacedOnce(t *testing.T) {
	s, c := fake(t)
	s.AddUser("auth0|abc")
	if _, err := c.Do(context.Background(), revoke("auth0|abc")); err != nil {
		t.Fatal(err)
	}
	s.ExpireTokens() // the cached token is no longer valid at Auth0
	if _, err := c.Do(context.Background(), revoke("auth0|abc")); err != nil {
		t.Fatalf("Do after expiry: %v", err)
	}
	if n := s.TokenRequests(); n != 2 || len(s.Revoked()) != 2 {
		t.Fatalf("%d token requests, %d revoked; want 2, 2", n, len(s.Revoked()))
	}

	s.SetTokensRejected(true) // every token refused: one refetch, then give up
	_, err := c.Do(context.Background(), revoke("auth0|abc"))
	if !respond.IsPermanent(err) || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("err %v, want permanent 401", err)
	}
	if n := s.TokenRequests(); n != 3 {
		t.Fatalf("%d token requests, want 3 (one refetch)", n)
	}
}

func TestPathTraversalIsEscaped(t *testing.T) {
	s, c := fake(t, allowBlock)
	for _, id := range []string{"auth0|admin", "auth0|abc", "a/b", "x?y=1", "samlp|corp|bob@corp.example"} {
		s.AddUser(id)
	}
	for _, tc := range []struct {
		req     respond.Request
		wire    string
		revoked string // "" when there is no such user
	}{
		{revoke("../../api/v2/users/auth0|admin"), "/api/v2/users/..%2F..%2Fapi%2Fv2%2Fusers%2Fauth0%7Cadmin/sessions", ""},
		{revoke("auth0|admin/../auth0|abc"), "/api/v2/users/auth0%7Cadmin%2F..%2Fauth0%7Cabc/sessions", ""},
		{revoke("a/b"), "/api/v2/users/a%2Fb/sessions", "a/b"},
		{revoke("x?y=1"), "/api/v2/users/x%3Fy=1/sessions", "x?y=1"},
		{revoke("samlp|corp|bob@corp.example"), "/api/v2/users/samlp%7Ccorp%7Cbob@corp.example/sessions", "samlp|corp|bob@corp.example"},
		{block("auth0|abc/sessions"), "/api/v2/users/auth0%7Cabc%2Fsessions", ""},
	} {
		before, beforeRevoked := len(s.Requests()), len(s.Revoked())
		_, err := c.Do(context.Background(), tc.req)
		var mgmt []auth0test.Request
		for _, r := range s.Requests()[before:] {
			if r.Path != "/oauth/token" {
				mgmt = append(mgmt, r)
			}
		}
		if len(mgmt) != 1 || mgmt[0].Path != tc.wire {
			t.Fatalf("%q: management requests %+v, want one to %s", tc.req.UserID, mgmt, tc.wire)
		}
		got := s.Revoked()[beforeRevoked:]
		if tc.revoked == "" {
			if !respond.IsPermanent(err) || len(got) != 0 {
				t.Fatalf("%q: err %v, revoked %q", tc.req.UserID, err, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, []string{tc.revoked}) {
			t.Fatalf("%q: err %v, revoked %q", tc.req.UserID, err, got)
		}
	}
	if slices.Contains(s.Revoked(), "auth0|admin") || slices.Contains(s.Revoked(), "auth0|abc") || len(s.Blocked()) != 0 {
		t.Fatalf("revoked %q, blocked %q", s.Revoked(), s.Blocked())
	}
}

func TestRefusesBadIDs(t *testing.T) {
	s, c := fake(t)
	for _, id := range []string{"", ".", "..", "auth0|a\nb", strings.Repeat("a", 600)} {
		if _, err := c.Do(context.Background(), revoke(id)); !respond.IsPermanent(err) {
			t.Errorf("%q: err %v, want permanent", id, err)
		}
	}
	if len(s.Requests()) != 0 {
		t.Fatalf("requests %+v", s.Requests())
	}
}

func TestSecretsNotEchoed(t *testing.T) {
	const secret = "SECRET-client-secret-value"
	var issued atomic.Value
	issued.Store("")
	for _, tc := range []struct {
		name  string
		token int // status of /oauth/token
		mgmt  int // status of the management call
	}{
		{"token 401", 401, 0},
		{"token 500", 500, 0},
		{"management 403", 200, 403},
		{"management 500", 200, 500},
		{"management 429", 200, 429},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/oauth/token" {
				var body map[string]string
				_ = json.NewDecoder(r.Body).Decode(&body)
				if tc.token != 200 {
					w.WriteHeader(tc.token)
					fmt.Fprintf(w, `{"error":"access_denied","error_description":"bad secret %s for %s"}`, body["client_secret"], body["client_id"])
					return
				}
				tok := "tok-" + strconv.FormatInt(time.Now().UnixNano(), 36)
				issued.Store(tok)
				fmt.Fprintf(w, `{"access_token":%q,"expires_in":86400,"token_type":"Bearer"}`, tok)
				return
			}
			w.WriteHeader(tc.mgmt)
			fmt.Fprintf(w, `{"statusCode":%d,"error":"x","message":"refused %s","errorCode":"insufficient_scope"}`, tc.mgmt, r.Header.Get("Authorization"))
		}))
		c := newClient(t, srv.URL, "client-id", secret)
		_, err := c.Do(context.Background(), revoke("auth0|abc"))
		srv.Close()
		if err == nil {
			t.Fatalf("%s: no error", tc.name)
		}
		tok := issued.Load().(string)
		if strings.Contains(err.Error(), secret) || (tok != "" && strings.Contains(err.Error(), tok)) {
			t.Fatalf("%s: error %q carries a secret", tc.name, err)
		}
		if !strings.Contains(err.Error(), "[redacted]") {
			t.Fatalf("%s: error %q, want the vendor's message with the secret redacted", tc.name, err)
		}
	}
}

func TestOversizedBodyRefused(t *testing.T) {
	var mgmt atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/oauth/token" {
			mgmt.Add(1)
			w.WriteHeader(http.StatusAccepted)
			return
		}
		fmt.Fprint(w, `{"access_token":"tok","expires_in":86400,"token_type":"Bearer","pad":"`)
		fmt.Fprint(w, strings.Repeat("x", outbound.MaxBody+10))
		fmt.Fprint(w, `"}`)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, "id", "secret")
	_, err := c.Do(context.Background(), revoke("auth0|abc"))
	if !errors.Is(err, outbound.ErrBodyTooLarge) {
		t.Fatalf("err %v, want ErrBodyTooLarge", err)
	}
	if mgmt.Load() != 0 {
		t.Fatal("called the Management API with a token from an oversized answer")
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		fmt.Fprint(w, `{"access_token":"tok","expires_in":86400,"token_type":"Bearer"}`)
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect) // 307 would resend the secret
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, "id", "secret")
	_, err := c.Do(context.Background(), revoke("auth0|abc"))
	if !respond.IsPermanent(err) || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("err %v, want a permanent redirect error", err)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the redirect was followed %d times", n)
	}
}

func TestValidate(t *testing.T) {
	creds := func(c *auth0.Config) { c.ClientID, c.ClientSecret = "id", "secret" }
	for _, tc := range []struct {
		name    string
		domain  string
		mod     func(*auth0.Config)
		wantErr string
	}{
		{"disabled", "", func(*auth0.Config) {}, ""},
		{"tenant domain", "acme.us.auth0.com", creds, ""},
		{"https URL", "https://acme.us.auth0.com", creds, ""},
		{"https URL slash", "https://acme.us.auth0.com/", creds, ""},
		{"loopback http", "http://127.0.0.1:8443", creds, ""},
		{"localhost http", "http://localhost:8443", creds, ""},
		{"http elsewhere", "http://acme.us.auth0.com", creds, "auth0-domain"},
		{"http lookalike", "http://127.0.0.1.nip.example", creds, "auth0-domain"},
		{"domain with path", "acme.us.auth0.com/api/v2", creds, "auth0-domain"},
		{"URL with path", "https://acme.us.auth0.com/api/v2", creds, "auth0-domain"},
		{"userinfo", "user@acme.us.auth0.com", creds, "auth0-domain"},
		{"URL userinfo", "https://user:pw@acme.us.auth0.com", creds, "auth0-domain"},
		{"no client id", "acme.us.auth0.com", func(c *auth0.Config) { c.ClientSecret = "secret" }, "auth0-client-id"},
		{"no secret", "acme.us.auth0.com", func(c *auth0.Config) { c.ClientID = "id" }, "auth0-client-secret"},
		{"credentials without domain", "", creds, "auth0-domain"},
		{"no timeout", "acme.us.auth0.com", func(c *auth0.Config) { creds(c); c.Timeout = 0 }, "auth0-timeout"},
	} {
		cfg := auth0.DefaultConfig()
		cfg.Domain = tc.domain
		tc.mod(&cfg)
		err := cfg.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: err %v, want one naming %s", tc.name, err, tc.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "secret\"") {
			t.Errorf("%s: error %q carries the secret", tc.name, err)
		}
	}
	if _, err := auth0.New(auth0.DefaultConfig()); err == nil {
		t.Fatal("New accepted a disabled config")
	}
}

func TestSettings(t *testing.T) {
	cfg := auth0.DefaultConfig()
	values := map[string]string{"auth0-domain": "acme.us.auth0.com", "auth0-client-id": "id", "auth0-client-secret": "secret", "auth0-block-user": "true", "auth0-timeout": "3s"}
	secret := map[string]bool{"auth0-client-secret": true}
	seen := 0
	for _, s := range cfg.Settings() {
		v, ok := values[s.Name]
		if !ok {
			t.Fatalf("unexpected setting %s", s.Name)
		}
		seen++
		if s.Secret != secret[s.Name] || s.Usage == "" {
			t.Errorf("%s: secret %v, usage %q", s.Name, s.Secret, s.Usage)
		}
		if err := s.Set(v); err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
	}
	if seen != len(values) {
		t.Fatalf("%d settings, want %d", seen, len(values))
	}
	if cfg.Domain != "acme.us.auth0.com" || cfg.ClientID != "id" || cfg.ClientSecret != "secret" || !cfg.BlockUser || cfg.Timeout != 3*time.Second || !cfg.Enabled() {
		t.Fatalf("config %+v", cfg)
	}
	if d := auth0.DefaultConfig(); d.Timeout != 10*time.Second || d.BlockUser {
		t.Fatalf("defaults %+v", d)
	}
}
