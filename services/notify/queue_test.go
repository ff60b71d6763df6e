package notify

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/redistest"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestSeverityAndRank(t *testing.T) {
	alert := func(signals string) *notifyv1.NotifyRequest {
		return &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_SOC_ALERT, Attributes: map[string]string{"signals": signals}}
	}
	cases := []struct {
		name    string
		n       *notifyv1.NotifyRequest
		sev     severity
		first   rank
		update  rank
		ownRank rank
	}{
		{"burst", alert("PUSH_BURST,DENIAL_STREAK"), sevTargeted, rankFirst, rankUpdate, rankFirst},
		{"no signals", alert(""), sevTargeted, rankFirst, rankUpdate, rankFirst},
		{"spray", alert("PUSH_BURST,PUSH_SPRAY"), sevSpray, rankFirstSpray, rankUpdateSpray, rankFirstSpray},
		{"approved after a burst", alert("PUSH_BURST,APPROVAL_AFTER_BURST"), sevCritical, rankCritical, rankCritical, rankCritical},
		{"approved in a spray", alert("PUSH_SPRAY, APPROVAL_AFTER_BURST"), sevCritical, rankCritical, rankCritical, rankCritical},
		{"approved far away", alert("RESPONSE_LOCATION_MISMATCH"), sevCritical, rankCritical, rankCritical, rankCritical},
		{"reported", alert("FRAUD_REPORTED"), sevCritical, rankCritical, rankCritical, rankCritical},
		{"a code that merely contains one", alert("NOT_FRAUD_REPORTED"), sevTargeted, rankFirst, rankUpdate, rankFirst},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sev := severityOf(tc.n)
			if sev != tc.sev || alertRank(sev, true) != tc.first || alertRank(sev, false) != tc.update || rankOf(tc.n) != tc.ownRank {
				t.Fatalf("severity %d, ranks %d/%d/%d; want %d, %d/%d/%d", sev, alertRank(sev, true), alertRank(sev, false), rankOf(tc.n),
					tc.sev, tc.first, tc.update, tc.ownRank)
			}
		})
	}
	kinds := map[notifyv1.Kind]rank{notifyv1.Kind_KIND_PUSH: rankUrgent, notifyv1.Kind_KIND_SECURITY_EVENT: rankUrgent, notifyv1.Kind_KIND_USER_NOTICE: rankNotice}
	for k, want := range kinds {
		if got := rankOf(&notifyv1.NotifyRequest{Kind: k}); got != want {
			t.Errorf("rankOf(%v) = %d, want %d", k, got, want)
		}
	}
}

// TestRaiseOnlyRises: a fold can make an alert more severe, never less, and
// never turns an update into a first alert or a notice into an alert.
func TestRaiseOnlyRises(t *testing.T) {
	cases := []struct {
		r    rank
		sev  severity
		want rank
	}{
		{rankFirstSpray, sevTargeted, rankFirst},
		{rankFirstSpray, sevCritical, rankCritical},
		{rankFirst, sevSpray, rankFirst},
		{rankUpdateSpray, sevTargeted, rankUpdate},
		{rankUpdate, sevCritical, rankCritical},
		{rankCritical, sevSpray, rankCritical},
		{rankNotice, sevCritical, rankNotice},
		{rankUrgent, sevSpray, rankUrgent},
	}
	for _, tc := range cases {
		if got := tc.r.raise(tc.sev); got != tc.want {
			t.Errorf("rank %d raised by severity %d = %d, want %d", tc.r, tc.sev, got, tc.want)
		}
	}
}

