// Package settings binds a configuration value to its flag, environment
// variable and YAML key, so that each service or connector declares its own
// settings beside its own Config and the binary only collects them.
package settings

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Setting is one configuration value: Name is its flag and YAML key (the
// environment variable is derived from it by the binary).
type Setting struct {
	Name  string
	Usage string
	// Secret settings are never printed, logged or shown as defaults.
	Secret bool
	// OnOff settings are booleans: --name alone means --name=true.
	OnOff bool
	// Get returns the current value as text.
	Get func() string
	// Set parses and stores v, or says why v is not a valid value.
	Set func(v string) error
}

// String binds a string.
func String(p *string, name, usage string) Setting {
	return Setting{Name: name, Usage: usage, Get: func() string { return *p }, Set: func(v string) error { *p = v; return nil }}
}

// SecretString binds a string that is never printed.
func SecretString(p *string, name, usage string) Setting {
	s := String(p, name, usage)
	s.Secret = true
	return s
}

// List binds a comma-separated list; empty parts are dropped.
func List(p *[]string, name, usage string) Setting {
	return Setting{Name: name, Usage: usage, Get: func() string { return strings.Join(*p, ",") }, Set: func(v string) error {
		*p = nil
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				*p = append(*p, part)
			}
		}
		return nil
	}}
}

// SecretList binds a comma-separated list of secrets.
func SecretList(p *[]string, name, usage string) Setting {
	s := List(p, name, usage)
	s.Secret = true
	return s
}

// Bool binds an on/off setting.
func Bool(p *bool, name, usage string) Setting {
	return Setting{Name: name, Usage: usage, OnOff: true, Get: func() string { return strconv.FormatBool(*p) }, Set: func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not a boolean", v)
		}
		*p = b
		return nil
	}}
}

// Duration binds a duration such as 50ms or 10m.
func Duration(p *time.Duration, name, usage string) Setting {
	return Setting{Name: name, Usage: usage, Get: func() string { return p.String() }, Set: func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a duration (e.g. 50ms, 10s)", v)
		}
		*p = d
		return nil
	}}
}

// Int binds an integer.
func Int(p *int, name, usage string) Setting {
	return Setting{Name: name, Usage: usage, Get: func() string { return strconv.Itoa(*p) }, Set: func(v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
		*p = n
		return nil
	}}
}

// Map binds comma-separated key=value pairs ("acme=exact,globex=fold").
func Map(p *map[string]string, name, usage string) Setting {
	return Setting{Name: name, Usage: usage, Get: func() string {
		parts := make([]string, 0, len(*p))
		for k, v := range *p {
			parts = append(parts, k+"="+v)
		}
		slices.Sort(parts)
		return strings.Join(parts, ",")
	}, Set: func(v string) error {
		m := map[string]string{}
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			k, val, ok := strings.Cut(part, "=")
			if k, val = strings.TrimSpace(k), strings.TrimSpace(val); !ok || k == "" {
				return fmt.Errorf("%q is not key=value", part)
			}
			if _, dup := m[k]; dup {
				return fmt.Errorf("key %q given twice", k)
			}
			m[k] = val
		}
		*p = m
		return nil
	}}
}
