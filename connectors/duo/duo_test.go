package duo_test

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

	"github.com/pushbackhq/pushback/connectors/duo"
	"github.com/pushbackhq/pushback/connectors/duo/duotest"
	"github.com/pushbackhq/pushback/connectors/respond"
)

func config(s *duotest.Server) duo.Config {
	return duo.Config{URL: s.URL, IKey: s.IKey, SKey: s.SKey, Timeout: 5 * time.Second}
}

func setup(t *testing.T) (*duotest.Server, *duo.Client) {
	t.Helper()
	s := duotest.New()
	t.Cleanup(s.Close)
	c, err := duo.New(config(s))
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func disable(t *testing.T, c *duo.Client, username string) (respond.Result, error) {
	t.Helper()
	return do(t, c, username, "disabled")
}

func do(t *testing.T, c *duo.Client, username, status string) (respond.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.Do(ctx, respond.Request{Tenant: "acme", UserID: username, Action: respond.SetUserStatus, Status: status, IncidentID: "inc-1"})
}

func changes(s *duotest.Server) []string {
	var out []string
	for _, ch := range s.StatusChanges() {
		out = append(out, ch.Username+":"+ch.From+">"+ch.To)
	}
	return out
}

func TestNameAndSupports(t *testing.T) {
	_, c := setup(t)
	if c.Name() != "duo" {
		t.Errorf("Name() = %q", c.Name())
	}
	for _, a := range respond.Actions {
		if c.Supports(a) != (a == respond.SetUserStatus) {
			t.Errorf("Supports(%s) = %v", a, c.Supports(a))
		}
	}
	_, err := c.Do(context.Background(), respond.Request{UserID: "alice", Action: respond.RevokeSessions})
	if !respond.IsPermanent(err) {
		t.Errorf("unsupported action: %v", err)
	}
}

func TestDisableUser(t *testing.T) {
	s, c := setup(t)
	s.AddUser("bob")
	id := s.AddUser("alice")
	res, err := disable(t, c, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got := changes(s); !slices.Equal(got, []string{"alice:active>disabled"}) {
		t.Fatalf("changes %v", got)
	}
	if u, _ := s.User(id); u.Status != "disabled" {
		t.Errorf("alice is %q", u.Status)
	}
	if res.IdPUserID != id {
		t.Errorf("IdPUserID = %q, want %q", res.IdPUserID, id)
	}
	if want := "GET /admin/v1/users?username=: 200; POST /admin/v1/users/{user_id} status=disabled: 200"; res.Detail != want {
		t.Errorf("Detail = %q, want %q", res.Detail, want)
	}
	reqs := s.Requests()
	if len(reqs) != 2 || reqs[0].Method != "GET" || reqs[0].Query != "username=alice" ||
		reqs[1].Method != "POST" || reqs[1].Path != "/admin/v1/users/"+id || reqs[1].Params.Encode() != "status=disabled" {
		t.Errorf("requests %+v", reqs)
	}
	// Once more: idempotent.
	if _, err := disable(t, c, "alice"); err != nil {
		t.Fatal(err)
	}
}

func TestDisableByAlias(t *testing.T) {
	s, c := setup(t)
	id := s.AddUser("alice", "alice@example.com", "ACME\\alice")
	res, err := disable(t, c, "Alice@Example.com")
	if err != nil {
		t.Fatal(err)
	}
	if res.IdPUserID != id || len(s.StatusChanges()) != 1 {
		t.Errorf("result %+v, changes %v", res, changes(s))
	}
}

func TestUnknownUserIsPermanent(t *testing.T) {
	s, c := setup(t)
	s.AddUser("alice")
	_, err := disable(t, c, "mallory")
	if !respond.IsPermanent(err) || !errors.Is(err, duo.ErrUserNotFound) {
		t.Fatalf("%v, want permanent user not found", err)
	}
	if len(s.StatusChanges()) != 0 {
		t.Errorf("changes %v", changes(s))
	}
}

// Duo's Modify User takes active, bypass or disabled; "locked out" is
// Duo's own, bypass would let the attacker in, active is no response.
func TestOnlyDisabledIsSet(t *testing.T) {
	s, c := setup(t)
	s.AddUser("alice")
	for _, status := range []string{"locked out", "bypass", "active", "", "Disabled", "disabled ", "pending deletion"} {
		_, err := do(t, c, "alice", status)
		if !respond.IsPermanent(err) {
			t.Errorf("status %q: %v, want permanent", status, err)
		}
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("%d requests made for refused statuses", n)
	}
}

func TestInvalidUsernamesRefused(t *testing.T) {
	s, c := setup(t)
	for _, name := range []string{"", "a\nb", "a\x00b", "\xff", strings.Repeat("a", 1025)} {
		if _, err := disable(t, c, name); !respond.IsPermanent(err) {
			t.Errorf("username %q: %v, want permanent", name, err)
		}
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("%d requests made", n)
	}
}

func TestBadSecretKeyIsPermanent(t *testing.T) {
	s, _ := setup(t)
	s.AddUser("alice")
	cfg := config(s)
	cfg.SKey = "WrongSecretKeyWrongSecretKeyWrongSecret0"
	c, err := duo.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = disable(t, c, "alice")
	if !respond.IsPermanent(err) || !strings.Contains(err.Error(), "40103") || !strings.Contains(err.Error(), "Invalid signature") {
		t.Fatalf("%v, want permanent 40103", err)
	}
	if strings.Contains(err.Error(), cfg.SKey) || strings.Contains(err.Error(), s.SKey) {
		t.Errorf("error %q holds a secret key", err)
	}
	cfg = config(s)
	cfg.IKey = "DIXXXXXXXXXXXXXXXXXX"
	c, _ = duo.New(cfg)
	if _, err := disable(t, c, "alice"); !respond.IsPermanent(err) || !strings.Contains(err.Error(), "40102") {
		t.Errorf("wrong ikey: %v, want permanent 40102", err)
	}
	if len(s.StatusChanges()) != 0 {
		t.Errorf("changes %v", changes(s))
	}
}

func TestSecretKeyNeverInErrors(t *testing.T) {
	s, c := setup(t)
	s.AddUser("alice")
	s.LeakSecret(true)
	s.FailNext(1, http.StatusInternalServerError, "")
	_, err := disable(t, c, "alice")
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), s.SKey) {
		t.Fatalf("error %q holds the secret key", err)
	}
	if !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("error %q: the leak was not where the test expects it", err)
	}
	cfg := config(s)
	if strings.Contains(cfg.String(), cfg.SKey) {
		t.Errorf("Config.String() shows the secret key")
	}
}

