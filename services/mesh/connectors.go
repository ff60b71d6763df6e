package mesh

import (
	"errors"
	"fmt"

	"github.com/pushbackhq/pushback/connectors/auth0"
	"github.com/pushbackhq/pushback/connectors/duo"
	"github.com/pushbackhq/pushback/connectors/entra"
	"github.com/pushbackhq/pushback/connectors/okta"
	"github.com/pushbackhq/pushback/connectors/respond"
	"github.com/pushbackhq/pushback/pkg/settings"
	"github.com/pushbackhq/pushback/pkg/userid"
	"github.com/pushbackhq/pushback/services/notify"
)

// Connectors are the response connectors: each acts at its identity
// provider when a respond: rule asks (docs/respond.md). Each owns its
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

// Channels builds a notify channel for every connector that is on.
func (c Connectors) Channels(aliases *userid.Aliases) ([]notify.Channel, error) {
	var out []notify.Channel
	add := func(on bool, name string, build func() (respond.Connector, error)) error {
		if !on {
			return nil
		}
		conn, err := build()
		if err != nil {
			return fmt.Errorf("%s connector: %w", name, err)
		}
		out = append(out, &notify.ActionChannel{Connector: conn, Aliases: aliases})
		return nil
	}
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
		if err := add(step.on, step.name, step.build); err != nil {
			return nil, err
		}
	}
	return out, nil
}
