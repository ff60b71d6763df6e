package okta

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pushbackhq/pushback/pkg/outbound"
	"github.com/pushbackhq/pushback/pkg/settings"
)

// Config is what an operator sets for the Okta response connector.
type Config struct {
	// URL is the Okta org URL (https://acme.okta.com), without /api/v1.
	URL string
	// Token is an Okta API token, sent as "Authorization: SSWS <token>".
	// It acts with its creator's admin role.
	Token string
	// RevokeOAuthTokens also revokes the user's OpenID Connect and OAuth
	// tokens when sessions are revoked (RevokeTokens always does).
	RevokeOAuthTokens bool
	// Timeout bounds each call to Okta.
	Timeout time.Duration
	// Poll reads the org's System Log into intake (connectors/poll) while
	// the connector is on.
	Poll bool
}

// DefaultConfig returns the defaults: disabled, 10s per call, polling
// the System Log once enabled.
func DefaultConfig() Config {
	return Config{Timeout: outbound.DefaultTimeout, Poll: true}
}

// Settings binds the configuration to its flags.
func (c *Config) Settings() []settings.Setting {
	return []settings.Setting{
		settings.String(&c.URL, "okta-url", "Okta org URL (https://acme.okta.com) the response connector acts on; empty disables the Okta connector"),
		settings.SecretString(&c.Token, "okta-token", "Okta API token (sent as SSWS); it acts with its creator's admin role, so create it as an admin that may only read users and clear their sessions"),
		settings.Bool(&c.RevokeOAuthTokens, "okta-revoke-oauth-tokens", "when revoking a user's Okta sessions, also revoke their OpenID Connect and OAuth tokens (oauthTokens=true)"),
		settings.Duration(&c.Timeout, "okta-timeout", "bound on each call to Okta"),
		settings.Bool(&c.Poll, "okta-poll", "when okta-url is set, poll the Okta System Log into intake (the token then also needs to read the System Log); turn off when Event Hooks deliver the events"),
	}
}

// Enabled reports whether the connector is configured.
func (c Config) Enabled() bool { return strings.TrimSpace(c.URL) != "" }

// Validate reports every inconsistency, naming the flag.
func (c Config) Validate() error {
	var errs []error
	token := strings.TrimSpace(c.Token)
	switch {
	case c.Enabled():
		if u, err := outbound.ParseURL("okta-url", strings.TrimSpace(c.URL)); err != nil {
			errs = append(errs, err)
		} else if p := strings.TrimRight(u.Path, "/"); strings.HasSuffix(p, "/api/v1") || strings.Contains(p, "/api/v1/") {
			errs = append(errs, fmt.Errorf("okta-url: give the org URL (https://acme.okta.com), without %s", u.Path))
		}
		if token == "" {
			errs = append(errs, errors.New("okta-token: required when okta-url is set"))
		}
	case token != "":
		errs = append(errs, errors.New("okta-url: required when okta-token is set"))
	}
	if token != "" && !headerSafe(token) {
		errs = append(errs, errors.New("okta-token: must not contain spaces or control characters"))
	}
	if c.Timeout < 10*time.Millisecond || c.Timeout > 5*time.Minute {
		errs = append(errs, errors.New("okta-timeout: must be between 10ms and 5m"))
	}
	return errors.Join(errs...)
}

// headerSafe reports whether s can be sent in a header as one token.
func headerSafe(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}
