package mesh

import (
	"testing"

	"github.com/pushbackhq/pushback/pkg/store"
)

// TestKeyspacesOfEveryTopologyAgree: whichever services a process runs,
// their declarations merge (no keyspace inside another's), and each runs
// with its own.
func TestKeyspacesOfEveryTopologyAgree(t *testing.T) {
	all := keyspaces(Config{Services: AllServices})
	if _, err := store.NewKeyspaces(all...); err != nil {
		t.Fatalf("all services: %v", err)
	}
	n := 0
	for _, s := range AllServices {
		ks := keyspaces(Config{Services: []string{s}})
		if len(ks) == 0 {
			t.Errorf("%s declares no keyspace", s)
		}
		n += len(ks)
	}
	if n != len(all) {
		t.Errorf("the services' keyspaces add up to %d, all of them together to %d", n, len(all))
	}
}