func TestMissingPermissionIsPermanent(t *testing.T) {
	s, c := setup(t)
	s.AddUser("alice")
	for _, perm := range [][2]bool{{false, true}, {true, false}} {
		s.SetPermissions(perm[0], perm[1])
		_, err := disable(t, c, "alice")
		if !respond.IsPermanent(err) || !strings.Contains(err.Error(), "40301") {
			t.Errorf("read %v write %v: %v, want permanent 40301", perm[0], perm[1], err)
		}
	}
	if len(s.StatusChanges()) != 0 {
		t.Errorf("changes %v", changes(s))
	}
}

func TestRateLimitIsRetryAfter(t *testing.T) {
	s, c := setup(t)
	s.AddUser("alice")
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{{"30", 30 * time.Second}, {"", duo.DefaultRateLimitWait}} {
		s.RateLimit(1, tc.header)
		_, err := disable(t, c, "alice")
		var ra *respond.RetryAfter
		if !errors.As(err, &ra) || ra.Wait != tc.want {
			t.Errorf("Retry-After %q: %v, want *respond.RetryAfter of %s", tc.header, err, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), "42901") {
			t.Errorf("error %q does not name Duo's code", err)
		}
	}
	if duo.DefaultRateLimitWait != 60*time.Second {
		t.Errorf("DefaultRateLimitWait = %s", duo.DefaultRateLimitWait)
	}
	if len(s.StatusChanges()) != 0 {
		t.Errorf("changes %v", changes(s))
	}
}

