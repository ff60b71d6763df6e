package engine

import (
	"testing"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
)

func TestClientIPIsCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:DB8::1", "2001:db8::1"},
		{"2001:0db8:0000::0001", "2001:db8::1"},
		{"192.0.2.1", "192.0.2.1"},
		{"", ""},
		{"not an ip", "not an ip"},
	}
	for _, tt := range tests {
		if got := ClientInfoOf(&eventv1.Client{Ip: tt.in}).IP; got != tt.want {
			t.Errorf("ClientInfoOf(%q).IP = %q, want %q", tt.in, got, tt.want)
		}
	}
}
