package scoring

import (
	"testing"

	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
)

// A subscriber that does not read never blocks publishing; when it reads
// again it gets the newest assessment marked resync, then nothing stale.
func TestHubDropAndResync(t *testing.T) {
	h := newHub()
	slow := h.subscribe("acme", "u")
	fast := h.subscribe("acme", "u")
	other := h.subscribe("other", "u")
	defer h.unsubscribe(other)
	h.publish("acme", "u", &scoringv1.RiskAssessment{Score: 1})
	if ra, resync := fast.take(); ra.GetScore() != 1 || resync {
		t.Fatalf("fast: %v %v", ra, resync)
	}
	for i := int32(2); i <= 1000; i++ {
		h.publish("acme", "u", &scoringv1.RiskAssessment{Score: i})
	}
	<-slow.notify
	ra, resync := slow.take()
	if ra.GetScore() != 1000 || !resync {
		t.Fatalf("slow: score %d resync %v", ra.GetScore(), resync)
	}
	if ra, _ := slow.take(); ra != nil {
		t.Fatal("stale update after resync")
	}
	if ra, _ := other.take(); ra != nil {
		t.Fatal("update crossed tenants")
	}
	h.unsubscribe(slow)
	h.unsubscribe(fast)
	if len(h.byKey) != 1 {
		t.Fatalf("subscribers leak: %d keys", len(h.byKey))
	}
}
