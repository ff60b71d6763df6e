package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/redistest"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
)

func TestRedisConformance(t *testing.T) {
	srv := redistest.Start(t)
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.OpenRedis(context.Background(), store.RedisOptions{
			Addrs:          []string{srv.Addr},
			KeyPrefix:      fmt.Sprintf("t%d:", n.Add(1)),
			ScanNamespaces: []string{"scan/", "scam/", "scao/", "scaz/"},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestRedisScanOutsideNamespaceIsAnError(t *testing.T) {
	srv := redistest.Start(t)
	s, err := store.OpenRedis(context.Background(), store.RedisOptions{Addrs: []string{srv.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Scan(context.Background(), store.ScanOptions{Prefix: []byte("scoring/user/")}); err == nil {
		t.Fatal("scan of a prefix that is not indexed succeeded; it would silently return nothing")
	}
}
