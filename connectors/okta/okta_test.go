package okta_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/connectors/okta"
	"github.com/pushbackhq/pushback/connectors/okta/oktatest"
	"github.com/pushbackhq/pushback/connectors/respond"
	"github.com/pushbackhq/pushback/pkg/outbound"
)

func newClient(t *testing.T, url, token string, mod ...func(*okta.Config)) *okta.Client {
	t.Helper()
	cfg := okta.DefaultConfig()
	cfg.URL, cfg.Token = url, token
	for _, m := range mod {
		m(&cfg)
	}
	c, err := okta.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func fake(t *testing.T) (*oktatest.Server, *okta.Client) {
	t.Helper()
	s := oktatest.NewServer()
	t.Cleanup(s.Close)
	return s, newClient(t, s.URL(), s.Token)
}

func revoke(user string) respond.Request {
	return respond.Request{Tenant: "acme", UserID: user, Action: respond.RevokeSessions, IncidentID: "inc1"}
}

func paths(reqs []oktatest.Request) []string {
	var out []string
	for _, r := range reqs {
		p := r.Method + " " + r.Path
		if r.RawQuery != "" {
			p += "?" + r.RawQuery
		}
		out = append(out, p)
	}
	return out
}

func TestRevokeSessionsByLogin(t *testing.T) {
	s, c := fake(t)
	s.AddUser("00u1", "bob@acme.com")
	s.AddUser("00u2", "alice@acme.com")
	res, err := c.Do(context.Background(), revoke("bob@acme.com"))
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if got := s.Revoked(); !slices.Equal(got, []oktatest.Revocation{{UserID: "00u1"}}) {
		t.Fatalf("revoked %+v, want 00u1 without OAuth tokens", got)
	}
	if res.IdPUserID != "00u1" || res.Detail != "DELETE /api/v1/users/00u1/sessions: 204" {
		t.Fatalf("result %+v", res)
	}
	want := []string{"GET /api/v1/users/bob@acme.com", "DELETE /api/v1/users/00u1/sessions"}
	if got := paths(s.Requests()); !slices.Equal(got, want) {
		t.Fatalf("requests %q, want %q", got, want)
	}
	for _, r := range s.Requests() {
		if r.Accept != "application/json" || r.Authorization != "SSWS "+s.Token || !strings.Contains(strings.ToLower(r.UserAgent), "pushback") {
			t.Fatalf("headers of %s %s: accept %q, auth %q, user agent %q", r.Method, r.Path, r.Accept, r.Authorization, r.UserAgent)
		}
	}
}

func TestRevokeSessionsByOktaID(t *testing.T) {
	s, c := fake(t)
	s.AddUser("00u1", "bob@acme.com")
	res, err := c.Do(context.Background(), revoke("00u1"))
	if err != nil || res.IdPUserID != "00u1" {
		t.Fatalf("Do: %+v, %v", res, err)
	}
	if got := s.Revoked(); len(got) != 1 || got[0].UserID != "00u1" {
		t.Fatalf("revoked %+v", got)
	}
}

func TestLoginOddCase(t *testing.T) {
	s, c := fake(t)
	s.AddUser("00u1", "Bob.Smith@Acme.com")
	res, err := c.Do(context.Background(), revoke("bOB.smith@ACME.COM"))
	if err != nil || res.IdPUserID != "00u1" {
		t.Fatalf("Do: %+v, %v", res, err)
	}
	if got := s.Revoked(); len(got) != 1 || got[0].UserID != "00u1" {
		t.Fatalf("revoked %+v", got)
	}
}

func TestRevokeTokens(t *testing.T) {
	s, c := fake(t)
	s.AddUser("00u1", "bob@acme.com")
	req := revoke("bob@acme.com")
	req.Action = respond.RevokeTokens
	res, err := c.Do(context.Background(), req)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if got := s.Revoked(); !slices.Equal(got, []oktatest.Revocation{{UserID: "00u1", OAuthTokens: true}}) {
		t.Fatalf("revoked %+v, want OAuth tokens too", got)
	}
	if res.Detail != "DELETE /api/v1/users/00u1/sessions?oauthTokens=true: 204" {
		t.Fatalf("detail %q", res.Detail)
	}
}

func TestRevokeOAuthTokensConfigured(t *testing.T) {
	s := oktatest.NewServer()
	defer s.Close()
	s.AddUser("00u1", "bob@acme.com")
	c := newClient(t, s.URL(), s.Token, func(c *okta.Config) { c.RevokeOAuthTokens = true })
	if _, err := c.Do(context.Background(), revoke("bob@acme.com")); err != nil {
		t.Fatalf("Do: %v", err)
	}
	if got := s.Revoked(); len(got) != 1 || !got[0].OAuthTokens {
		t.Fatalf("revoked %+v, want OAuth tokens (okta-revoke-oauth-tokens)", got)
	}
}

func TestSupports(t *testing.T) {
	_, c := fake(t)
	if c.Name() != "okta" {
		t.Fatalf("name %q", c.Name())
	}
	for _, a := range respond.Actions {
		want := a == respond.RevokeSessions || a == respond.RevokeTokens
		if c.Supports(a) != want {
			t.Errorf("Supports(%s) = %v", a, !want)
		}
	}
	req := revoke("bob@acme.com")
	req.Action = respond.BlockUser
	if _, err := c.Do(context.Background(), req); !respond.IsPermanent(err) {
		t.Fatalf("unsupported action: %v, want permanent", err)
	}
}

func TestUnknownUserIsPermanent(t *testing.T) {
	s, c := fake(t)
	s.AddUser("00u1", "bob@acme.com")
	_, err := c.Do(context.Background(), revoke("mallory@acme.com"))
	if !respond.IsPermanent(err) {
		t.Fatalf("err %v, want permanent", err)
	}
	for _, want := range []string{"user not found", "E0000007", "HTTP 404"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if len(s.Revoked()) != 0 {
		t.Fatalf("revoked %+v", s.Revoked())
	}
}

func TestBadTokenIsPermanent(t *testing.T) {
	s := oktatest.NewServer()
	defer s.Close()
	s.AddUser("00u1", "bob@acme.com")
	c := newClient(t, s.URL(), "00wrong-token")
	_, err := c.Do(context.Background(), revoke("bob@acme.com"))
	if !respond.IsPermanent(err) || !strings.Contains(err.Error(), "E0000011") {
		t.Fatalf("err %v, want permanent E0000011", err)
	}
	if strings.Contains(err.Error(), "00wrong-token") {
		t.Fatalf("error %q carries the token", err)
	}
}

func TestFakeAcceptsSSWSOnly(t *testing.T) {
	s := oktatest.NewServer()
	defer s.Close()
	s.AddUser("00u1", "bob@acme.com")
	for _, auth := range []string{"", "Bearer " + s.Token, "ssws " + s.Token, "SSWS " + s.Token + "x"} {
		req, _ := http.NewRequest(http.MethodGet, s.URL()+"/api/v1/users/00u1", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := outbound.ReadBody(resp, 0)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), `"errorCode":"E0000011"`) {
			t.Errorf("Authorization %q: HTTP %d %s", auth, resp.StatusCode, body)
		}
	}
}

func TestForbiddenIsPermanent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			fmt.Fprint(w, `{"id":"00u1","profile":{"login":"bob@acme.com"}}`)
			return
		}
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"errorCode":"E0000006","errorSummary":"You do not have permission to perform the requested action","errorLink":"E0000006","errorId":"x","errorCauses":[]}`)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, "tok")
	_, err := c.Do(context.Background(), revoke("bob@acme.com"))
	if !respond.IsPermanent(err) || !strings.Contains(err.Error(), "E0000006") || !strings.Contains(err.Error(), "HTTP 403") {
		t.Fatalf("err %v, want permanent 403 E0000006", err)
	}
}

func TestRateLimitIsRetryAfter(t *testing.T) {
	s, c := fake(t)
	s.AddUser("00u1", "bob@acme.com")
	s.SetRateLimit(2) // one Do is two calls
	if _, err := c.Do(context.Background(), revoke("bob@acme.com")); err != nil {
		t.Fatalf("first Do: %v", err)
	}
	_, err := c.Do(context.Background(), revoke("bob@acme.com"))
	var ra *respond.RetryAfter
	if !errors.As(err, &ra) {
		t.Fatalf("err %v, want *respond.RetryAfter", err)
	}
	// The window resets a minute after it began, as X-Rate-Limit-Reset says.
	if ra.Wait <= 0 || ra.Wait > 61*time.Second {
		t.Fatalf("wait %s, want the time to X-Rate-Limit-Reset (0-60s)", ra.Wait)
	}
	if respond.IsPermanent(err) || !strings.Contains(err.Error(), "E0000047") {
		t.Fatalf("err %v", err)
	}
	if len(s.Revoked()) != 1 {
		t.Fatalf("revoked %+v", s.Revoked())
	}
}

func TestServerErrorIsRetryable(t *testing.T) {
	s, c := fake(t)
	s.AddUser("00u1", "bob@acme.com")
	s.FailNext(1)
	_, err := c.Do(context.Background(), revoke("bob@acme.com"))
	var ra *respond.RetryAfter
	if err == nil || respond.IsPermanent(err) || errors.As(err, &ra) {
		t.Fatalf("err %v, want a plain retryable error", err)
	}
	if !strings.Contains(err.Error(), "HTTP 500") || !strings.Contains(err.Error(), "E0000009") {
		t.Fatalf("err %v", err)
	}
	// The retry succeeds.
	if _, err := c.Do(context.Background(), revoke("bob@acme.com")); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if len(s.Revoked()) != 1 {
		t.Fatalf("revoked %+v", s.Revoked())
	}
}

func TestHungServerTimesOut(t *testing.T) {
	s := oktatest.NewServer()
	defer s.Close()
	s.AddUser("00u1", "bob@acme.com")
	s.SetHang(true)
	c := newClient(t, s.URL(), s.Token, func(c *okta.Config) { c.Timeout = 200 * time.Millisecond })
	start := time.Now()
	_, err := c.Do(context.Background(), revoke("bob@acme.com"))
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("Do took %s with a 200ms timeout", elapsed)
	}
	var ra *respond.RetryAfter
	if err == nil || respond.IsPermanent(err) || errors.As(err, &ra) {
		t.Fatalf("err %v, want a retryable timeout", err)
	}
}

func TestContextCancelStopsDo(t *testing.T) {
	s, c := fake(t)
	s.AddUser("00u1", "bob@acme.com")
	s.SetHang(true)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Do(ctx, revoke("bob@acme.com"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's deadline", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("Do took %s", elapsed)
	}
}

func TestPathTraversalIsEscaped(t *testing.T) {
	s, c := fake(t)
	s.AddUser("00uadmin", "admin@acme.com")
	s.AddUser("00uab", "a/b")
	s.AddUser("00uq", "x?y=1")
	s.AddUser("00upct", "100%@acme.com")

	for _, tc := range []struct {
		user, wire string
		revoked    string // "" when Okta cannot find the user
	}{
		{"../../api/v1/users/admin", "/api/v1/users/..%2F..%2Fapi%2Fv1%2Fusers%2Fadmin", ""},
		{"admin/../../sessions", "/api/v1/users/admin%2F..%2F..%2Fsessions", ""},
		{"a/b", "/api/v1/users/a%2Fb", ""}, // Okta fetches logins with a "/" by id only
		{"x?y=1", "/api/v1/users/x%3Fy=1", "00uq"},
		{"100%@acme.com", "/api/v1/users/100%25@acme.com", "00upct"},
	} {
		before := len(s.Requests())
		beforeRevoked := len(s.Revoked())
		_, err := c.Do(context.Background(), revoke(tc.user))
		reqs := s.Requests()[before:]
		if len(reqs) == 0 || reqs[0].Method != http.MethodGet || reqs[0].Path != tc.wire || reqs[0].RawQuery != "" {
			t.Fatalf("%q: first request %+v, want GET %s", tc.user, reqs, tc.wire)
		}
		got := s.Revoked()[beforeRevoked:]
		if tc.revoked == "" {
			if !respond.IsPermanent(err) || len(got) != 0 || len(reqs) != 1 {
				t.Fatalf("%q: err %v, revoked %+v, requests %q", tc.user, err, got, paths(reqs))
			}
			continue
		}
		if err != nil || len(got) != 1 || got[0].UserID != tc.revoked {
			t.Fatalf("%q: err %v, revoked %+v, want %s only", tc.user, err, got, tc.revoked)
		}
	}
	for _, r := range s.Revoked() {
		if r.UserID == "00uadmin" {
			t.Fatal("the admin's sessions were revoked")
		}
	}
}

func TestRefusesMeAndDotSegments(t *testing.T) {
	s, c := fake(t)
	s.AddUser("00u1", "bob@acme.com")
	for _, id := range []string{"me", "ME", ".", "..", "", "bob\n@acme.com", strings.Repeat("a", 300)} {
		if _, err := c.Do(context.Background(), revoke(id)); !respond.IsPermanent(err) {
			t.Errorf("%q: err %v, want permanent", id, err)
		}
	}
	if n := len(s.Requests()); n != 0 {
		t.Fatalf("%d requests sent for refused ids: %q", n, paths(s.Requests()))
	}
}

func TestResolvedToAnotherUserIsRefused(t *testing.T) {
	// A server that answers any lookup with the admin must not get the
	// admin's sessions revoked.
	var deletes atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			deletes.Add(1)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		fmt.Fprint(w, `{"id":"00uadmin","profile":{"login":"admin@acme.com"}}`)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, "tok")
	if _, err := c.Do(context.Background(), revoke("bob@acme.com")); !respond.IsPermanent(err) {
		t.Fatalf("err %v, want permanent", err)
	}
	// A shortname Okta resolves is the same user.
	res, err := c.Do(context.Background(), revoke("Admin"))
	if err != nil || res.IdPUserID != "00uadmin" {
		t.Fatalf("shortname: %+v, %v", res, err)
	}
	if deletes.Load() != 1 {
		t.Fatalf("%d deletes, want 1 (the shortname)", deletes.Load())
	}
}

func TestUnusableIDIsNotUsed(t *testing.T) {
	var deletes atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			deletes.Add(1)
		}
		fmt.Fprint(w, `{"id":"../00uadmin","profile":{"login":"bob@acme.com"}}`)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, "tok")
	if _, err := c.Do(context.Background(), revoke("bob@acme.com")); err == nil {
		t.Fatal("Do accepted an id that is not an Okta id")
	}
	if deletes.Load() != 0 {
		t.Fatalf("%d deletes", deletes.Load())
	}
}

func TestTokenNotEchoed(t *testing.T) {
	const token = "00SECRET-okta-token-value"
	for _, status := range []int{http.StatusUnauthorized, http.StatusInternalServerError, http.StatusTooManyRequests} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"errorCode":"E0000011","errorSummary":"Invalid token provided: %s","errorLink":"E0000011","errorId":"%s","errorCauses":[]}`,
				r.Header.Get("Authorization"), token)
		}))
		c := newClient(t, srv.URL, token)
		_, err := c.Do(context.Background(), revoke("bob@acme.com"))
		srv.Close()
		if err == nil {
			t.Fatalf("HTTP %d: no error", status)
		}
		if strings.Contains(err.Error(), token) {
			t.Fatalf("HTTP %d: error %q carries the token", status, err)
		}
		if !strings.Contains(err.Error(), "E0000011") {
			t.Fatalf("HTTP %d: error %q lacks the error code", status, err)
		}
	}
}

