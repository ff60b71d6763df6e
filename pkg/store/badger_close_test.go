package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/pushbackhq/pushback/pkg/store"
)

// TestBadgerWritesRacingCloseFailCleanly: writes that follow-ups start
// while the process shuts down get an error, never a panic on the closed
// database, whether they start before, during or after Close.
func TestBadgerWritesRacingCloseFailCleanly(t *testing.T) {
	for round := range 20 {
		st, err := store.OpenBadger(store.BadgerOptions{InMemory: true})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := range 50 {
					err := st.Update(context.Background(), func(tx store.Txn) error {
						return tx.Set(fmt.Appendf(nil, "k/%d/%d/%d", round, w, i), []byte("v"), 0)
					})
					if err != nil && !errors.Is(err, badger.ErrDBClosed) {
						t.Errorf("write racing Close: %v", err)
						return
					}
					_, _ = st.Get(context.Background(), []byte("k"))
				}
			})
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if err := st.Update(context.Background(), func(tx store.Txn) error { return tx.Set([]byte("late"), []byte("v"), 0) }); !errors.Is(err, badger.ErrDBClosed) {
			t.Fatalf("write after Close: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
}
