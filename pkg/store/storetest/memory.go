package storetest

import (
	"testing"

	"github.com/pushbackhq/pushback/pkg/store"
)

// Memory returns an in-memory badger store closed when the test ends.
func Memory(t testing.TB) *store.Badger {
	t.Helper()
	st, err := store.OpenBadger(store.BadgerOptions{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}