func TestOversizedBodyRefused(t *testing.T) {
	var deletes atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			deletes.Add(1)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		fmt.Fprint(w, `{"id":"00u1","profile":{"login":"bob@acme.com"},"pad":"`)
		fmt.Fprint(w, strings.Repeat("x", outbound.MaxBody+10))
		fmt.Fprint(w, `"}`)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, "tok")
	_, err := c.Do(context.Background(), revoke("bob@acme.com"))
	if !errors.Is(err, outbound.ErrBodyTooLarge) {
		t.Fatalf("err %v, want ErrBodyTooLarge", err)
	}
	if deletes.Load() != 0 {
		t.Fatalf("%d deletes after an oversized lookup", deletes.Load())
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		fmt.Fprint(w, `{"id":"00u1","profile":{"login":"bob@acme.com"}}`)
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, "tok")
	_, err := c.Do(context.Background(), revoke("bob@acme.com"))
	if !respond.IsPermanent(err) || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("err %v, want a permanent redirect error", err)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the redirect was followed %d times", n)
	}
}

func TestFakeMethodNotAllowed(t *testing.T) {
	s := oktatest.NewServer()
	defer s.Close()
	s.AddUser("00u1", "bob@acme.com")
	for _, tc := range []struct{ method, path string }{
		{http.MethodDelete, "/api/v1/users/00u1"},
		{http.MethodPost, "/api/v1/users/00u1"},
		{http.MethodGet, "/api/v1/users/00u1/sessions"},
	} {
		req, _ := http.NewRequest(tc.method, s.URL()+tc.path, nil)
		req.Header.Set("Authorization", "SSWS "+s.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := outbound.ReadBody(resp, 0)
		if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(string(body), "E0000022") {
			t.Errorf("%s %s: HTTP %d %s", tc.method, tc.path, resp.StatusCode, body)
		}
	}
	if len(s.Revoked()) != 0 {
		t.Fatalf("revoked %+v", s.Revoked())
	}
}

func TestFakeDeleteNeedsOktaID(t *testing.T) {
	s := oktatest.NewServer()
	defer s.Close()
	s.AddUser("00u1", "bob@acme.com")
	req, _ := http.NewRequest(http.MethodDelete, s.URL()+"/api/v1/users/bob@acme.com/sessions", nil)
	req.Header.Set("Authorization", "SSWS "+s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || len(s.Revoked()) != 0 {
		t.Fatalf("DELETE by login: HTTP %d, revoked %+v", resp.StatusCode, s.Revoked())
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mod     func(*okta.Config)
		wantErr string // "" for valid
	}{
		{"disabled", func(c *okta.Config) {}, ""},
		{"https", func(c *okta.Config) { c.URL, c.Token = "https://acme.okta.com", "tok" }, ""},
		{"https trailing slash", func(c *okta.Config) { c.URL, c.Token = "https://acme.okta.com/", "tok" }, ""},
		{"loopback http", func(c *okta.Config) { c.URL, c.Token = "http://127.0.0.1:8080", "tok" }, ""},
		{"http elsewhere", func(c *okta.Config) { c.URL, c.Token = "http://acme.okta.com", "tok" }, "okta-url"},
		{"http lookalike", func(c *okta.Config) { c.URL, c.Token = "http://127.0.0.1.evil.example", "tok" }, "okta-url"},
		{"not a URL", func(c *okta.Config) { c.URL, c.Token = "acme.okta.com", "tok" }, "okta-url"},
		{"credentials in URL", func(c *okta.Config) { c.URL, c.Token = "https://u:p@acme.okta.com", "tok" }, "okta-url"},
		{"api path", func(c *okta.Config) { c.URL, c.Token = "https://acme.okta.com/api/v1", "tok" }, "okta-url"},
		{"no token", func(c *okta.Config) { c.URL = "https://acme.okta.com" }, "okta-token"},
		{"token without URL", func(c *okta.Config) { c.Token = "tok" }, "okta-url"},
		{"token with space", func(c *okta.Config) { c.URL, c.Token = "https://acme.okta.com", "a b" }, "okta-token"},
		{"no timeout", func(c *okta.Config) { c.URL, c.Token, c.Timeout = "https://acme.okta.com", "tok", 0 }, "okta-timeout"},
	} {
		cfg := okta.DefaultConfig()
		tc.mod(&cfg)
		err := cfg.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: err %v, want one naming %s", tc.name, err, tc.wantErr)
		}
		if err != nil && cfg.Token != "" && strings.Contains(err.Error(), cfg.Token) && len(cfg.Token) > 3 {
			t.Errorf("%s: error %q carries the token", tc.name, err)
		}
	}
}

func TestNewRefusesDisabledAndInvalid(t *testing.T) {
	if _, err := okta.New(okta.DefaultConfig()); err == nil {
		t.Fatal("New accepted a disabled config")
	}
	cfg := okta.DefaultConfig()
	cfg.URL, cfg.Token = "http://acme.okta.com", "tok"
	if _, err := okta.New(cfg); err == nil {
		t.Fatal("New accepted plain http to a remote host")
	}
}

func TestSettings(t *testing.T) {
	cfg := okta.DefaultConfig()
	got := map[string]bool{}
	for _, s := range cfg.Settings() {
		got[s.Name] = s.Secret
		if s.Usage == "" {
			t.Errorf("%s has no usage", s.Name)
		}
	}
	want := map[string]bool{"okta-url": false, "okta-token": true, "okta-revoke-oauth-tokens": false, "okta-timeout": false, "okta-poll": false}
	if len(got) != len(want) {
		t.Fatalf("settings %v", got)
	}
	for name, secret := range want {
		if s, ok := got[name]; !ok || s != secret {
			t.Errorf("%s: present %v, secret %v", name, ok, s)
		}
	}
	for _, s := range cfg.Settings() {
		if err := s.Set(map[string]string{"okta-url": "https://acme.okta.com", "okta-token": "tok", "okta-revoke-oauth-tokens": "true", "okta-timeout": "3s", "okta-poll": "false"}[s.Name]); err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
	}
	if cfg.URL != "https://acme.okta.com" || cfg.Token != "tok" || !cfg.RevokeOAuthTokens || cfg.Timeout != 3*time.Second || !cfg.Enabled() || cfg.Poll {
		t.Fatalf("config %+v", cfg)
	}
	if !okta.DefaultConfig().Poll {
		t.Fatal("okta-poll is off by default")
	}
	if okta.DefaultConfig().Timeout != 10*time.Second {
		t.Fatalf("default timeout %s", okta.DefaultConfig().Timeout)
	}
}
