package duo_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/connectors/duo"
)

func validConfig() duo.Config {
	c := duo.DefaultConfig()
	c.URL = "https://api-1a2b3c4d.duosecurity.com"
	c.IKey = "DIWJ8X6AEYOR5OMC6TQ1"
	c.SKey = "thisIsTheSecretKeyOfTheAdminApiApp00000"
	return c
}

func TestConfigDefaultsAndSettings(t *testing.T) {
	c := duo.DefaultConfig()
	if c.Enabled() || c.Validate() != nil || c.Timeout != 10*time.Second || !c.Poll {
		t.Errorf("default %+v: enabled %v, %v", c, c.Enabled(), c.Validate())
	}
	if _, err := duo.New(c); err == nil {
		t.Error("New accepted a config without a URL")
	}
	want := map[string]bool{"duo-url": false, "duo-ikey": false, "duo-skey": true, "duo-timeout": false, "duo-poll": false}
	got := map[string]bool{}
	for _, s := range c.Settings() {
		got[s.Name] = s.Secret
		if s.Name == "duo-url" {
			_ = s.Set("api-1a2b3c4d.duosecurity.com")
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("settings %v, want %v", got, want)
	}
	if !c.Enabled() {
		t.Error("duo-url did not bind")
	}
}

func TestConfigValidate(t *testing.T) {
	ok := []func(*duo.Config){
		func(*duo.Config) {},
		func(c *duo.Config) { c.URL = "api-1a2b3c4d.duosecurity.com" }, // bare host: https
		func(c *duo.Config) { c.URL = "https://api-1a2b3c4d.duosecurity.com/" },
		func(c *duo.Config) { c.URL = "https://api-1a2b3c4d.duosecurity.com:443" },
		func(c *duo.Config) { c.URL = "http://127.0.0.1:8443" },
		func(c *duo.Config) { c.URL = "http://localhost:8443" },
	}
	for i, mutate := range ok {
		c := validConfig()
		mutate(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("ok %d: %v", i, err)
		}
		if _, err := duo.New(c); err != nil {
			t.Errorf("ok %d: New: %v", i, err)
		}
	}
	bad := map[string]func(*duo.Config){
		"duo-url http":        func(c *duo.Config) { c.URL = "http://api-1a2b3c4d.duosecurity.com" },
		"duo-url http lan":    func(c *duo.Config) { c.URL = "http://192.168.1.10:8080" },
		"duo-url path":        func(c *duo.Config) { c.URL = "https://api-1a2b3c4d.duosecurity.com/admin" },
		"duo-url query":       func(c *duo.Config) { c.URL = "https://api-1a2b3c4d.duosecurity.com?x=1" },
		"duo-url credentials": func(c *duo.Config) { c.URL = "https://u:p@api-1a2b3c4d.duosecurity.com" },
		"duo-url missing":     func(c *duo.Config) { c.URL = "" },
		"duo-ikey missing":    func(c *duo.Config) { c.IKey = "" },
		"duo-ikey colon":      func(c *duo.Config) { c.IKey = "DI:X" },
		"duo-skey missing":    func(c *duo.Config) { c.SKey = "" },
		"duo-skey space":      func(c *duo.Config) { c.SKey = "thisIsTheSecretKey " },
		"duo-timeout zero":    func(c *duo.Config) { c.Timeout = 0 },
		"duo-timeout long":    func(c *duo.Config) { c.Timeout = time.Hour },
	}
	for name, mutate := range bad {
		c := validConfig()
		mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), strings.Fields(name)[0]) {
			t.Errorf("%s: Validate() = %v", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "thisIsTheSecretKey") {
			t.Errorf("%s: error shows the secret key: %v", name, err)
		}
		if c.Enabled() {
			if _, err := duo.New(c); err == nil {
				t.Errorf("%s: New accepted it", name)
			}
		}
	}
}

func TestConfigStringHidesSecretKey(t *testing.T) {
	c := validConfig()
	if s := fmt.Sprintf("%v %+v %#v %s", c, c, c, c.String()); strings.Contains(s, c.SKey) {
		t.Errorf("%q shows the secret key", s)
	}
}
