package outbound_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/pkg/outbound"
)

func TestTokenCacheSharesOneFetchAndRenewsBeforeExpiry(t *testing.T) {
	var fetches atomic.Int32
	release := make(chan struct{})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := &outbound.TokenCache{
		Fetch: func(ctx context.Context) (string, time.Duration, error) {
			n := fetches.Add(1)
			if n == 1 {
				<-release
			}
			return fmt.Sprint("tok-", n), time.Hour, nil
		},
		Margin: func(life time.Duration) time.Duration { return 5 * time.Minute },
		Now:    clock,
	}
	var wg sync.WaitGroup
	got := make([]string, 20)
	for i := range got {
		wg.Go(func() {
			tok, err := c.Get(context.Background())
			if err != nil {
				t.Error(err)
			}
			got[i] = tok
		})
	}
	// A caller that gives up does not end the fetch for the others.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Get(ctx); err == nil {
		t.Fatal("a cancelled caller got a token")
	}
	close(release)
	wg.Wait()
	for _, tok := range got {
		if tok != "tok-1" {
			t.Fatalf("tokens %v: want one shared fetch", got)
		}
	}
	mu.Lock()
	now = now.Add(54 * time.Minute)
	mu.Unlock()
	if tok, _ := c.Get(context.Background()); tok != "tok-1" || fetches.Load() != 1 {
		t.Fatalf("54 minutes in: %s after %d fetches", tok, fetches.Load())
	}
	mu.Lock()
	now = now.Add(2 * time.Minute) // within the margin
	mu.Unlock()
	if tok, _ := c.Get(context.Background()); tok != "tok-2" {
		t.Fatalf("within the margin: %s", tok)
	}
	// A refused token is dropped; a newer one is kept.
	c.Invalidate("tok-1")
	if c.Cached() != "tok-2" {
		t.Fatal("invalidating an older token dropped the newer one")
	}
	c.Invalidate("tok-2")
	if tok, _ := c.Get(context.Background()); tok != "tok-3" {
		t.Fatalf("after invalidation: %s", tok)
	}
}
