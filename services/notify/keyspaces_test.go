package notify_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
	"github.com/pushbackhq/pushback/services/notify"
)

// TestKeyspacesHoldEveryKey runs notify's calls on a store that refuses
// keys outside notify's declared keyspaces (as every store the mesh opens
// does; the other tests' stores do too) and checks every key written and
// every prefix scanned.
func TestKeyspacesHoldEveryKey(t *testing.T) {
	rec := storetest.Record(storetest.Memory(t, notify.Keyspaces()...))
	clk := newClock()
	h := newHook(t, nil, clk)
	s := newService(t, rec, clk, notify.Options{
		Channels:       []notify.Channel{&notify.Webhook{URL: h.srv.URL}},
		RateLimits:     map[string]notify.RateLimit{"webhook": {Every: time.Minute, Burst: 1}},
		IncidentWindow: 30 * time.Minute, UpdateInterval: 5 * time.Minute,
	})
	for i := range 3 {
		notifyOK(t, s, alert(fmt.Sprint("deny:", i), "alice/x", clk.Now()))
		notifyOK(t, s, alert(fmt.Sprint("deny:b", i), fmt.Sprint("bob/", i), clk.Now()))
		clk.Advance(time.Minute)
	}
	settle(t, s, clk, 10)
	ctx := context.Background()
	if _, err := s.ListDeliveries(ctx, &notifyv1.ListDeliveriesRequest{PageSize: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListIncidents(ctx, &notifyv1.ListIncidentsRequest{PageSize: 2}); err != nil {
		t.Fatal(err)
	}
	rec.CheckKeyspaces(t, notify.Keyspaces())
	for _, p := range []string{"notify/delivery/", "notify/due/", "notify/key/", "notify/incident/", "notify/incidents/", "notify/rate/"} {
		found := false
		for _, k := range rec.Written() {
			found = found || strings.HasPrefix(k, p)
		}
		if !found {
			t.Errorf("nothing written under %s: the test no longer covers it", p)
		}
	}
}
