package radius

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/pushbackhq/pushback/pkg/settings"
	"github.com/pushbackhq/pushback/pkg/validate"
)

// Failure modes: what the gate does when the decision service cannot be
// asked (unreachable, or slower than decide-timeout).
const (
	// FailClosed rejects the login: no push is sent.
	FailClosed = "closed"
	// FailOpen forwards the login to the MFA proxy as if it were allowed.
	FailOpen = "open"
)

// Number-match modes: how the gate asks for a one-time passcode when the
// decision asks for number matching, which a RADIUS push cannot show.
const (
	// NumberMatchAppend answers Access-Challenge asking for the passcode of
	// the user's authenticator app and sends the MFA proxy the password and
	// the passcode joined by the delimiter ("password,123456"), the
	// factor-appending convention of the Duo Authentication Proxy.
	NumberMatchAppend = "append"
	// NumberMatchReject answers Access-Reject: no push is sent, and the
	// Reply-Message asks the user to try again later. For MFA proxies that
	// take no passcode in the password.
	NumberMatchReject = "reject"
)

// Limits on the settings.
const (
	// MinSecretBytes is the shortest shared secret accepted: RADIUS hides
	// passwords and signs packets with MD5 keyed by it, and a short secret
	// falls to an offline guess from one captured packet.
	MinSecretBytes = 16
	// MaxSecretBytes keeps secrets within what RADIUS clients accept.
	MaxSecretBytes = 128
	// MaxUpstreamTimeout bounds upstream-timeout.
	MaxUpstreamTimeout = 5 * time.Minute
	// MaxDecideTimeout bounds decide-timeout.
	MaxDecideTimeout = 30 * time.Second
)

// Config is everything the gate needs. Defaults live in DefaultConfig; the
// binary binds Settings to flags and environment variables.
type Config struct {
	// Listen is the UDP address Access-Requests arrive on.
	Listen string
	// Secret is shared with the VPN (the RADIUS client).
	Secret string
	// SecretFile names a file holding Secret.
	SecretFile string
	// Upstream is host:port of the MFA proxy (the RADIUS server).
	Upstream string
	// UpstreamSecret is shared with the MFA proxy.
	UpstreamSecret string
	// UpstreamSecretFile names a file holding UpstreamSecret.
	UpstreamSecretFile string
	// DecisionAddr is the gRPC address of the decision service.
	DecisionAddr string
	// IntakeAddr is the gRPC address of the intake service (DecisionAddr
	// when empty).
	IntakeAddr string
	// IntakeToken is the log shippers' token the intake service requires.
	IntakeToken string
	// IntakeTokenFile names a file holding IntakeToken.
	IntakeTokenFile string
	// ReportOutcomes feeds what happened to each push back to intake.
	ReportOutcomes bool
	// App is the application id of a NAS-Identifier not in AppMap (the
	// NAS-Identifier itself when empty).
	App string
	// AppMap maps NAS-Identifier values to application ids.
	AppMap map[string]string
	// Tenant of every user the gate sees.
	Tenant string
	// DecideTimeout bounds each Decide call.
	DecideTimeout time.Duration
	// UpstreamTimeout bounds the wait for the MFA proxy's answer, which
	// waits for the user's phone.
	UpstreamTimeout time.Duration
	// IntakeTimeout bounds each report to intake.
	IntakeTimeout time.Duration
	// FailMode is FailClosed or FailOpen.
	FailMode string
	// NumberMatchMode is NumberMatchAppend or NumberMatchReject.
	NumberMatchMode string
	// NumberMatchDelimiter joins password and passcode in append mode.
	NumberMatchDelimiter string
	// ChallengeTimeout is how long a passcode prompt (and an upstream's
	// challenge relayed to the VPN) stays answerable.
	ChallengeTimeout time.Duration
	// RequireMessageAuthenticator drops Access-Requests without a
	// Message-Authenticator (RFC 3579, the Blast-RADIUS mitigation).
	RequireMessageAuthenticator bool
	// UpstreamRequireMessageAuthenticator drops answers of the MFA proxy
	// without a Message-Authenticator.
	UpstreamRequireMessageAuthenticator bool
	// DuplicateWindow is how long an answer is kept for retransmits of its
	// request.
	DuplicateWindow time.Duration
	// MaxInFlight bounds the requests being worked on at once; past it a
	// request is dropped and the VPN's retransmit tries again.
	MaxInFlight int
	// ShutdownTimeout bounds the wait for requests in flight on shutdown.
	ShutdownTimeout time.Duration
}