// TestPlanTakesTurns: the order of due entries, as a table of queues.
func TestPlanTakesTurns(t *testing.T) {
	e := func(id, channel, tenant string, r rank, due int64) dueEntry {
		return dueEntry{id: id, channel: channel, tenant: tenant, rank: r, due: due}
	}
	cases := []struct {
		name    string
		entries []dueEntry
		served  map[queueKey]uint64
		want    string
	}{
		{
			name: "one tenant: rank before due time",
			entries: []dueEntry{e("upd", "soc", "a", rankUpdate, 1), e("spray", "soc", "a", rankFirstSpray, 2),
				e("first", "soc", "a", rankFirst, 3), e("crit", "soc", "a", rankCritical, 4), e("notice", "soc", "a", rankNotice, 0)},
			want: "crit first spray notice upd",
		},
		{
			name:    "same rank: oldest first, then id",
			entries: []dueEntry{e("b", "soc", "a", rankFirst, 5), e("c", "soc", "a", rankFirst, 1), e("a", "soc", "a", rankFirst, 5)},
			want:    "c a b",
		},
		{
			name: "a flooding tenant takes turns with the others",
			entries: []dueEntry{e("a1", "soc", "a", rankFirstSpray, 1), e("a2", "soc", "a", rankFirstSpray, 1), e("a3", "soc", "a", rankFirstSpray, 1),
				e("a4", "soc", "a", rankFirstSpray, 1), e("b1", "soc", "b", rankUpdate, 9), e("c1", "soc", "c", rankFirstSpray, 5), e("c2", "soc", "c", rankFirstSpray, 6)},
			want: "a1 c1 b1 a2 c2 a3 a4",
		},
		{
			name:    "the tenant served least recently goes first, whatever its rank",
			entries: []dueEntry{e("a1", "soc", "a", rankCritical, 1), e("b1", "soc", "b", rankUpdateSpray, 1)},
			served:  map[queueKey]uint64{{"soc", "a"}: 7, {"soc", "b"}: 3},
			want:    "b1 a1",
		},
		{
			name:    "a tenant not served recently goes before one that was",
			entries: []dueEntry{e("a1", "soc", "a", rankFirst, 1), e("a2", "soc", "a", rankFirst, 2), e("b1", "soc", "b", rankFirstSpray, 3)},
			served:  map[queueKey]uint64{{"soc", "a"}: 7},
			want:    "b1 a1 a2",
		},
		{
			name: "pushes and security events go before every alert",
			entries: []dueEntry{e("alert", "soc", "a", rankCritical, 1), e("push", "push", "b", rankUrgent, 9),
				e("set", "set", "a", rankUrgent, 8)},
			served: map[queueKey]uint64{{"push", "b"}: 9},
			want:   "set push alert",
		},
		{
			name:    "channels are separate queues",
			entries: []dueEntry{e("w1", "webhook", "a", rankFirst, 1), e("w2", "webhook", "a", rankFirst, 2), e("s1", "slack", "a", rankFirst, 1)},
			want:    "s1 w1 w2",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var turn uint64
			for _, v := range tc.served {
				turn = max(turn, v)
			}
			var got []string
			for _, x := range plan(tc.entries, tc.served, turn) {
				got = append(got, x.id)
			}
			if strings.Join(got, " ") != tc.want {
				t.Fatalf("order %q, want %q", strings.Join(got, " "), tc.want)
			}
		})
	}
}

func TestDueEntryRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	for _, tenant := range []string{"acme", "", "a/b", "100%"} {
		d := &notifyv1.Delivery{DeliveryId: "01jqdelivery", Channel: "ops/slack", NextAttemptTime: timestamppb.New(at),
			Notification: &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_USER_NOTICE, Tenant: tenant}}
		key, val := dueKey(d), dueValue(rankNotice, d.GetDeliveryId(), d.GetChannel())
		e, ok := parseDue(key, val)
		if !ok || e.legacy || e.unread || e.kind != notifyv1.Kind_KIND_USER_NOTICE || e.tenant != store.KeyPart(tenant) || e.due != at.UnixMilli() ||
			e.id != d.GetDeliveryId() || e.rank != rankNotice || e.channel != "ops/slack" || !e.names(d) {
			t.Fatalf("tenant %q: %s -> %+v, %v", tenant, key, e, ok)
		}
		if !strings.HasPrefix(string(key), e.group) {
			t.Fatalf("group %q is not a prefix of %q", e.group, key)
		}
		old, ok := parseDue(legacyDueKey(d), []byte(d.GetDeliveryId()))
		if !ok || !old.legacy || !old.unread || !old.names(d) || old.names(&notifyv1.Delivery{DeliveryId: "other", NextAttemptTime: d.GetNextAttemptTime()}) {
			t.Fatalf("older layout: %+v, %v", old, ok)
		}
		if string(legacyDueKey(d)) >= string(legacyEnd) || string(key) <= string(legacyEnd) {
			t.Fatalf("the older layout does not sort before %q and this one after", legacyEnd)
		}
	}
	// A value that cannot be read leaves the entry to be ranked when it is
	// claimed: the key names the delivery, which must not be left behind.
	for _, v := range []string{"9/id/push", "1/other/push", "1", "", "x/id/push"} {
		e, ok := parseDue([]byte("notify/due/push/acme/00000001764234000000/id"), []byte(v))
		if !ok || !e.unread || e.id != "id" || e.kind != notifyv1.Kind_KIND_PUSH || e.rank != rankUrgent {
			t.Errorf("value %q: %+v, %v; want the entry, unread", v, e, ok)
		}
	}
	for _, key := range []string{
		"notify/due/push/acme/1764234000000/id",
		"notify/due/push/acme/00000001764234000000/",
		"notify/due/push/acme/0000000176423400000x/id",
		"notify/due/x",
		"notify/delivery/id",
	} {
		if e, ok := parseDue([]byte(key), []byte("1/id/push")); ok {
			t.Errorf("parseDue(%q) = %+v, want not ok", key, e)
		}
	}
}

