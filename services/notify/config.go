package notify

import (
	"errors"

	"github.com/pushbackhq/pushback/pkg/settings"
)

// Config is what an operator sets for notify beyond its channels.
type Config struct {
	// Brake is how many response actions that log people out may go out a
	// minute in one tenant; past it they are held for an operator.
	Brake int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{Brake: 20} }

// Settings binds the configuration to its flags.
func (c *Config) Settings() []settings.Setting {
	return []settings.Setting{
		settings.Int(&c.Brake, "respond-brake", "response actions that log people out (revoke sessions, ...) allowed a minute per tenant; past it the rest are held until an operator releases them (pushback incidents release), and an alert says so"),
	}
}

// Validate reports an out-of-range setting.
func (c Config) Validate() error {
	if c.Brake < 1 || c.Brake > 100000 {
		return errors.New("respond-brake: must be between 1 and 100000")
	}
	return nil
}
