package formats

import (
	"strings"
	"testing"
)

func TestRequestTenantBindsEveryEvent(t *testing.T) {
	event := func(tenant string) string {
		return `{"events":[{"eventId":"t1","tenant":"` + tenant + `","userId":"u","type":"EVENT_TYPE_LOGIN_SUCCEEDED","time":"2024-01-01T00:00:00Z"}]}`
	}
	tests := []struct {
		name, body, request, want, err string
	}{
		{"set when the event names none", event(""), "acme", "acme", ""},
		{"kept when it names the same", event("acme"), "acme", "acme", ""},
		{"kept without a request tenant", event("other"), "", "other", ""},
		{"refused when it names another", event("other"), "acme", "", "tenant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Parse(Native, []byte(tt.body), Options{Tenant: tt.request})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Parse = %v, want an error naming %s", err, tt.err)
				}
				return
			}
			if err != nil || len(b.Events) != 1 || b.Events[0].GetTenant() != tt.want {
				t.Fatalf("Parse = %v, %v; want tenant %q", b.Events, err, tt.want)
			}
		})
	}
}
