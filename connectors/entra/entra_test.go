package entra_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/connectors/entra"
	"github.com/pushbackhq/pushback/connectors/entra/entratest"
	"github.com/pushbackhq/pushback/connectors/respond"
)

const (
	aliceID  = "6f1c3a52-9d4e-4b7a-8c21-0e5d2f3a4b61"
	aliceUPN = "alice@contoso.onmicrosoft.com"
	bobID    = "0b7e9c11-2f3d-4e5a-9b68-7c1d2e3f4a5b"
	bobUPN   = "bob@contoso.onmicrosoft.com"
)

func config(s *entratest.Server) entra.Config {
	return entra.Config{
		Tenant:       s.Tenant,
		ClientID:     s.ClientID,
		ClientSecret: s.ClientSecret,
		LoginURL:     s.URL,
		GraphURL:     s.URL,
		Timeout:      5 * time.Second,
	}
}

func setup(t *testing.T) (*entratest.Server, *entra.Client) {
	t.Helper()
	s := entratest.New()
	t.Cleanup(s.Close)
	s.AddUser(aliceID, aliceUPN)
	s.AddUser(bobID, bobUPN)
	c, err := entra.New(config(s))
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func do(t *testing.T, c *entra.Client, action respond.Action, id string) (respond.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.Do(ctx, respond.Request{Tenant: "acme", UserID: id, Action: action, IncidentID: "inc-1"})
}

func mustDo(t *testing.T, c *entra.Client, action respond.Action, id string) respond.Result {
	t.Helper()
	res, err := do(t, c, action, id)
	if err != nil {
		t.Fatalf("Do(%s, %q): %v", action, id, err)
	}
	return res
}

func TestNameAndSupports(t *testing.T) {
	_, c := setup(t)
	if c.Name() != "entra" {
		t.Errorf("Name() = %q", c.Name())
	}
	for _, a := range respond.Actions {
		want := a == respond.RevokeSessions || a == respond.ConfirmCompromised
		if c.Supports(a) != want {
			t.Errorf("Supports(%s) = %v, want %v", a, !want, want)
		}
	}
	_, err := do(t, c, respond.BlockUser, aliceID)
	if !respond.IsPermanent(err) {
		t.Errorf("unsupported action: %v, want a permanent error", err)
	}
}

func TestRevokeSessionsByUPN(t *testing.T) {
	s, c := setup(t)
	res := mustDo(t, c, respond.RevokeSessions, "Alice@Contoso.onmicrosoft.com")
	if got := s.Revoked(); !slices.Equal(got, []string{aliceID}) {
		t.Fatalf("revoked %v, want only alice", got)
	}
	if res.Detail != "POST /v1.0/users/{id}/revokeSignInSessions: 200" {
		t.Errorf("Detail = %q", res.Detail)
	}
	if res.IdPUserID != "" {
		t.Errorf("IdPUserID = %q; a UPN is not resolved for a revocation", res.IdPUserID)
	}
	reqs := s.Requests()
	last := reqs[len(reqs)-1]
	if last.Method != "POST" || last.Path != "/v1.0/users/Alice@Contoso.onmicrosoft.com/revokeSignInSessions" {
		t.Errorf("request %+v", last)
	}
}

func TestRevokeSessionsByObjectID(t *testing.T) {
	s, c := setup(t)
	res := mustDo(t, c, respond.RevokeSessions, strings.ToUpper(bobID))
	if got := s.Revoked(); !slices.Equal(got, []string{bobID}) {
		t.Fatalf("revoked %v, want only bob", got)
	}
	if res.IdPUserID != bobID {
		t.Errorf("IdPUserID = %q, want %q", res.IdPUserID, bobID)
	}
}

func TestConfirmCompromisedByObjectID(t *testing.T) {
	s, c := setup(t)
	res := mustDo(t, c, respond.ConfirmCompromised, aliceID)
	if got := s.Compromised(); !slices.Equal(got, []string{aliceID}) {
		t.Fatalf("compromised %v", got)
	}
	if res.IdPUserID != aliceID || res.Detail != "POST /v1.0/identityProtection/riskyUsers/confirmCompromised: 204" {
		t.Errorf("result %+v", res)
	}
	for _, r := range s.Requests() {
		if r.Method == "GET" {
			t.Errorf("an object id was looked up: %+v", r)
		}
	}
}

func TestConfirmCompromisedResolvesUPN(t *testing.T) {
	s, c := setup(t)
	res := mustDo(t, c, respond.ConfirmCompromised, "BOB@contoso.onmicrosoft.com")
	if got := s.Compromised(); !slices.Equal(got, []string{bobID}) {
		t.Fatalf("compromised %v, want bob's object id", got)
	}
	if res.IdPUserID != bobID {
		t.Errorf("IdPUserID = %q", res.IdPUserID)
	}
	want := "GET /v1.0/users/{upn}?$select=id: 200; POST /v1.0/identityProtection/riskyUsers/confirmCompromised: 204"
	if res.Detail != want {
		t.Errorf("Detail = %q, want %q", res.Detail, want)
	}
	var lookups []entratest.Request
	for _, r := range s.Requests() {
		if r.Method == "GET" {
			lookups = append(lookups, r)
		}
	}
	if len(lookups) != 1 || lookups[0].Query != "$select=id" || lookups[0].User != "BOB@contoso.onmicrosoft.com" {
		t.Errorf("lookups %+v", lookups)
	}
}

// A UPN starting with $ would read as a system segment; Graph documents
// /users('$upn') for it.
func TestDollarUPNIsAddressedAsAKey(t *testing.T) {
	s, c := setup(t)
	id := entratest.NewID()
	s.AddUser(id, "$adm'in@contoso.onmicrosoft.com")
	mustDo(t, c, respond.RevokeSessions, "$adm'in@contoso.onmicrosoft.com")
	if got := s.Revoked(); !slices.Equal(got, []string{id}) {
		t.Fatalf("revoked %v", got)
	}
	reqs := s.Requests()
	if p := reqs[len(reqs)-1].Path; p != "/v1.0/users('%24adm%27%27in@contoso.onmicrosoft.com')/revokeSignInSessions" {
		t.Errorf("path %q", p)
	}
}

func TestUnknownUserIsPermanent(t *testing.T) {
	s, c := setup(t)
	for _, tc := range []struct {
		action respond.Action
		id     string
	}{
		{respond.RevokeSessions, "nobody@contoso.onmicrosoft.com"},
		{respond.RevokeSessions, entratest.NewID()},
		{respond.ConfirmCompromised, "nobody@contoso.onmicrosoft.com"},
		{respond.ConfirmCompromised, entratest.NewID()},
	} {
		_, err := do(t, c, tc.action, tc.id)
		if !respond.IsPermanent(err) || !errors.Is(err, entra.ErrUserNotFound) {
			t.Errorf("%s %s: %v, want permanent user not found", tc.action, tc.id, err)
		}
		if err != nil && !strings.Contains(err.Error(), "404") {
			t.Errorf("error %q does not name the status", err)
		}
	}
	if len(s.Revoked())+len(s.Compromised()) != 0 {
		t.Errorf("acted on someone: %v %v", s.Revoked(), s.Compromised())
	}
}

func TestInvalidUserIDsRefusedBeforeAnyCall(t *testing.T) {
	s, c := setup(t)
	for _, id := range []string{"", ".", "..", "a\nb", "a\x00b", strings.Repeat("a", 1025)} {
		_, err := do(t, c, respond.RevokeSessions, id)
		if !respond.IsPermanent(err) {
			t.Errorf("id %q: %v, want permanent", id, err)
		}
	}
	if n := s.TokenRequests() + s.GraphRequests(); n != 0 {
		t.Errorf("%d requests made", n)
	}
}

func TestBadSecretIsPermanentAndNotEchoed(t *testing.T) {
	s, _ := setup(t)
	cfg := config(s)
	cfg.ClientSecret = "Wrong8Q~notTheSecretAtAll0123456789"
	c, err := entra.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = do(t, c, respond.RevokeSessions, aliceID)
	if !respond.IsPermanent(err) {
		t.Fatalf("%v, want permanent", err)
	}
	if !strings.Contains(err.Error(), "invalid_client") || !strings.Contains(err.Error(), "AADSTS7000215") || !strings.Contains(err.Error(), "401") {
		t.Errorf("error %q does not say what AAD said", err)
	}
	if strings.Contains(err.Error(), cfg.ClientSecret) || strings.Contains(err.Error(), s.ClientSecret) {
		t.Errorf("error %q holds a secret", err)
	}
	if strings.Contains(err.Error(), "Trace ID") {
		t.Errorf("error %q keeps AAD's trace lines", err)
	}
	if s.GraphRequests() != 0 || len(s.Revoked()) != 0 {
		t.Error("Graph was called without a token")
	}
}

// A server that echoes the secret it was sent must not get it into an
// error (and so into the audit trail or a log).
func TestSecretNeverInErrors(t *testing.T) {
	s, _ := setup(t)
	s.EchoSecret(true)
	cfg := config(s)
	cfg.ClientSecret = "Wrong8Q~echoedBackByAHostileServer99"
	c, _ := entra.New(cfg)
	_, err := do(t, c, respond.RevokeSessions, aliceID)
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), cfg.ClientSecret) {
		t.Fatalf("error %q holds the secret", err)
	}
	if !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Errorf("error %q lost AAD's code", err)
	}
	if strings.Contains(cfg.String(), cfg.ClientSecret) {
		t.Errorf("Config.String() shows the secret: %s", cfg.String())
	}
}

