package storetest

import (
	"testing"

	"github.com/pushbackhq/pushback/pkg/store"
)

// Memory returns an in-memory badger store closed when the test ends.
// With keyspaces it refuses keys outside them, as every store the services
// run on does.
func Memory(t testing.TB, keyspaces ...store.Keyspace) *store.Badger {
	t.Helper()
	st, err := store.OpenBadger(store.BadgerOptions{InMemory: true, Keyspaces: keyspaces})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}
