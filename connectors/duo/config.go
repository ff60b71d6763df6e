package duo

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/pushbackhq/pushback/pkg/outbound"
	"github.com/pushbackhq/pushback/pkg/settings"
)

// DefaultTimeout bounds each call when duo-timeout is not set.
const DefaultTimeout = 10 * time.Second

// MaxTimeout bounds duo-timeout.
const MaxTimeout = 2 * time.Minute

// Config is how Pushback reaches one Duo account: an Admin API
// application's API hostname, integration key and secret key.
type Config struct {
	// URL is the API hostname, https://api-XXXXXXXX.duosecurity.com; a bare
	// host means https.
	URL string
	// IKey is the Admin API application's integration key.
	IKey string
	// SKey is its secret key.
	SKey string
	// Timeout bounds each HTTP call.
	Timeout time.Duration
	// Poll reads the account's authentication logs into intake
	// (connectors/poll): Duo has no webhooks, so this is how its logs come.
	Poll bool
}

// DefaultConfig returns a 10s timeout; the connector is off until a URL is
// set.
func DefaultConfig() Config { return Config{Timeout: DefaultTimeout, Poll: true} }

// Settings binds the configuration to its flags, environment variables and
// YAML keys.
func (c *Config) Settings() []settings.Setting {
	return []settings.Setting{
		settings.String(&c.URL, "duo-url", "Duo Admin API hostname (api-XXXXXXXX.duosecurity.com, https:// implied); setting it turns the Duo response connector on"),
		settings.String(&c.IKey, "duo-ikey", "integration key of the Duo Admin API application"),
		settings.SecretString(&c.SKey, "duo-skey", "secret key of the Duo Admin API application"),
		settings.Duration(&c.Timeout, "duo-timeout", "bound of each call to the Duo Admin API"),
		settings.Bool(&c.Poll, "duo-poll", "when duo-url is set, poll Duo's authentication logs into intake (the Admin API application then also needs \"Grant read log\")"),
	}
}

// Enabled reports whether the connector is configured.
func (c Config) Enabled() bool { return c.URL != "" }

// String names the host and integration key, never the secret key.
func (c Config) String() string {
	skey := "unset"
	if c.SKey != "" {
		skey = "set"
	}
	return fmt.Sprintf("duo.Config{url: %s, ikey: %q, skey: %s, timeout: %s}", c.URL, c.IKey, skey, c.Timeout)
}

// GoString never shows the secret key either.
func (c Config) GoString() string { return c.String() }

// LogValue keeps the secret key out of logs.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Validate reports every inconsistency, naming settings, never the secret
// key.
func (c Config) Validate() error {
	var errs []error
	if c.URL != "" || c.IKey != "" || c.SKey != "" {
		if c.URL == "" {
			errs = append(errs, errors.New("duo-url: required with duo-ikey and duo-skey"))
		} else if _, err := c.apiURL(); err != nil {
			errs = append(errs, err)
		}
		if c.IKey == "" {
			errs = append(errs, errors.New("duo-ikey: required with duo-url"))
		} else if !alnum(c.IKey, 64) {
			errs = append(errs, fmt.Errorf("duo-ikey: %q is not an integration key (letters and digits)", c.IKey))
		}
		if c.SKey == "" {
			errs = append(errs, errors.New("duo-skey: required with duo-url"))
		} else if strings.ContainsFunc(c.SKey, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			errs = append(errs, errors.New("duo-skey: contains whitespace or control characters"))
		}
	}
	if c.Timeout <= 0 || c.Timeout > MaxTimeout {
		errs = append(errs, fmt.Errorf("duo-timeout: must be above 0 and at most %s", MaxTimeout))
	}
	return errors.Join(errs...)
}

// apiURL is the API's base URL: https unless http to loopback, a host and
// no path; https's default port is dropped, since the host is signed.
func (c Config) apiURL() (*url.URL, error) {
	raw := strings.TrimSpace(c.URL)
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := outbound.ParseURL("duo-url", raw)
	if err != nil {
		return nil, err
	}
	if u.Path != "" {
		return nil, fmt.Errorf("duo-url: %q must be the API hostname without a path", c.URL)
	}
	if u.Scheme == "https" && u.Port() == "443" {
		u.Host = strings.TrimSuffix(u.Host, ":443")
	}
	return u, nil
}

// alnum reports whether s is 1 to n ASCII letters and digits.
func alnum(s string, n int) bool {
	if s == "" || len(s) > n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
