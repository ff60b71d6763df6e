package settings

import (
	"testing"
	"time"
)

func TestSettingsRoundTrip(t *testing.T) {
	var (
		s  string
		l  []string
		b  bool
		d  time.Duration
		n  int
		m  map[string]string
		ss = []Setting{String(&s, "s", ""), List(&l, "l", ""), Bool(&b, "b", ""), Duration(&d, "d", ""), Int(&n, "n", ""), Map(&m, "m", "")}
	)
	in := []string{"x", "a,b", "true", "1m30s", "42", "acme=exact,globex=fold"}
	for i, st := range ss {
		if err := st.Set(in[i]); err != nil {
			t.Fatalf("%s: %v", st.Name, err)
		}
		if got := st.Get(); got != in[i] {
			t.Errorf("%s: Get = %q, want %q", st.Name, got, in[i])
		}
	}
	if !ss[2].OnOff || ss[0].OnOff {
		t.Error("only booleans are on/off")
	}
}

func TestSettingsRefuseBadValues(t *testing.T) {
	var (
		b bool
		d time.Duration
		n int
		m map[string]string
	)
	for _, c := range []struct {
		st Setting
		v  string
	}{
		{Bool(&b, "b", ""), "maybe"},
		{Duration(&d, "d", ""), "10"},
		{Int(&n, "n", ""), "1.5"},
		{Map(&m, "m", ""), "acme"},
		{Map(&m, "m", ""), "=exact"},
		{Map(&m, "m", ""), "a=1,a=2"},
	} {
		if err := c.st.Set(c.v); err == nil {
			t.Errorf("%s: %q accepted", c.st.Name, c.v)
		}
	}
	if SecretString(new(string), "k", "").Secret != true || SecretList(new([]string), "k", "").Secret != true {
		t.Error("secret settings are not marked secret")
	}
}
