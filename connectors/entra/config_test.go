package entra_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/connectors/entra"
)

func validConfig() entra.Config {
	c := entra.DefaultConfig()
	c.Tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	c.ClientID = "1b7c2f3e-4d5a-4b6c-8d7e-9f0a1b2c3d4e"
	c.ClientSecret = "abc8Q~thisIsTheSecretValue.1234567890"
	return c
}

func TestConfigDefaultsAndSettings(t *testing.T) {
	c := entra.DefaultConfig()
	if c.Enabled() {
		t.Error("the default config is enabled")
	}
	if err := c.Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
	if _, err := entra.New(c); err == nil {
		t.Error("New accepted a config without a tenant")
	}
	if c.LoginURL != "https://login.microsoftonline.com" || c.GraphURL != "https://graph.microsoft.com" || c.Timeout != 10*time.Second {
		t.Errorf("defaults %+v", c)
	}
	want := map[string]bool{"entra-tenant": false, "entra-client-id": false, "entra-client-secret": true, "entra-login-url": false, "graph-url": false, "entra-timeout": false, "entra-poll": false}
	got := map[string]bool{}
	for _, s := range c.Settings() {
		got[s.Name] = s.Secret
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("settings %v, want %v", got, want)
	}
	// The settings write the config.
	for _, s := range c.Settings() {
		if s.Name == "entra-timeout" {
			if err := s.Set("250ms"); err != nil {
				t.Fatal(err)
			}
		}
		if s.Name == "entra-tenant" {
			_ = s.Set("contoso.com")
		}
	}
	if c.Timeout != 250*time.Millisecond || c.Tenant != "contoso.com" || !c.Enabled() {
		t.Errorf("settings did not bind: %+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := []func(*entra.Config){
		func(*entra.Config) {},
		func(c *entra.Config) { c.Tenant = "contoso.onmicrosoft.com" },
		func(c *entra.Config) { c.Tenant = "CONTOSO.COM" },
		func(c *entra.Config) { c.LoginURL = "http://127.0.0.1:8443"; c.GraphURL = "http://127.0.0.1:9443/" },
		func(c *entra.Config) { c.GraphURL = "http://localhost:1234"; c.LoginURL = "http://[::1]:1234" },
		func(c *entra.Config) { c.GraphURL = "https://graph.microsoft.us" },
	}
	for i, mutate := range ok {
		c := validConfig()
		mutate(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("ok %d: %v", i, err)
		}
		if _, err := entra.New(c); err != nil {
			t.Errorf("ok %d: New: %v", i, err)
		}
	}
	bad := map[string]func(*entra.Config){
		"entra-client-secret": func(c *entra.Config) { c.ClientSecret = "" },
		"entra-client-id":     func(c *entra.Config) { c.ClientID = "" },
		"entra-tenant":        func(c *entra.Config) { c.Tenant = "" },
		"entra-tenant ":       func(c *entra.Config) { c.Tenant = "contoso.com/../x" },
		"entra-tenant?":       func(c *entra.Config) { c.Tenant = "contoso.com?x=1" },
		"entra-tenant#":       func(c *entra.Config) { c.Tenant = "contoso.com#x" },
		"entra-tenant%":       func(c *entra.Config) { c.Tenant = "contoso%2ecom" },
		"entra-tenant common": func(c *entra.Config) { c.Tenant = "common" },
		"entra-tenant space":  func(c *entra.Config) { c.Tenant = "contoso .com" },
		"entra-tenant dash":   func(c *entra.Config) { c.Tenant = "-contoso.com" },
		"entra-client-id not": func(c *entra.Config) { c.ClientID = "my-app" },
		"entra-client-secret ": func(c *entra.Config) {
			c.ClientSecret = " padded "
		},
		"entra-login-url":       func(c *entra.Config) { c.LoginURL = "http://login.example.com" },
		"graph-url":             func(c *entra.Config) { c.GraphURL = "http://10.0.0.1:8080" },
		"graph-url path":        func(c *entra.Config) { c.GraphURL = "https://graph.microsoft.com/v1.0" },
		"graph-url query":       func(c *entra.Config) { c.GraphURL = "https://graph.microsoft.com?x=1" },
		"graph-url credentials": func(c *entra.Config) { c.GraphURL = "https://u:p@graph.microsoft.com" },
		"graph-url ftp":         func(c *entra.Config) { c.GraphURL = "ftp://graph.microsoft.com" },
		"entra-timeout":         func(c *entra.Config) { c.Timeout = 0 },
		"entra-timeout long":    func(c *entra.Config) { c.Timeout = time.Hour },
	}
	for name, mutate := range bad {
		c := validConfig()
		mutate(&c)
		err := c.Validate()
		setting := strings.Fields(name)[0]
		if err == nil || !strings.Contains(err.Error(), strings.TrimRight(setting, " ?#%")) {
			t.Errorf("%s: Validate() = %v", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "thisIsTheSecretValue") {
			t.Errorf("%s: error shows the secret: %v", name, err)
		}
		if c.Enabled() {
			if _, err := entra.New(c); err == nil {
				t.Errorf("%s: New accepted it", name)
			}
		}
	}
	// A secret alone turns nothing on but is reported.
	c := entra.DefaultConfig()
	c.ClientSecret = "orphan"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "entra-tenant") {
		t.Errorf("orphan secret: %v", err)
	}
}

func TestConfigStringHidesSecret(t *testing.T) {
	c := validConfig()
	for _, s := range []string{c.String(), fmt.Sprintf("%v %+v %#v", c, c, c)} {
		if strings.Contains(s, c.ClientSecret) {
			t.Errorf("%q shows the secret", s)
		}
	}
}

func TestValidTenant(t *testing.T) {
	for s, want := range map[string]bool{
		"72f988bf-86f1-41af-91ab-2d7cd011db47": true,
		"contoso.onmicrosoft.com":              true,
		"sub.contoso.co.uk":                    true,
		"contoso":                              false,
		"contoso.com/":                         false,
		"a/b.com":                              false,
		"a..com":                               false,
		"":                                     false,
		"72f988bf-86f1-41af-91ab-2d7cd011db4":  false,
	} {
		if entra.ValidTenant(s) != want {
			t.Errorf("ValidTenant(%q) = %v", s, !want)
		}
	}
}