func TestServerErrorsAreRetryable(t *testing.T) {
	s, c := setup(t)
	s.AddUser("alice")
	for _, status := range []int{500, 502, 503} {
		s.FailNext(1, status, "")
		_, err := disable(t, c, "alice")
		var ra *respond.RetryAfter
		if err == nil || respond.IsPermanent(err) || errors.As(err, &ra) {
			t.Errorf("HTTP %d: %v, want a plain retryable error", status, err)
		}
	}
	if _, err := disable(t, c, "alice"); err != nil {
		t.Fatal(err)
	}
}

func TestHungServerTimesOut(t *testing.T) {
	s, _ := setup(t)
	s.AddUser("alice")
	cfg := config(s)
	cfg.Timeout = 200 * time.Millisecond
	c, err := duo.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.SetHang(true)
	start := time.Now()
	_, err = disable(t, c, "alice")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Do took %s with a 200ms timeout", took)
	}
	if err == nil || respond.IsPermanent(err) {
		t.Errorf("%v, want a retryable error", err)
	}
}

func TestDoHonoursContext(t *testing.T) {
	s, c := setup(t)
	s.SetHang(true)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Do(ctx, respond.Request{UserID: "alice", Action: respond.SetUserStatus, Status: "disabled"})
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("Do returned %v after %s", err, time.Since(start))
	}
}

// A username crafted to leave its query value reaches one user at most:
// the one it literally names.
func TestCraftedUsernamesStayOneQueryValue(t *testing.T) {
	for _, name := range []string{"../../x", "a/b", "x?y=1", "x&username=alice", "%2e%2e", "a b+c", "alice#", "alice%26username%3Dalice"} {
		t.Run(name, func(t *testing.T) {
			s, c := setup(t)
			s.AddUser("alice")
			s.AddUser("x")
			victim := s.AddUser(name)
			res, err := disable(t, c, name)
			if err != nil {
				t.Fatal(err)
			}
			if res.IdPUserID != victim {
				t.Errorf("IdPUserID %q, want %q", res.IdPUserID, victim)
			}
			if got := changes(s); !slices.Equal(got, []string{name + ":active>disabled"}) {
				t.Errorf("changes %v", got)
			}
			get := s.Requests()[0]
			if got := get.Params["username"]; len(get.Params) != 1 || !slices.Equal(got, []string{name}) {
				t.Errorf("lookup params %v", get.Params)
			}
		})
	}
}

// A lookup whose filter got lost answers every user; the first of them
// must not be disabled.
func TestLostFilterIsRefused(t *testing.T) {
	s, c := setup(t)
	s.AddUser("ceo")
	s.AddUser("alice")
	s.IgnoreUsernameFilter(true)
	_, err := disable(t, c, "alice")
	if !respond.IsPermanent(err) {
		t.Fatalf("%v, want permanent", err)
	}
	// One user answered, but another one.
	s2, c2 := setup(t)
	s2.AddUser("ceo")
	s2.IgnoreUsernameFilter(true)
	if _, err := disable(t, c2, "alice"); !respond.IsPermanent(err) {
		t.Errorf("%v, want permanent", err)
	}
	if len(s.StatusChanges())+len(s2.StatusChanges()) != 0 {
		t.Errorf("changes %v %v", changes(s), changes(s2))
	}
}

func TestOversizedBodyIsRefused(t *testing.T) {
	s, c := setup(t)
	s.AddUser("alice")
	s.SetHugeBody(true)
	_, err := disable(t, c, "alice")
	if err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("%v, want the body refused", err)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	s, _ := setup(t)
	s.AddUser("alice")
	var mu sync.Mutex
	hits := 0
	r := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		http.Redirect(w, r, s.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer r.Close()
	cfg := config(s)
	cfg.URL = r.URL
	c, err := duo.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = disable(t, c, "alice")
	if !respond.IsPermanent(err) {
		t.Errorf("%v, want permanent", err)
	}
	if hits != 1 || len(s.Requests()) != 0 {
		t.Errorf("redirect followed: %d redirects, %d requests at Duo", hits, len(s.Requests()))
	}
}
