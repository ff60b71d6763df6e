package radius

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	c := DefaultConfig()
	c.Secret, c.UpstreamSecret = vpnSecret, upstreamSecret
	c.Upstream, c.DecisionAddr = "mfa-proxy.internal:1812", "127.0.0.1:50051"
	return c
}

func TestConfigValidate(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("valid configuration: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want []string
	}{
		{"nothing set", func(c *Config) { *c = DefaultConfig() },
			[]string{"secret: is required", "upstream-secret: is required", "upstream: is required", "addr: is required"}},
		{"short secrets", func(c *Config) { c.Secret, c.UpstreamSecret = "xyzzy-7", "plugh-42" },
			[]string{"secret: is shorter than 16 bytes", "upstream-secret: is shorter than 16 bytes"}},
		{"control character", func(c *Config) { c.Secret = "0123456789abcdef\n" }, []string{"secret: contains control characters"}},
		{"short intake token", func(c *Config) { c.IntakeToken = "tiny" }, []string{"intake-token: is shorter than 16 bytes"}},
		{"addresses", func(c *Config) { c.Upstream, c.Listen, c.IntakeAddr = ":1812", "1812", "nohost" },
			[]string{`upstream: ":1812" names no host`, `listen: "1812" is not host:port`, `intake-addr: "nohost" is not host:port`}},
		{"fail mode", func(c *Config) { c.FailMode = "sideways" }, []string{`fail-mode: "sideways" is not closed or open`}},
		{"number-match mode", func(c *Config) { c.NumberMatchMode = "push" }, []string{`number-match-mode: "push" is not append or reject`}},
		{"delimiter letter", func(c *Config) { c.NumberMatchDelimiter = "x" }, []string{"number-match-delimiter"}},
		{"delimiter two characters", func(c *Config) { c.NumberMatchDelimiter = ",," }, []string{"number-match-delimiter"}},
		{"timeouts", func(c *Config) { c.DecideTimeout, c.UpstreamTimeout, c.DuplicateWindow = 0, time.Hour, 0 },
			[]string{"decide-timeout: must be between", "upstream-timeout: must be between", "duplicate-window: must be between"}},
		{"app map", func(c *Config) { c.AppMap = map[string]string{"vpn-1": ""} }, []string{`app-map: NAS-Identifier "vpn-1" maps to no application`}},
		{"max in flight", func(c *Config) { c.MaxInFlight = 0 }, []string{"max-inflight: must be between 1 and 65536"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.edit(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			for _, secret := range []string{c.Secret, c.UpstreamSecret, c.IntakeToken} {
				if secret != "" && strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows a secret", err)
				}
			}
		})
	}
}

func TestConfigComplete(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	must(t, os.WriteFile(file, []byte(vpnSecret+"\n"), 0o600))
	c := validConfig()
	c.Secret, c.SecretFile = "", file
	must(t, c.Complete())
	if c.Secret != vpnSecret {
		t.Fatalf("secret from the file: %q", c.Secret)
	}
	c.SecretFile = file
	if err := c.Complete(); err == nil || !strings.Contains(err.Error(), "give one, not both") {
		t.Fatalf("both given: %v", err)
	}
	c = validConfig()
	c.UpstreamSecret, c.UpstreamSecretFile = "", filepath.Join(dir, "missing")
	if err := c.Complete(); err == nil || !strings.Contains(err.Error(), "upstream-secret-file") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestConfigNeverPrintsSecrets(t *testing.T) {
	c := validConfig()
	c.IntakeToken = intakeToken
	for _, s := range []string{c.String(), fmt.Sprintf("%v %+v %#v", c, c, c), c.LogValue().String()} {
		for _, secret := range []string{vpnSecret, upstreamSecret, intakeToken} {
			if strings.Contains(s, secret) {
				t.Fatalf("%q shows a secret", s)
			}
		}
	}
}