// DefaultConfig returns the defaults; Secret, Upstream, UpstreamSecret and
// DecisionAddr have none.
func DefaultConfig() Config {
	return Config{
		Listen:                              "127.0.0.1:1812",
		ReportOutcomes:                      true,
		DecideTimeout:                       2 * time.Second,
		UpstreamTimeout:                     60 * time.Second,
		IntakeTimeout:                       5 * time.Second,
		FailMode:                            FailClosed,
		NumberMatchMode:                     NumberMatchAppend,
		NumberMatchDelimiter:                ",",
		ChallengeTimeout:                    2 * time.Minute,
		RequireMessageAuthenticator:         true,
		UpstreamRequireMessageAuthenticator: true,
		DuplicateWindow:                     30 * time.Second,
		MaxInFlight:                         1024,
		ShutdownTimeout:                     10 * time.Second,
	}
}

// Settings binds the configuration to its flags, environment variables and
// YAML keys.
func (c *Config) Settings() []settings.Setting {
	return []settings.Setting{
		settings.String(&c.Listen, "listen", "UDP address the VPN's Access-Requests arrive on"),
		settings.SecretString(&c.Secret, "secret", "RADIUS shared secret of the VPN (at least 16 bytes)"),
		settings.String(&c.SecretFile, "secret-file", "file holding --secret"),
		settings.String(&c.Upstream, "upstream", "host:port of the MFA proxy (the RADIUS server that sends the push, e.g. the Duo Authentication Proxy)"),
		settings.SecretString(&c.UpstreamSecret, "upstream-secret", "RADIUS shared secret of the MFA proxy (at least 16 bytes)"),
		settings.String(&c.UpstreamSecretFile, "upstream-secret-file", "file holding --upstream-secret"),
		settings.String(&c.DecisionAddr, "addr", "gRPC address of the decision service"),
		settings.String(&c.IntakeAddr, "intake-addr", "gRPC address of the intake service the push outcomes are reported to (--addr when empty)"),
		settings.SecretString(&c.IntakeToken, "intake-token", "log shippers' token of the intake service (--intake-token of the mesh)"),
		settings.String(&c.IntakeTokenFile, "intake-token-file", "file holding --intake-token"),
		settings.Bool(&c.ReportOutcomes, "report-outcomes", "report what happened to each push (approved, denied, timed out) to intake, for scoring"),
		settings.String(&c.App, "app", "application id of a NAS-Identifier not in --app-map (the NAS-Identifier itself when empty)"),
		settings.Map(&c.AppMap, "app-map", "NAS-Identifier=app pairs naming the application (and so the policy tier) of each VPN"),
		settings.String(&c.Tenant, "tenant", "tenant of the users"),
		settings.Duration(&c.DecideTimeout, "decide-timeout", "bound of each Decide call; past it --fail-mode answers"),
		settings.Duration(&c.UpstreamTimeout, "upstream-timeout", "bound of the wait for the MFA proxy, which waits for the user's phone; keep the VPN's RADIUS timeout above it"),
		settings.Duration(&c.IntakeTimeout, "intake-timeout", "bound of each report to intake"),
		settings.String(&c.FailMode, "fail-mode", "when the decision service cannot be asked in time: closed (reject, no push) or open (forward to the MFA proxy)"),
		settings.String(&c.NumberMatchMode, "number-match-mode", "when the decision asks for number matching: append (Access-Challenge for the authenticator app's passcode, sent upstream as password<delimiter>passcode) or reject"),
		settings.String(&c.NumberMatchDelimiter, "number-match-delimiter", "what joins password and passcode in append mode (the Duo Authentication Proxy's is a comma)"),
		settings.Duration(&c.ChallengeTimeout, "challenge-timeout", "how long a passcode prompt stays answerable"),
		settings.Bool(&c.RequireMessageAuthenticator, "require-message-authenticator", "drop Access-Requests without a Message-Authenticator (RFC 3579; the Blast-RADIUS mitigation)"),
		settings.Bool(&c.UpstreamRequireMessageAuthenticator, "upstream-require-message-authenticator", "drop answers of the MFA proxy without a Message-Authenticator (the Blast-RADIUS mitigation)"),
		settings.Duration(&c.DuplicateWindow, "duplicate-window", "how long an answer is kept for the VPN's retransmits of its request"),
		settings.Int(&c.MaxInFlight, "max-inflight", "requests worked on at once; past it a request is dropped and the VPN's retransmit tries again"),
		settings.Duration(&c.ShutdownTimeout, "shutdown-timeout", "bound of the wait for requests in flight on shutdown"),
	}
}