func TestOtherTokenErrorsArePermanent(t *testing.T) {
	s, _ := setup(t)
	for name, mutate := range map[string]func(*entra.Config){
		"unknown tenant": func(c *entra.Config) { c.Tenant = "fabrikam.onmicrosoft.com" },
		"unknown client": func(c *entra.Config) { c.ClientID = entratest.NewID() },
	} {
		cfg := config(s)
		mutate(&cfg)
		c, err := entra.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := do(t, c, respond.RevokeSessions, aliceID); !respond.IsPermanent(err) {
			t.Errorf("%s: %v, want permanent", name, err)
		}
	}
	cfg := config(s)
	cfg.Tenant = s.TenantDomain // a verified domain is a tenant too
	c, _ := entra.New(cfg)
	mustDo(t, c, respond.RevokeSessions, aliceID)
}

func TestTokenEndpointOutageIsRetryable(t *testing.T) {
	s, c := setup(t)
	s.FailTokenNext(1, http.StatusServiceUnavailable, "")
	_, err := do(t, c, respond.RevokeSessions, aliceID)
	if err == nil || respond.IsPermanent(err) {
		t.Fatalf("%v, want a retryable error", err)
	}
	mustDo(t, c, respond.RevokeSessions, aliceID)
	if s.TokenRequests() != 2 {
		t.Errorf("%d token requests, want 2 (a failed fetch is not cached)", s.TokenRequests())
	}
}