// TestOlderLayoutEntriesAreStillDelivered: pending deliveries queued before
// the due index named kinds and tenants are delivered after the upgrade, and
// so is one whose entry holds a value that cannot be read; a rate-limited
// one without a token moves to the new layout and keeps its due time.
func TestOlderLayoutEntriesAreStillDelivered(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	push := &pushChannel{}
	alerts := &alertChannel{}
	s, st := claimService(t, push, now)
	s.opts.Channels = append(s.opts.Channels, alerts)
	s.limiter = newLimiter(st, map[string]RateLimit{"alerts": {Every: time.Minute, Burst: 1}}, RateLimit{})
	put := func(id string, kind notifyv1.Kind, channel string, due time.Time, damaged bool) {
		d := &notifyv1.Delivery{DeliveryId: id, Channel: channel, Status: notifyv1.Status_STATUS_PENDING, NextAttemptTime: timestamppb.New(due),
			Notification: &notifyv1.NotifyRequest{Kind: kind, IdempotencyKey: id, UserId: "u", Tenant: "acme"}}
		if err := st.Update(context.Background(), func(tx store.Txn) error {
			if err := putDelivery(tx, d, 0); err != nil {
				return err
			}
			if damaged {
				return tx.Set(dueKey(d), []byte("damaged"), 0)
			}
			return tx.Set(legacyDueKey(d), []byte(id), 0)
		}); err != nil {
			t.Fatal(err)
		}
	}
	put("p1", notifyv1.Kind_KIND_PUSH, "push", now.Add(-time.Minute), false)
	put("p2", notifyv1.Kind_KIND_PUSH, "push", now.Add(-time.Minute), true)
	for i := range 3 {
		put(fmt.Sprint("a", i), notifyv1.Kind_KIND_SOC_ALERT, "alerts", now.Add(-time.Duration(i+1)*time.Second), false)
	}
	if err := s.DeliverDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	if push.sends.Load() != 2 || alerts.sends.Load() != 1 {
		t.Fatalf("%d pushes and %d alerts sent, want both pushes and the one alert the rate limit lets through", push.sends.Load(), alerts.sends.Load())
	}
	items, err := st.Scan(context.Background(), store.ScanOptions{Prefix: []byte("notify/due/")})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		e, ok := parseDue(it.Key, it.Value)
		if !ok || e.legacy || e.unread || e.kind != notifyv1.Kind_KIND_SOC_ALERT || e.due > now.UnixMilli() {
			t.Fatalf("left in the outbox: %s = %s, want the waiting alerts in the new layout at their due times", it.Key, it.Value)
		}
	}
	if len(items) != 2 {
		t.Fatalf("%d due entries left, want the 2 waiting alerts", len(items))
	}
	for i := range 2 {
		s.opts.Now = func() time.Time { return now.Add(time.Duration(i+1) * time.Minute) }
		if err := s.DeliverDue(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if alerts.sends.Load() != 3 {
		t.Fatalf("after two minutes %d alerts sent, want all 3", alerts.sends.Load())
	}
}

// alertChannel counts the SOC alerts it sends.
type alertChannel struct{ pushChannel }

func (c *alertChannel) Name() string                 { return "alerts" }
func (c *alertChannel) Accepts(k notifyv1.Kind) bool { return k == notifyv1.Kind_KIND_SOC_ALERT }

// TestScanDueReadsWhatIsDue: the walk over the due index returns the due
// entries of every kind and tenant, skips to the next tenant at the first
// entry not yet due, and reads at most dueLookahead of one tenant; on
// badger and on Redis, whose ordered indexes differ.
func TestScanDueReadsWhatIsDue(t *testing.T) {
	stores := map[string]func(t *testing.T) store.Store{
		"badger": func(t *testing.T) store.Store { return storetest.Memory(t, Keyspaces()...) },
		"redis": func(t *testing.T) store.Store {
			srv := redistest.Start(t)
			st, err := store.OpenRedis(context.Background(), store.RedisOptions{Addrs: []string{srv.Addr}, Keyspaces: Keyspaces()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		},
	}
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			want := map[string]bool{}
			n := 0
			put := func(kind notifyv1.Kind, tenant string, at time.Duration, legacy bool) {
				n++
				d := &notifyv1.Delivery{DeliveryId: fmt.Sprintf("d%05d", n), Channel: "c", NextAttemptTime: timestamppb.New(now.Add(at)),
					Notification: &notifyv1.NotifyRequest{Kind: kind, Tenant: tenant}}
				key, val := dueKey(d), dueValue(rankOf(d.GetNotification()), d.GetDeliveryId(), "c")
				if legacy {
					key, val = legacyDueKey(d), []byte(d.GetDeliveryId())
				}
				if err := st.Update(context.Background(), func(tx store.Txn) error { return tx.Set(key, val, 0) }); err != nil {
					t.Fatal(err)
				}
				if at <= 0 {
					want[d.GetDeliveryId()] = true
				}
			}
			for _, at := range []time.Duration{-time.Hour, 0, time.Second} {
				put(notifyv1.Kind_KIND_SOC_ALERT, "", at, true)
				put(notifyv1.Kind_KIND_SOC_ALERT, "acme", at, false)
				put(notifyv1.Kind_KIND_SOC_ALERT, "acme", at-time.Minute, false)
				put(notifyv1.Kind_KIND_SOC_ALERT, "a/b", at, false)
				put(notifyv1.Kind_KIND_SOC_ALERT, "", at, false)
				put(notifyv1.Kind_KIND_PUSH, "acme", at, false)
				put(notifyv1.Kind_KIND_USER_NOTICE, "globex", at+time.Hour, false)
			}
			got, more, err := scanDue(context.Background(), st, now)
			if err != nil || more {
				t.Fatal(more, err)
			}
			small := len(got)
			for _, e := range got {
				if !want[e.id] {
					t.Errorf("read %s (due %v), not due", e.id, time.UnixMilli(e.due).UTC())
				}
				delete(want, e.id)
			}
			if len(want) != 0 {
				t.Fatalf("due entries not read: %v", want)
			}
			for range dueLookahead + 5 {
				put(notifyv1.Kind_KIND_SOC_ALERT, "big", -time.Second, false)
			}
			got, more, err = scanDue(context.Background(), st, now)
			big := 0
			for _, e := range got {
				if e.tenant == "big" {
					big++
				}
			}
			if err != nil || !more || big != dueLookahead || len(got) != dueLookahead+small {
				t.Fatalf("with a big tenant: %d of it, %d in all, more %v, %v; want %d, %d, true", big, len(got), more, err, dueLookahead, dueLookahead+small)
			}
		})
	}
}
