package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/services/console"
)

func TestConfigValidate(t *testing.T) {
	if err := console.DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*console.Config)
	}{
		{"console-session-ttl", func(c *console.Config) { c.SessionTTL = 0 }},
		{"console-session-ttl", func(c *console.Config) { c.SessionTTL = 48 * time.Hour }},
		{"console-max-sessions", func(c *console.Config) { c.MaxSessions = 0 }},
		{"console-login-attempts", func(c *console.Config) { c.LoginAttempts = 0 }},
		{"console-call-timeout", func(c *console.Config) { c.CallTimeout = 0 }},
	} {
		c := console.DefaultConfig()
		tc.mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%+v: %v, want an error naming %s", c, err, tc.name)
		}
	}
}

// TestNoOperatorTokensNoSignIn: on a mesh without operator tokens (the
// newcomer's, which answers every local RPC) the console still lets
// nobody in, and says why.
func TestNoOperatorTokensNoSignIn(t *testing.T) {
	c, err := console.New(console.Options{Config: console.DefaultConfig(), Decisions: &fakeDecisions{}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{h: c.Handler()}
	lc, csrf := e.loginForm(t)
	w := e.do(t, "GET", "/console/", nil, "")
	if !strings.Contains(w.Body.String(), "No operator tokens are configured") {
		t.Fatalf("the sign-in page does not say that no operator token is configured:\n%s", w.Body)
	}
	for _, token := range []string{"", " ", operatorToken} {
		w := e.do(t, "POST", "/console/login", url.Values{"csrf": {csrf}, "operator": {"ana"}, "token": {token}}, "", lc)
		if w.Code == http.StatusSeeOther || cookieOf(w, "pushback_console_session") != nil {
			t.Fatalf("signed in with %q and no operator tokens configured", token)
		}
	}
}