func TestMissingPermissionIsPermanent(t *testing.T) {
	s, c := setup(t)
	s.SetPermissions()
	for _, a := range []respond.Action{respond.RevokeSessions, respond.ConfirmCompromised} {
		_, err := do(t, c, a, aliceID)
		if !respond.IsPermanent(err) || errors.Is(err, entra.ErrUserNotFound) {
			t.Errorf("%s: %v, want permanent", a, err)
		}
		if err != nil && (!strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "Authorization_RequestDenied")) {
			t.Errorf("%s: error %q does not say what Graph said", a, err)
		}
	}
}

// Each action works with exactly the permissions docs/connectors/entra.md
// lists for it.
func TestLeastPrivilege(t *testing.T) {
	s, c := setup(t)
	s.SetPermissions(entratest.UserRevokeSessions)
	mustDo(t, c, respond.RevokeSessions, aliceUPN)
	if _, err := do(t, c, respond.ConfirmCompromised, aliceID); !respond.IsPermanent(err) {
		t.Errorf("confirm without IdentityRiskyUser.ReadWrite.All: %v", err)
	}
	s.SetPermissions(entratest.IdentityRiskyUserReadWrite)
	mustDo(t, c, respond.ConfirmCompromised, aliceID)
	if _, err := do(t, c, respond.ConfirmCompromised, aliceUPN); !respond.IsPermanent(err) {
		t.Errorf("UPN lookup without User.Read.All: %v", err)
	}
	s.SetPermissions(entratest.IdentityRiskyUserReadWrite, entratest.UserRead)
	mustDo(t, c, respond.ConfirmCompromised, aliceUPN)
}

func TestRateLimitIsRetryAfter(t *testing.T) {
	s, c := setup(t)
	s.RateLimit(1, "7")
	_, err := do(t, c, respond.RevokeSessions, aliceID)
	var ra *respond.RetryAfter
	if !errors.As(err, &ra) {
		t.Fatalf("%v, want *respond.RetryAfter", err)
	}
	if ra.Wait != 7*time.Second {
		t.Errorf("Wait = %s, want 7s", ra.Wait)
	}
	if respond.IsPermanent(err) {
		t.Error("a rate limit is not permanent")
	}
	if len(s.Revoked()) != 0 {
		t.Error("revoked despite the 429")
	}
	mustDo(t, c, respond.RevokeSessions, aliceID)
}

