package decision

import (
	"fmt"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	"github.com/pushbackhq/pushback/pkg/store"
)

// The keys are built without fmt; they must be the bytes fmt built.
func TestKeysAsFormatted(t *testing.T) {
	for _, c := range []struct{ tenant, user, attempt, id string }{
		{"", "alice", "a-1", "01J"}, {"acme", "a/b", "x/y", "id"}, {"50%", "bob", "", ""},
	} {
		tp, up := store.KeyPart(c.tenant), store.KeyPart(c.user)
		req := &decisionv1.DecideRequest{Tenant: c.tenant, UserId: c.user, AttemptId: c.attempt}
		for _, at := range []time.Time{time.UnixMilli(0), time.UnixMilli(1733382000123), time.UnixMilli(-5)} {
			if got, want := string(userIndexKey(c.tenant, c.user, at, c.id)), fmt.Sprintf("decision/user/%s/%s/%020d/%s", tp, up, at.UnixMilli(), c.id); got != want {
				t.Errorf("userIndexKey = %q, want %q", got, want)
			}
		}
		for got, want := range map[string]string{
			string(userPrefix(c.tenant, c.user)):  fmt.Sprintf("decision/user/%s/%s/", tp, up),
			string(attemptKey(req)):               fmt.Sprintf("decision/attempt/%s/%s/%s", tp, up, c.attempt),
			string(cooldownKey(c.tenant, c.user)): fmt.Sprintf("decision/cooldown/%s/%s", tp, up),
		} {
			if got != want {
				t.Errorf("key %q, want %q", got, want)
			}
		}
	}
}
