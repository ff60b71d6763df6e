package console

import (
	"errors"
	"time"

	"github.com/pushbackhq/pushback/pkg/settings"
)

// Config is what an operator sets for the help-desk console.
type Config struct {
	// SessionTTL bounds a signed-in session: past it the operator pastes
	// their token again, however active they were.
	SessionTTL time.Duration
	// MaxSessions bounds the sessions held in memory; signing in past it
	// ends the oldest.
	MaxSessions int
	// LoginAttempts is how many sign-ins one client address may try per
	// LoginWindow: a stolen cookie is not needed to guess tokens, a form is.
	LoginAttempts int
	// SecureCookie marks the session cookie Secure even when this server
	// speaks plain HTTP (behind a proxy that terminates TLS). Over TLS the
	// cookie is always Secure.
	SecureCookie bool
	// CallTimeout bounds each call the console makes to decision and notify.
	CallTimeout time.Duration
}

// LoginWindow is the window LoginAttempts counts in.
const LoginWindow = 5 * time.Minute

// DefaultConfig returns the defaults: a help-desk shift, a few hundred
// operators, ten sign-ins per address per five minutes.
func DefaultConfig() Config {
	return Config{SessionTTL: 8 * time.Hour, MaxSessions: 256, LoginAttempts: 10, CallTimeout: 5 * time.Second}
}

// Settings binds the configuration to its flags.
func (c *Config) Settings() []settings.Setting {
	return []settings.Setting{
		settings.Duration(&c.SessionTTL, "console-session-ttl", "how long a help-desk console session lasts before the operator signs in again"),
		settings.Int(&c.MaxSessions, "console-max-sessions", "console sessions held at once; signing in past it ends the oldest"),
		settings.Int(&c.LoginAttempts, "console-login-attempts", "console sign-ins one client address may try per 5 minutes"),
		settings.Bool(&c.SecureCookie, "console-secure-cookie", "mark the console's session cookie Secure on plain HTTP too (behind a TLS-terminating proxy)"),
		settings.Duration(&c.CallTimeout, "console-call-timeout", "deadline of each call the console makes to decision and notify"),
	}
}

// Validate reports every inconsistency.
func (c Config) Validate() error {
	var errs []error
	if c.SessionTTL < time.Minute || c.SessionTTL > 24*time.Hour {
		errs = append(errs, errors.New("console-session-ttl: must be between 1m and 24h"))
	}
	if c.MaxSessions < 1 || c.MaxSessions > 1<<16 {
		errs = append(errs, errors.New("console-max-sessions: must be between 1 and 65536"))
	}
	if c.LoginAttempts < 1 || c.LoginAttempts > 1000 {
		errs = append(errs, errors.New("console-login-attempts: must be between 1 and 1000"))
	}
	if c.CallTimeout <= 0 || c.CallTimeout > time.Minute {
		errs = append(errs, errors.New("console-call-timeout: must be between 0 and 1m"))
	}
	return errors.Join(errs...)
}
