package auth0

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/pushbackhq/pushback/pkg/outbound"
	"github.com/pushbackhq/pushback/pkg/settings"
)

// Config is what an operator sets for the Auth0 response connector.
type Config struct {
	// Domain is the tenant's canonical domain (acme.us.auth0.com, meaning
	// https), or a base URL (http only to a loopback address).
	Domain string
	// ClientID and ClientSecret are a machine-to-machine application's
	// credentials, authorized for the Management API.
	ClientID     string
	ClientSecret string
	// BlockUser allows the block_user action (PATCH blocked=true). Off by
	// default: blocking locks the user out until an admin unblocks them,
	// and it needs the update:users scope.
	BlockUser bool
	// Timeout bounds each call to Auth0.
	Timeout time.Duration
}

// DefaultConfig returns the defaults: disabled, 10s per call, no blocking.
func DefaultConfig() Config {
	return Config{Timeout: outbound.DefaultTimeout}
}

// Settings binds the configuration to its flags.
func (c *Config) Settings() []settings.Setting {
	return []settings.Setting{
		settings.String(&c.Domain, "auth0-domain", "Auth0 tenant domain (acme.us.auth0.com; the canonical domain, not a custom domain) the response connector acts on; empty disables the Auth0 connector"),
		settings.String(&c.ClientID, "auth0-client-id", "client id of the Auth0 machine-to-machine application authorized for the Management API"),
		settings.SecretString(&c.ClientSecret, "auth0-client-secret", "client secret of that application"),
		settings.Bool(&c.BlockUser, "auth0-block-user", "allow the block_user action (PATCH /api/v2/users/{id} blocked=true; needs the update:users scope)"),
		settings.Duration(&c.Timeout, "auth0-timeout", "bound on each call to Auth0"),
	}
}

// Enabled reports whether the connector is configured.
func (c Config) Enabled() bool { return strings.TrimSpace(c.Domain) != "" }

// Validate reports every inconsistency, naming the flag.
func (c Config) Validate() error {
	var errs []error
	id, secret := strings.TrimSpace(c.ClientID), strings.TrimSpace(c.ClientSecret)
	if c.Enabled() {
		if _, err := baseURL(c.Domain); err != nil {
			errs = append(errs, err)
		}
		if id == "" {
			errs = append(errs, errors.New("auth0-client-id: required when auth0-domain is set"))
		}
		if secret == "" {
			errs = append(errs, errors.New("auth0-client-secret: required when auth0-domain is set"))
		}
	} else if id != "" || secret != "" {
		errs = append(errs, errors.New("auth0-domain: required when auth0-client-id or auth0-client-secret is set"))
	}
	if c.Timeout < 10*time.Millisecond || c.Timeout > 5*time.Minute {
		errs = append(errs, errors.New("auth0-timeout: must be between 10ms and 5m"))
	}
	return errors.Join(errs...)
}

// baseURL turns auth0-domain into the tenant's base URL: a bare domain
// means https; a URL is checked by outbound.ParseURL (https, or http to
// loopback). Neither may carry a path.
func baseURL(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	if strings.Contains(raw, "://") {
		u, err := outbound.ParseURL("auth0-domain", raw)
		if err != nil {
			return nil, err
		}
		if u.Path != "" {
			return nil, fmt.Errorf("auth0-domain: %q must not carry a path; give the tenant's base URL", raw)
		}
		return u, nil
	}
	if strings.ContainsAny(raw, "/?#@\\ \t") || raw == "" {
		return nil, fmt.Errorf("auth0-domain: %q is not a domain (acme.us.auth0.com) or a base URL", raw)
	}
	u, err := outbound.ParseURL("auth0-domain", "https://"+raw)
	if err != nil {
		return nil, err
	}
	if u.Host != raw || u.Path != "" || u.Hostname() == "" {
		return nil, fmt.Errorf("auth0-domain: %q is not a domain (acme.us.auth0.com)", raw)
	}
	return u, nil
}