// Complete reads the secrets named by the *-file settings. A secret given
// both ways is an error.
func (c *Config) Complete() error {
	var errs []error
	read := func(name string, value *string, file string) {
		if file == "" {
			return
		}
		if *value != "" {
			errs = append(errs, fmt.Errorf("%s, %s-file: give one, not both", name, name))
			return
		}
		b, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s-file: %w", name, err))
			return
		}
		*value = strings.TrimRight(string(b), "\r\n")
	}
	read("secret", &c.Secret, c.SecretFile)
	read("upstream-secret", &c.UpstreamSecret, c.UpstreamSecretFile)
	read("intake-token", &c.IntakeToken, c.IntakeTokenFile)
	return errors.Join(errs...)
}

// String names the settings, never a secret.
func (c Config) String() string {
	set := func(s string) string {
		if s == "" {
			return "unset"
		}
		return "set"
	}
	return fmt.Sprintf("radius.Config{listen: %s, upstream: %s, addr: %s, secret: %s, upstream-secret: %s, intake-token: %s, fail-mode: %s, number-match-mode: %s}",
		c.Listen, c.Upstream, c.DecisionAddr, set(c.Secret), set(c.UpstreamSecret), set(c.IntakeToken), c.FailMode, c.NumberMatchMode)
}

// GoString never shows a secret either.
func (c Config) GoString() string { return c.String() }

// LogValue keeps secrets out of logs.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Validate reports every inconsistency, naming settings, never a secret.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	hostPort := func(name, v string, required bool) {
		if v == "" {
			if required {
				add("%s: is required", name)
			}
			return
		}
		host, port, err := net.SplitHostPort(v)
		if err != nil || port == "" {
			add("%s: %q is not host:port", name, v)
			return
		}
		if name == "upstream" && host == "" {
			add("upstream: %q names no host", v)
		}
	}
	hostPort("listen", c.Listen, true)
	hostPort("upstream", c.Upstream, true)
	hostPort("addr", c.DecisionAddr, true)
	hostPort("intake-addr", c.IntakeAddr, false)
	secret := func(name, v string) {
		switch {
		case v == "":
			add("%s: is required (or %s-file)", name, name)
		case len(v) < MinSecretBytes:
			add("%s: is shorter than %d bytes", name, MinSecretBytes)
		case len(v) > MaxSecretBytes:
			add("%s: is longer than %d bytes", name, MaxSecretBytes)
		case strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }):
			add("%s: contains control characters", name)
		}
	}
	secret("secret", c.Secret)
	secret("upstream-secret", c.UpstreamSecret)
	if c.IntakeToken != "" && len(c.IntakeToken) < MinSecretBytes {
		add("intake-token: is shorter than %d bytes", MinSecretBytes)
	}
	id := func(name, v string) {
		if v == "" {
			return
		}
		if len(v) > validate.MaxIDBytes || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			add("%s: %q is not an id (at most %d bytes, no control characters)", name, v, validate.MaxIDBytes)
		}
	}
	id("app", c.App)
	id("tenant", c.Tenant)
	for _, nas := range slices.Sorted(maps.Keys(c.AppMap)) {
		if c.AppMap[nas] == "" {
			add("app-map: NAS-Identifier %q maps to no application", nas)
		}
		id("app-map", c.AppMap[nas])
	}
	between := func(name string, d, lo, hi time.Duration) {
		if d < lo || d > hi {
			add("%s: must be between %s and %s", name, lo, hi)
		}
	}
	between("decide-timeout", c.DecideTimeout, time.Millisecond, MaxDecideTimeout)
	between("upstream-timeout", c.UpstreamTimeout, 100*time.Millisecond, MaxUpstreamTimeout)
	between("intake-timeout", c.IntakeTimeout, time.Millisecond, time.Minute)
	between("challenge-timeout", c.ChallengeTimeout, time.Second, 10*time.Minute)
	between("duplicate-window", c.DuplicateWindow, time.Second, 5*time.Minute)
	between("shutdown-timeout", c.ShutdownTimeout, 0, 5*time.Minute)
	switch c.FailMode {
	case FailClosed, FailOpen:
	default:
		add("fail-mode: %q is not closed or open", c.FailMode)
	}
	switch c.NumberMatchMode {
	case NumberMatchAppend, NumberMatchReject:
	default:
		add("number-match-mode: %q is not append or reject", c.NumberMatchMode)
	}
	if d := c.NumberMatchDelimiter; len(d) != 1 || d[0] <= ' ' || d[0] >= 0x7f || isDigit(d[0]) || isLetter(d[0]) {
		add("number-match-delimiter: %q is not one punctuation character", d)
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > 1<<16 {
		add("max-inflight: must be between 1 and 65536")
	}
	return errors.Join(errs...)
}

// IntakeTarget is the address outcomes are reported to.
func (c Config) IntakeTarget() string {
	if c.IntakeAddr != "" {
		return c.IntakeAddr
	}
	return c.DecisionAddr
}

func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
