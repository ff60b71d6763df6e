package userid

import (
	"errors"
	"fmt"
	"slices"

	"github.com/pushbackhq/pushback/pkg/settings"
)

// Config is the user id rule of a deployment, as the binary reads it.
type Config struct {
	// Rule applies to every tenant not listed in Tenants.
	Rule string
	// Tenants maps a tenant to its own rule.
	Tenants map[string]string
	// AliasFile names the alias map: one person's ids at several identity
	// providers (see Aliases).
	AliasFile string
}

// DefaultConfig folds every tenant's user ids.
func DefaultConfig() Config { return Config{Rule: string(Default)} }

// Settings binds the configuration to its flags, environment variables and
// YAML keys.
func (c *Config) Settings() []settings.Setting {
	return []settings.Setting{
		settings.String(&c.Rule, "user-id-rule",
			"how user ids are canonicalised before anything counts them: fold (trim, Unicode NFKC, case folding: Bob, BOB and ｂｏｂ are one user) or exact (trim only, for identity providers with case-sensitive user ids)"),
		settings.Map(&c.Tenants, "user-id-rule-tenants",
			"tenants whose user id rule differs from user-id-rule, as tenant=rule pairs (acme=exact,globex=fold)"),
		settings.String(&c.AliasFile, "user-aliases",
			"YAML file joining one person's ids at several identity providers (Okta login, Entra UPN, Duo username, Auth0 user_id): risk seen at one meets decisions and actions at another, and each response connector acts with its own IdP's id"),
	}
}

// Validate reports every rule name that is not a rule.
func (c Config) Validate() error {
	var errs []error
	if _, err := ParseRule(c.Rule); err != nil {
		errs = append(errs, fmt.Errorf("user-id-rule: %w", err))
	}
	tenants := make([]string, 0, len(c.Tenants))
	for t := range c.Tenants {
		tenants = append(tenants, t)
	}
	slices.Sort(tenants)
	for _, t := range tenants {
		if _, err := ParseRule(c.Tenants[t]); err != nil {
			errs = append(errs, fmt.Errorf("user-id-rule-tenants: tenant %q: %w", t, err))
		}
	}
	if c.AliasFile != "" {
		if _, err := LoadAliases(c.AliasFile); err != nil {
			errs = append(errs, fmt.Errorf("user-aliases: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Rules returns the rules the configuration names.
func (c Config) Rules() (*Rules, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	def, _ := ParseRule(c.Rule)
	tenants := make(map[string]Rule, len(c.Tenants))
	for t, name := range c.Tenants {
		tenants[t], _ = ParseRule(name)
	}
	rules := NewRules(def, tenants)
	if c.AliasFile != "" {
		a, err := LoadAliases(c.AliasFile)
		if err != nil {
			return nil, fmt.Errorf("user-aliases: %w", err)
		}
		rules = rules.WithAliases(a)
	}
	return rules, nil
}
