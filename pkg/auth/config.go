package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/pushbackhq/pushback/pkg/settings"
)

const (
	// MinSecretBytes is the shortest token or HMAC secret accepted.
	MinSecretBytes = 16
	// DefaultMaxSkew is how far a signature's timestamp may be from now.
	DefaultMaxSkew = 5 * time.Minute
)

// Config holds the credentials of the callers outside the mesh, one kind
// per role. Services know each other by certificate (mutual TLS), which the
// mesh configures; nothing here is for them.
type Config struct {
	// HookTokens are bearer tokens of hooks (several allow rotation).
	HookTokens []string
	// HookHMACSecrets sign hooks' calls instead of a token.
	HookHMACSecrets []string
	// MaxSkew bounds the age of a signature.
	MaxSkew time.Duration
	// IntakeToken is the log shippers' token, on gRPC and HTTP ingest.
	IntakeToken string
	// ScoringTokens are bearer tokens of risk readers.
	ScoringTokens []string
	// OperatorTokens are bearer tokens of operators.
	OperatorTokens []string
	// AllowUnauthenticated lets a caller without credentials act as a hook
	// when no hook credential is configured, and as a log shipper when no
	// intake token is: never as an operator, a risk reader or a service.
	AllowUnauthenticated bool
}

// Default is no credential, signatures valid for DefaultMaxSkew.
func Default() Config { return Config{MaxSkew: DefaultMaxSkew} }

// Settings binds the configuration to its flags, environment variables
// and YAML keys. The names predating this package are kept.
func (c *Config) Settings() []settings.Setting {
	return []settings.Setting{
		settings.SecretList(&c.HookTokens, "auth-tokens", "comma-separated bearer tokens of the hooks that call Decide and POST /v1/decide (at least 16 bytes each)"),
		settings.SecretList(&c.HookHMACSecrets, "auth-hmac-secrets", "comma-separated HMAC-SHA256 secrets hooks may sign Decide calls with instead of a token"),
		settings.Duration(&c.MaxSkew, "auth-max-skew", "how far a signature's timestamp may be from the server's clock"),
		settings.SecretString(&c.IntakeToken, "intake-token", "token log shippers present on gRPC ingest and the HTTP ingest endpoints (Authorization: Bearer <token>, or the bare token; at least 16 bytes)"),
		settings.SecretList(&c.ScoringTokens, "scoring-tokens", "comma-separated bearer tokens of risk readers (scoring GetRisk and WatchRisk; at least 16 bytes each)"),
		settings.SecretList(&c.OperatorTokens, "operator-tokens", "comma-separated bearer tokens of operators (read decisions, events, deliveries and risk, clear cooldowns, pushback explain; at least 16 bytes each)"),
		settings.Bool(&c.AllowUnauthenticated, "allow-unauthenticated", "let callers without credentials call Decide and ingest (only where no hook credential or intake token is set), also on a non-loopback address"),
	}
}

// String tells which roles have credentials, never a credential, so that
// printing a configuration (a test's failure, a debug line) leaks nothing.
func (c Config) String() string {
	var has []string
	for _, r := range []Role{Hook, LogShipper, RiskReader, Operator} {
		if c.Has(r) {
			has = append(has, string(r))
		}
	}
	return fmt.Sprintf("auth.Config{credentials for: %v, max skew: %s, allow unauthenticated: %v}", has, c.MaxSkew, c.AllowUnauthenticated)
}

// GoString never shows a credential either.
func (c Config) GoString() string { return c.String() }

// LogValue keeps credentials out of logs.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Validate reports every malformed credential, naming its setting and its
// position, never its value.
func (c Config) Validate() []error {
	var errs []error
	short := func(name, what string, values []string) {
		for i, v := range values {
			if len(v) < MinSecretBytes {
				errs = append(errs, fmt.Errorf("%s: %s %d is shorter than %d bytes", name, what, i+1, MinSecretBytes))
			}
		}
	}
	short("auth-tokens", "token", c.HookTokens)
	short("auth-hmac-secrets", "secret", c.HookHMACSecrets)
	short("scoring-tokens", "token", c.ScoringTokens)
	short("operator-tokens", "token", c.OperatorTokens)
	if c.IntakeToken != "" && len(c.IntakeToken) < MinSecretBytes {
		errs = append(errs, fmt.Errorf("intake-token: is shorter than %d bytes", MinSecretBytes))
	}
	if c.MaxSkew <= 0 || c.MaxSkew > time.Hour {
		errs = append(errs, errors.New("auth-max-skew: must be between 0 and 1h"))
	}
	return errs
}

// Any reports whether a credential of any outside caller is configured.
func (c Config) Any() bool {
	return c.Has(Hook) || c.Has(LogShipper) || c.Has(RiskReader) || c.Has(Operator)
}

// Has reports whether a credential is configured for the outside role r.
func (c Config) Has(r Role) bool {
	switch r {
	case Hook:
		return len(c.HookTokens) > 0 || len(c.HookHMACSecrets) > 0
	case LogShipper:
		return c.IntakeToken != ""
	case RiskReader:
		return len(c.ScoringTokens) > 0
	case Operator:
		return len(c.OperatorTokens) > 0
	}
	return false
}

// Anonymous lists the roles a caller without credentials holds under
// AllowUnauthenticated.
func (c Config) Anonymous() []Role {
	if !c.AllowUnauthenticated {
		return nil
	}
	var out []Role
	for _, r := range []Role{Hook, LogShipper} {
		if !c.Has(r) {
			out = append(out, r)
		}
	}
	return out
}

// tokens lists every configured bearer token with its role.
func (c Config) tokens() map[string]roleSet {
	out := map[string]roleSet{}
	add := func(r Role, values ...string) {
		for _, v := range values {
			if v != "" {
				out[v] |= r.bit()
			}
		}
	}
	add(Hook, c.HookTokens...)
	add(LogShipper, c.IntakeToken)
	add(RiskReader, c.ScoringTokens...)
	add(Operator, c.OperatorTokens...)
	return out
}

// Shared lists the roles that share a token with another role, so that the
// mesh can warn: a caller holding such a token holds all of them.
func (c Config) Shared() [][]Role {
	seen := map[roleSet]bool{}
	var out [][]Role
	for _, s := range c.tokens() {
		if l := s.list(); len(l) > 1 && !seen[s] {
			seen[s] = true
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b []Role) int { return setOf(a...).cmp(setOf(b...)) })
	return out
}
