package auth0

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/connectors/auth0/auth0test"
	"github.com/pushbackhq/pushback/connectors/respond"
)

// clock is a settable clock for the client's token cache.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestTokenRefetchedShortlyBeforeExpiry(t *testing.T) {
	s := auth0test.NewServer()
	defer s.Close()
	s.AddUser("auth0|abc")
	s.SetTokenLifetime(time.Hour)
	cfg := DefaultConfig()
	cfg.Domain, cfg.ClientID, cfg.ClientSecret = s.URL(), s.ClientID, s.ClientSecret
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Now()}
	c.now = clk.Now
	do := func() {
		t.Helper()
		if _, err := c.Do(context.Background(), respond.Request{UserID: "auth0|abc", Action: respond.RevokeSessions}); err != nil {
			t.Fatal(err)
		}
	}
	do()
	clk.Advance(58 * time.Minute)
	do()
	if n := s.TokenRequests(); n != 1 {
		t.Fatalf("%d token requests 58 minutes into a one-hour token, want 1", n)
	}
	clk.Advance(90 * time.Second) // within a minute of expiry
	do()
	if n := s.TokenRequests(); n != 2 {
		t.Fatalf("%d token requests within a minute of expiry, want 2", n)
	}
	clk.Advance(2 * time.Minute)
	do()
	if n := s.TokenRequests(); n != 2 {
		t.Fatalf("%d token requests with the new token fresh, want 2", n)
	}
}

func TestShortLivedTokenIsKeptForHalfItsLife(t *testing.T) {
	s := auth0test.NewServer()
	defer s.Close()
	s.AddUser("auth0|abc")
	s.SetTokenLifetime(10 * time.Second)
	cfg := DefaultConfig()
	cfg.Domain, cfg.ClientID, cfg.ClientSecret = s.URL(), s.ClientID, s.ClientSecret
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Now()}
	c.now = clk.Now
	req := respond.Request{UserID: "auth0|abc", Action: respond.RevokeSessions}
	for _, step := range []struct {
		advance time.Duration
		tokens  int
	}{{0, 1}, {4 * time.Second, 1}, {2 * time.Second, 2}} {
		clk.Advance(step.advance)
		if _, err := c.Do(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		if n := s.TokenRequests(); n != step.tokens {
			t.Fatalf("after %s: %d token requests, want %d", step.advance, n, step.tokens)
		}
	}
}

func TestAudience(t *testing.T) {
	for domain, want := range map[string]string{
		"acme.us.auth0.com":          "https://acme.us.auth0.com/api/v2/",
		"https://acme.us.auth0.com/": "https://acme.us.auth0.com/api/v2/",
		"http://127.0.0.1:8080":      "http://127.0.0.1:8080/api/v2/",
	} {
		cfg := DefaultConfig()
		cfg.Domain, cfg.ClientID, cfg.ClientSecret = domain, "id", "secret"
		c, err := New(cfg)
		if err != nil {
			t.Fatalf("%s: %v", domain, err)
		}
		if c.audience != want || c.base.String()+"/oauth/token" != want[:len(want)-len("/api/v2/")]+"/oauth/token" {
			t.Errorf("%s: audience %s, base %s; want audience %s", domain, c.audience, c.base, want)
		}
	}
}
