package entra

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pushbackhq/pushback/pkg/outbound"
	"github.com/pushbackhq/pushback/pkg/settings"
)

// Defaults of the public cloud.
const (
	DefaultLoginURL = "https://login.microsoftonline.com"
	DefaultGraphURL = "https://graph.microsoft.com"
	DefaultTimeout  = 10 * time.Second
	// Scope is what the client credentials grant asks for: the Graph
	// application permissions granted to the app registration.
	Scope = "https://graph.microsoft.com/.default"
	// MaxTimeout bounds entra-timeout.
	MaxTimeout = 2 * time.Minute
)

// Config is how Pushback reaches one Microsoft Entra tenant: an app
// registration with a client secret and the Graph application permissions
// named in docs/connectors/entra.md.
type Config struct {
	// Tenant is the directory (tenant) id, a GUID, or a verified domain
	// such as contoso.onmicrosoft.com.
	Tenant string
	// ClientID is the application (client) id of the app registration.
	ClientID string
	// ClientSecret is a client secret's value (never its id).
	ClientSecret string
	// LoginURL is the Microsoft identity platform's host.
	LoginURL string
	// GraphURL is Microsoft Graph's host.
	GraphURL string
	// Timeout bounds each HTTP call.
	Timeout time.Duration
	// Poll reads the tenant's sign-ins from Graph into intake
	// (connectors/poll).
	Poll bool
}

// DefaultConfig returns the public cloud's URLs, a 10s timeout and
// polling on; the connector is off until a tenant is set.
func DefaultConfig() Config {
	return Config{LoginURL: DefaultLoginURL, GraphURL: DefaultGraphURL, Timeout: DefaultTimeout, Poll: true}
}

// Settings binds the configuration to its flags, environment variables and
// YAML keys.
func (c *Config) Settings() []settings.Setting {
	return []settings.Setting{
		settings.String(&c.Tenant, "entra-tenant", "Microsoft Entra directory (tenant) id or verified domain; setting it turns the Entra response connector on"),
		settings.String(&c.ClientID, "entra-client-id", "application (client) id of the app registration the Entra connector signs in as"),
		settings.SecretString(&c.ClientSecret, "entra-client-secret", "client secret value of that app registration"),
		settings.String(&c.LoginURL, "entra-login-url", "Microsoft identity platform URL the connector gets its tokens from"),
		settings.String(&c.GraphURL, "graph-url", "Microsoft Graph URL the connector calls"),
		settings.Duration(&c.Timeout, "entra-timeout", "bound of each call to the identity platform or Graph"),
		settings.Bool(&c.Poll, "entra-poll", "when entra-tenant is set, poll the tenant's sign-ins from Microsoft Graph into intake (the app then also needs AuditLog.Read.All; Entra ID P1 or P2)"),
	}
}

// Enabled reports whether the connector is configured.
func (c Config) Enabled() bool { return c.Tenant != "" }

// String names the tenant and client, never the secret.
func (c Config) String() string {
	secret := "unset"
	if c.ClientSecret != "" {
		secret = "set"
	}
	return fmt.Sprintf("entra.Config{tenant: %q, client id: %q, client secret: %s, login: %s, graph: %s, timeout: %s}",
		c.Tenant, c.ClientID, secret, c.LoginURL, c.GraphURL, c.Timeout)
}

// GoString never shows the secret either.
func (c Config) GoString() string { return c.String() }

// LogValue keeps the secret out of logs.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Validate reports every inconsistency, naming settings, never the secret.
func (c Config) Validate() error {
	var errs []error
	if c.Tenant != "" || c.ClientID != "" || c.ClientSecret != "" {
		if c.Tenant == "" {
			errs = append(errs, errors.New("entra-tenant: required with entra-client-id and entra-client-secret"))
		} else if !ValidTenant(c.Tenant) {
			errs = append(errs, fmt.Errorf("entra-tenant: %q is neither a directory id (GUID) nor a domain name", c.Tenant))
		}
		if c.ClientID == "" {
			errs = append(errs, errors.New("entra-client-id: required with entra-tenant"))
		} else if !IsGUID(c.ClientID) {
			errs = append(errs, fmt.Errorf("entra-client-id: %q is not an application id (GUID)", c.ClientID))
		}
		if c.ClientSecret == "" {
			errs = append(errs, errors.New("entra-client-secret: required with entra-tenant"))
		} else if strings.TrimSpace(c.ClientSecret) != c.ClientSecret || strings.ContainsFunc(c.ClientSecret, isControl) {
			errs = append(errs, errors.New("entra-client-secret: contains whitespace at its ends or control characters"))
		}
	}
	if err := baseURL("entra-login-url", c.LoginURL); err != nil {
		errs = append(errs, err)
	}
	if err := baseURL("graph-url", c.GraphURL); err != nil {
		errs = append(errs, err)
	}
	if c.Timeout <= 0 || c.Timeout > MaxTimeout {
		errs = append(errs, fmt.Errorf("entra-timeout: must be above 0 and at most %s", MaxTimeout))
	}
	return errors.Join(errs...)
}

// baseURL checks a base URL: https (http to loopback only), no path.
func baseURL(setting, raw string) error {
	u, err := outbound.ParseURL(setting, raw)
	if err != nil {
		return err
	}
	if u.Path != "" {
		return fmt.Errorf("%s: %q must be scheme://host[:port] without a path", setting, raw)
	}
	return nil
}

// IsGUID reports whether s is a GUID in its 8-4-4-4-12 hex form.
func IsGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// ValidTenant reports whether s is a directory id (GUID) or a domain name
// (at least two dot-separated labels of letters, digits and hyphens), so
// that it is one path segment of the token URL and nothing else.
func ValidTenant(s string) bool {
	if IsGUID(s) {
		return true
	}
	if len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
