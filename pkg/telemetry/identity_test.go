package telemetry

import (
	"strings"
	"sync"
	"testing"
)

func TestRedactor(t *testing.T) {
	r := NewRedactor([]byte("k"), false)
	other := NewRedactor([]byte("other key"), false)
	raw := NewRedactor([]byte("k"), true)
	var nilR *Redactor
	tests := []struct {
		name string
		got  string
		want func(string) bool
	}{
		{"user hashed", r.User("alice"), func(s string) bool { return len(s) == 24 && !strings.Contains(s, "alice") }},
		{"stable", r.User("alice"), func(s string) bool { return s == r.User("alice") }},
		{"keyed", r.User("alice"), func(s string) bool { return s != other.User("alice") }},
		{"kinds apart", r.User("198.51.100.7"), func(s string) bool { return s != r.IP("198.51.100.7") }},
		{"device hashed", r.Device("d1"), func(s string) bool { return len(s) == 24 && s != "d1" }},
		{"empty stays empty", r.User(""), func(s string) bool { return s == "" }},
		{"raw on request", raw.User("alice"), func(s string) bool { return s == "alice" }},
		{"raw ip", raw.IP("198.51.100.7"), func(s string) bool { return s == "198.51.100.7" }},
		{"nil redacts", nilR.User("alice"), func(s string) bool { return s == "redacted" }},
	}
	for _, tc := range tests {
		if !tc.want(tc.got) {
			t.Errorf("%s: got %q", tc.name, tc.got)
		}
	}
	if !raw.Raw() || r.Raw() || nilR.Raw() {
		t.Error("Raw() does not report the operator's choice")
	}
	if a, b := NewRedactor(nil, false).User("alice"), NewRedactor(nil, false).User("alice"); a == b {
		t.Error("two random keys gave the same hash")
	}
}

func TestRedactorConcurrent(t *testing.T) {
	r := NewRedactor([]byte("k"), false)
	want := r.User("alice")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				if got := r.User("alice"); got != want {
					t.Errorf("concurrent hash %q, want %q", got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkRedactorUser(b *testing.B) {
	r := NewRedactor([]byte("k"), false)
	b.ReportAllocs()
	for b.Loop() {
		_ = r.User("alice@example.com")
	}
}

func TestSamplerFromEnv(t *testing.T) {
	tests := []struct {
		env     map[string]string
		want    string
		wantErr bool
	}{
		{nil, "ParentBased{root:TraceIDRatioBased{0.1}", false},
		{map[string]string{"OTEL_TRACES_SAMPLER_ARG": "0.5"}, "ParentBased{root:TraceIDRatioBased{0.5}", false},
		{map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_always_on"}, "ParentBased{root:AlwaysOnSampler", false},
		{map[string]string{"OTEL_TRACES_SAMPLER": "always_off"}, "AlwaysOffSampler", false},
		{map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}, "ParentBased{root:TraceIDRatioBased{0.1}", false},
		{map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio"}, "TraceIDRatioBased{1}", false},
		{map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_SAMPLER": "always_on"}, "AlwaysOffSampler", false},
		{map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, "", true},
		{map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"}, "", true},
	}
	for _, tc := range tests {
		s, err := samplerFromEnv(func(k string) string { return tc.env[k] })
		if (err != nil) != tc.wantErr {
			t.Errorf("%v: err %v", tc.env, err)
			continue
		}
		if err == nil && !strings.HasPrefix(s.Description(), tc.want) {
			t.Errorf("%v: sampler %s, want %s", tc.env, s.Description(), tc.want)
		}
	}
}