func TestServiceUnavailableWithRetryAfter(t *testing.T) {
	s, c := setup(t)
	s.FailNext(1, http.StatusServiceUnavailable, "12")
	_, err := do(t, c, respond.ConfirmCompromised, aliceID)
	var ra *respond.RetryAfter
	if !errors.As(err, &ra) || ra.Wait != 12*time.Second {
		t.Fatalf("%v, want *respond.RetryAfter of 12s", err)
	}
}

func TestServerErrorsAreRetryable(t *testing.T) {
	s, c := setup(t)
	for _, status := range []int{500, 502, 503, 504} {
		s.FailNext(1, status, "")
		_, err := do(t, c, respond.RevokeSessions, aliceID)
		var ra *respond.RetryAfter
		if err == nil || respond.IsPermanent(err) || errors.As(err, &ra) {
			t.Errorf("HTTP %d: %v, want a plain retryable error", status, err)
		}
	}
	mustDo(t, c, respond.RevokeSessions, aliceID)
}

func TestHungServerTimesOut(t *testing.T) {
	s, _ := setup(t)
	cfg := config(s)
	cfg.Timeout = 200 * time.Millisecond
	c, err := entra.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustDo(t, c, respond.RevokeSessions, aliceID) // token cached
	s.SetHang(true)
	for _, tc := range []struct {
		name   string
		client *entra.Client
	}{{"graph", c}, {"token", mustNew(t, cfg)}} {
		start := time.Now()
		_, err := do(t, tc.client, respond.RevokeSessions, aliceID)
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s: Do took %s with a 200ms timeout", tc.name, took)
		}
		if err == nil || respond.IsPermanent(err) {
			t.Errorf("%s: %v, want a retryable error", tc.name, err)
		}
	}
}

func mustNew(t *testing.T, cfg entra.Config) *entra.Client {
	t.Helper()
	c, err := entra.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDoHonoursContext(t *testing.T) {
	s, c := setup(t)
	s.SetHang(true)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Do(ctx, respond.Request{UserID: aliceID, Action: respond.RevokeSessions})
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("Do returned %v after %s", err, time.Since(start))
	}
}

func TestTokenCachedAcrossCalls(t *testing.T) {
	s, c := setup(t)
	mustDo(t, c, respond.RevokeSessions, aliceID)
	mustDo(t, c, respond.ConfirmCompromised, bobUPN)
	mustDo(t, c, respond.RevokeSessions, bobUPN)
	if n := s.TokenRequests(); n != 1 {
		t.Errorf("%d token requests for 3 calls, want 1", n)
	}
}

func TestConcurrentCallersShareOneFetch(t *testing.T) {
	s, c := setup(t)
	s.SetTokenDelay(300 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := do(t, c, respond.RevokeSessions, aliceID)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := s.TokenRequests(); n != 1 {
		t.Errorf("%d token requests for 8 concurrent callers, want 1", n)
	}
}

// A caller that gives up while the token is fetched does not fail the
// others.
func TestAbandonedFetchServesOthers(t *testing.T) {
	s, c := setup(t)
	s.SetTokenDelay(400 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Do(ctx, respond.Request{UserID: aliceID, Action: respond.RevokeSessions})
		done <- err
	}()
	// The impatient caller starts the fetch.
	for deadline := time.Now().Add(10 * time.Second); s.TokenRequests() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no token request")
		}
	}
	res := mustDo(t, c, respond.RevokeSessions, bobID)
	if err := <-done; err == nil {
		t.Error("the impatient caller succeeded")
	}
	if res.IdPUserID != bobID || s.TokenRequests() != 1 {
		t.Errorf("result %+v after %d token requests", res, s.TokenRequests())
	}
}

func TestExpiredTokenIsRefetched(t *testing.T) {
	s, c := setup(t)
	s.SetTokenLifetime(time.Second)
	mustDo(t, c, respond.RevokeSessions, aliceID)
	mustDo(t, c, respond.RevokeSessions, aliceID)
	if n := s.TokenRequests(); n != 1 {
		t.Fatalf("%d token requests before expiry, want 1", n)
	}
	time.Sleep(1500 * time.Millisecond)
	mustDo(t, c, respond.RevokeSessions, aliceID)
	if n := s.TokenRequests(); n != 2 {
		t.Errorf("%d token requests after expiry, want 2", n)
	}
	if n := s.Unauthorized(); n != 0 {
		t.Errorf("Graph refused %d expired tokens; the client should renew before expiry", n)
	}
}

