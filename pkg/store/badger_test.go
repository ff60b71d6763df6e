package store_test

import (
	"testing"

	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
)

func TestBadgerConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, ks []store.Keyspace) store.Store {
		s, err := store.OpenBadger(store.BadgerOptions{Dir: t.TempDir(), Keyspaces: ks})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
