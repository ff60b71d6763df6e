package decision

import (
	"errors"
	"time"

	"github.com/pushbackhq/pushback/pkg/settings"
)

// Config is what an operator sets for the decision service: the policy
// files, the budget, the clock rule and admission control.
type Config struct {
	// PolicyFile is the enforced policy (the built-in default when empty).
	PolicyFile string
	// ShadowPolicy is a candidate policy evaluated beside the enforced one.
	ShadowPolicy string
	// PolicyPoll is how often the policy files are checked for changes
	// (0 disables polling; SIGHUP always reloads).
	PolicyPoll time.Duration
	// Budget is how long Decide waits for scoring before the failure mode
	// applies.
	Budget time.Duration
	// ClockSkew is how far an attempt's time may lie behind Pushback's
	// clock before it is clamped (it is never taken ahead of the clock).
	ClockSkew time.Duration
	// MaxInFlight bounds the calls waiting for scoring at once.
	MaxInFlight int
	// RespondDryRun records every response action without taking it.
	RespondDryRun bool
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{PolicyPoll: 2 * time.Second, Budget: 50 * time.Millisecond, ClockSkew: 5 * time.Minute, MaxInFlight: 256}
}

// Settings binds the configuration to its flags.
func (c *Config) Settings() []settings.Setting {
	return []settings.Setting{
		settings.String(&c.PolicyFile, "policy", "decision policy file (the built-in deploy/policy/default.yaml when empty)"),
		settings.String(&c.ShadowPolicy, "shadow-policy", "candidate policy evaluated beside the enforced one, never changing outcomes"),
		settings.Duration(&c.Budget, "decide-budget", "how long Decide waits for scoring before the failure mode applies"),
		settings.Duration(&c.PolicyPoll, "policy-poll", "how often policy files are checked for changes (0 disables; SIGHUP always reloads)"),
		settings.Duration(&c.ClockSkew, "decide-clock-skew", "how far behind the server's clock a Decide time may lie; later times are taken as the clock, earlier ones clamped"),
		settings.Int(&c.MaxInFlight, "decide-max-inflight", "Decide calls that may wait for scoring at once; past it a call is shed and answered at once from the user's own attempt counts"),
		settings.Bool(&c.RespondDryRun, "respond-dry-run", "record every action of the policy's respond: rules (revoke sessions, ...) without taking it; alerts still go out"),
	}
}

// Validate reports every inconsistency.
func (c Config) Validate() error {
	var errs []error
	if c.Budget <= 0 || c.Budget > 10*time.Second {
		errs = append(errs, errors.New("decide-budget: must be between 0 and 10s"))
	}
	if c.PolicyPoll < 0 {
		errs = append(errs, errors.New("policy-poll: must not be negative"))
	}
	if c.ClockSkew < time.Second || c.ClockSkew > time.Hour {
		errs = append(errs, errors.New("decide-clock-skew: must be between 1s and 1h"))
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > 1<<16 {
		errs = append(errs, errors.New("decide-max-inflight: must be between 1 and 65536"))
	}
	return errors.Join(errs...)
}