func TestUnauthorizedRefetchesOnce(t *testing.T) {
	s, c := setup(t)
	mustDo(t, c, respond.RevokeSessions, aliceID)
	s.ExpireTokens()
	mustDo(t, c, respond.RevokeSessions, bobID)
	if n := s.TokenRequests(); n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
	if got := s.Revoked(); !slices.Equal(got, []string{aliceID, bobID}) {
		t.Errorf("revoked %v", got)
	}
}

func TestPersistentUnauthorizedIsPermanentAfterOneRefetch(t *testing.T) {
	s, c := setup(t)
	s.RejectTokens(true)
	_, err := do(t, c, respond.RevokeSessions, aliceID)
	if !respond.IsPermanent(err) || !strings.Contains(err.Error(), "InvalidAuthenticationToken") {
		t.Fatalf("%v, want permanent InvalidAuthenticationToken", err)
	}
	if s.TokenRequests() != 2 || s.GraphRequests() != 2 {
		t.Errorf("%d token and %d Graph requests, want 2 and 2", s.TokenRequests(), s.GraphRequests())
	}
}

// An id crafted to leave its path segment or its query value reaches one
// user at most: the one whose id it literally is.
func TestCraftedIDsStayOneSegment(t *testing.T) {
	for _, id := range []string{"../../x", "a/b", "x?y=1", "%2e%2e", "a#b", "../revokeSignInSessions", "x/../../identityProtection/riskyUsers/confirmCompromised", "a%2Fb", "a b+c&d=e"} {
		t.Run(id, func(t *testing.T) {
			s, c := setup(t)
			victimID := entratest.NewID()
			s.AddUser(victimID, id)
			mustDo(t, c, respond.RevokeSessions, id)
			mustDo(t, c, respond.ConfirmCompromised, id)
			if got := s.Revoked(); !slices.Equal(got, []string{victimID}) {
				t.Errorf("revoked %v, want only %s", got, victimID)
			}
			if got := s.Compromised(); !slices.Equal(got, []string{victimID}) {
				t.Errorf("compromised %v, want only %s", got, victimID)
			}
			for _, r := range s.Requests() {
				if r.Method == "POST" && strings.HasPrefix(r.Path, "/v1.0/users/") {
					if r.User != id || strings.Count(r.Path, "/") != 4 || r.Query != "" {
						t.Errorf("revocation request %+v: not one segment", r)
					}
				}
				if r.Method == "GET" && (r.User != id || r.Query != "$select=id" || strings.Count(r.Path, "/") != 3) {
					t.Errorf("lookup %+v: not one segment and one query", r)
				}
			}
		})
	}
}

func TestOversizedBodyIsRefused(t *testing.T) {
	s, c := setup(t)
	mustDo(t, c, respond.RevokeSessions, aliceID)
	s.SetHugeBody(true)
	_, err := do(t, c, respond.RevokeSessions, aliceID)
	if err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("%v, want the body refused", err)
	}
}

// redirector answers every request with a redirect to target and counts
// them.
func redirector(t *testing.T, target string, status int) (*httptest.Server, *int) {
	var n int
	var mu sync.Mutex
	r := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		http.Redirect(w, r, target+r.URL.RequestURI(), status)
	}))
	t.Cleanup(r.Close)
	return r, &n
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	s, _ := setup(t)
	// Graph redirects: the token must not follow.
	r, hits := redirector(t, s.URL, http.StatusTemporaryRedirect)
	cfg := config(s)
	cfg.GraphURL = r.URL
	c := mustNew(t, cfg)
	_, err := do(t, c, respond.RevokeSessions, aliceID)
	if err == nil || !respond.IsPermanent(err) {
		t.Errorf("graph redirect: %v, want a permanent error", err)
	}
	if *hits != 1 || s.GraphRequests() != 0 {
		t.Errorf("redirect followed: %d redirects, %d Graph requests", *hits, s.GraphRequests())
	}
	// The token endpoint redirects: the secret must not follow.
	r2, hits2 := redirector(t, s.URL, http.StatusTemporaryRedirect)
	cfg = config(s)
	cfg.LoginURL = r2.URL
	c = mustNew(t, cfg)
	tokensBefore := s.TokenRequests()
	_, err = do(t, c, respond.RevokeSessions, aliceID)
	if err == nil {
		t.Error("token redirect: no error")
	}
	if *hits2 != 1 || s.TokenRequests() != tokensBefore {
		t.Errorf("redirect followed: %d redirects, %d token requests", *hits2, s.TokenRequests()-tokensBefore)
	}
	if len(s.Revoked()) != 0 {
		t.Errorf("revoked %v", s.Revoked())
	}
}
