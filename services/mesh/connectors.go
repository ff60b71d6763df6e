package mesh

import (
	"errors"
	"fmt"

	"github.com/pushbackhq/pushback/connectors/auth0"
	"github.com/pushbackhq/pushback/connectors/duo"
	"github.com/pushbackhq/pushback/connectors/entra"
	"github.com/pushbackhq/pushback/connectors/okta"
	"github.com/pushbackhq/pushback/connectors/poll"
	"github.com/pushbackhq/pushback/connectors/respond"
	"github.com/pushbackhq/pushback/pkg/settings"
)

// Connectors are the identity providers' connectors: each acts at its
// identity provider when a respond: rule asks (docs/respond.md), through
// notify, and the ones that poll read its logs for intake. Each owns its
// settings; one is on when its URL (or tenant, domain) is set.
type Connectors struct {
	Okta  okta.Config
	Entra entra.Config
	Duo   duo.Config
	Auth0 auth0.Config
}

// DefaultConnectors returns every connector off, with its defaults.
func DefaultConnectors() Connectors {
	return Connectors{Okta: okta.DefaultConfig(), Entra: entra.DefaultConfig(), Duo: duo.DefaultConfig(), Auth0: auth0.DefaultConfig()}
}

// Settings lists every connector's settings.
func (c *Connectors) Settings() []settings.Setting {
	var out []settings.Setting
	out = append(out, c.Okta.Settings()...)
	out = append(out, c.Entra.Settings()...)
	out = append(out, c.Duo.Settings()...)
	out = append(out, c.Auth0.Settings()...)
	return out
}

// Validate checks the connectors that are on.
func (c Connectors) Validate() error {
	var errs []error
	for _, v := range []interface {
		Enabled() bool
		Validate() error
	}{c.Okta, c.Entra, c.Duo, c.Auth0} {
		if err := v.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Responders builds the connectors that are on, for notify to act through.
func (c Connectors) Responders() ([]respond.Connector, error) {
	var out []respond.Connector
	for _, step := range []struct {
		on    bool
		name  string
		build func() (respond.Connector, error)
	}{
		{c.Okta.Enabled(), "okta", func() (respond.Connector, error) { return okta.New(c.Okta) }},
		{c.Entra.Enabled(), "entra", func() (respond.Connector, error) { return entra.New(c.Entra) }},
		{c.Duo.Enabled(), "duo", func() (respond.Connector, error) { return duo.New(c.Duo) }},
		{c.Auth0.Enabled(), "auth0", func() (respond.Connector, error) { return auth0.New(c.Auth0) }},
	} {
		if !step.on {
			continue
		}
		conn, err := step.build()
		if err != nil {
			return nil, fmt.Errorf("%s connector: %w", step.name, err)
		}
		out = append(out, conn)
	}
	return out, nil
}

// LogSources builds the log source of every connector that is on and
// polls, for intake's pollers (docs/intake.md, Polling).
func (c Connectors) LogSources() ([]poll.Source, error) {
	var out []poll.Source
	if c.Okta.Enabled() && c.Okta.Poll {
		conn, err := okta.New(c.Okta)
		if err != nil {
			return nil, err
		}
		out = append(out, conn.LogSource())
	}
	if c.Entra.Enabled() && c.Entra.Poll {
		conn, err := entra.New(c.Entra)
		if err != nil {
			return nil, err
		}
		out = append(out, conn.LogSource())
	}
	if c.Duo.Enabled() && c.Duo.Poll {
		conn, err := duo.New(c.Duo)
		if err != nil {
			return nil, err
		}
		out = append(out, conn.LogSource())
	}
	return out, nil
}
