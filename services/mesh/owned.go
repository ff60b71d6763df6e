package mesh

import "github.com/pushbackhq/pushback/pkg/settings"

// owned returns the settings that services and connectors declare beside
// their own Config, bound to c. The flat list in allSettings() predates them;
// a new setting belongs to the part that uses it, added here as one line.
func (c *Config) owned() []settings.Setting {
	var out []settings.Setting
	out = append(out, c.Scoring.Settings()...)
	out = append(out, c.Intake.Settings()...)
	out = append(out, c.Decision.Settings()...)
	out = append(out, c.Auth.Settings()...)
	out = append(out, c.UserIDs.Settings()...)
	out = append(out, c.Notify.Settings()...)
	out = append(out, c.Connectors.Settings()...)
	out = append(out, c.Console.Settings()...)
	return out
}

// validateOwned runs the Validate of every part that owns settings.
func (c Config) validateOwned() []error {
	var errs []error
	if err := c.Decision.Validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.Auth.Validate()...)
	errs = append(errs, c.UserIDs.Validate())
	if err := c.Notify.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Connectors.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Scoring.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Intake.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Console.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// ownedSettings adapts the owned settings to the binary's flag, env and
// YAML handling: each is looked up again on the Config being loaded.
func ownedSettings() []setting {
	def := Default()
	var out []setting
	for i, st := range def.owned() {
		out = append(out, setting{name: st.Name, usage: st.Usage, secret: st.Secret, onOff: st.OnOff,
			get: func(c *Config) string { return c.owned()[i].Get() },
			set: func(c *Config, v string) error { return c.owned()[i].Set(v) }})
	}
	return out
}
