package notify_test

import (
	"fmt"
	"testing"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/services/notify"
)

// BenchmarkNotifyDuringAnAttack measures a denial folded into a running
// incident (the hot path while a user is push-bombed).
func BenchmarkNotifyDuringAnAttack(b *testing.B) {
	clk := newClock()
	s := newService(b, newStore(b), clk, notify.Options{Channels: []notify.Channel{&notify.Webhook{URL: "http://127.0.0.1:1"}}})
	for i := 0; b.Loop(); i++ {
		clk.Advance(time.Millisecond)
		if _, err := s.Notify(b.Context(), alert(fmt.Sprint("deny:", i), "alice", clk.Now())); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignSET(b *testing.B) {
	signer := newSigner(b)
	d := &notifyv1.Delivery{DeliveryId: "d1", Notification: &notifyv1.NotifyRequest{UserId: "u",
		SecurityEvent: &notifyv1.SecurityEvent{Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_SESSION_REVOKED}}}
	now := newClock().Now()
	for b.Loop() {
		c, err := notify.BuildSET(d, "iss", "aud", now)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := signer.Sign(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyReportLink(b *testing.B) {
	links := &notify.ReportLinks{Key: []byte("0123456789abcdef0123456789abcdef")}
	now := newClock().Now()
	tok := links.Token(notify.ReportClaims{Tenant: "acme", UserID: "alice", Nonce: "incident"}, now)
	for b.Loop() {
		if _, err := links.Verify(tok, now); err != nil {
			b.Fatal(err)
		}
	}
}
