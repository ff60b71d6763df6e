package scoring_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/ids"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/redistest"
	"github.com/pushbackhq/pushback/services/scoring"
	"github.com/pushbackhq/pushback/services/scoring/engine"
	"google.golang.org/protobuf/types/known/durationpb"
)

// TestRiskFeedHoldsIngestedChangesInOrder: every event that leaves the
// user with a signal enters the feed, in the order it was applied, with the
// event; Decide's attempts and quiet events do not.
func TestRiskFeedHoldsIngestedChangesInOrder(t *testing.T) {
	f := serve(t, nil, scoring.Options{Now: func() time.Time { return base.Add(time.Hour) }})
	ctx := context.Background()
	evil := geoClient("203.0.113.9", -36.85, 174.76, "NZ", 9500)
	evs := []*eventv1.AuthEvent{event("login", "carol", eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, 0, nil)}
	for i := range 6 {
		evs = append(evs, event(fmt.Sprint("deny", i), "carol", eventv1.EventType_EVENT_TYPE_PUSH_DENIED, 30*time.Minute+time.Duration(i)*20*time.Second, evil))
	}
	evs = append(evs, event("ok", "carol", eventv1.EventType_EVENT_TYPE_PUSH_APPROVED, 33*time.Minute, evil))
	if _, err := f.client.Observe(ctx, &scoringv1.ObserveRequest{Events: evs}); err != nil {
		t.Fatal(err)
	}
	// Decision's record of a push it held back is not a logged event:
	// decision already alerted on it.
	suppressed := event("suppressed:d1", "carol", eventv1.EventType_EVENT_TYPE_PUSH_SUPPRESSED, 33*time.Minute+30*time.Second, evil)
	suppressed.Source = &eventv1.Source{Idp: "pushback", RawEventType: "decision.OUTCOME_DENY"}
	if _, err := f.client.Observe(ctx, &scoringv1.ObserveRequest{Events: []*eventv1.AuthEvent{suppressed}}); err != nil {
		t.Fatal(err)
	}
	// An attempt recorded by Decide changes the risk but is not a logged
	// event: decision already answers it.
	if _, err := f.client.Assess(ctx, &scoringv1.AssessRequest{Record: true, Attempt: &scoringv1.Attempt{AttemptId: "a1", Tenant: "acme", UserId: "carol",
		Factor: eventv1.Factor_FACTOR_PUSH, Time: ts(34 * time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	all, err := f.client.ListRiskChanges(ctx, &scoringv1.ListRiskChangesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The whole feed holds decision's held-back push and the attempt too,
	// marked as Decide's.
	if n := len(all.GetChanges()); n < 3 || all.GetChanges()[n-1].GetOrigin() != scoringv1.Origin_ORIGIN_DECIDE ||
		all.GetChanges()[n-1].GetEvent().GetType() != eventv1.EventType_EVENT_TYPE_PUSH_REQUESTED ||
		all.GetChanges()[n-2].GetOrigin() != scoringv1.Origin_ORIGIN_DECIDE || all.GetChanges()[n-3].GetOrigin() != scoringv1.Origin_ORIGIN_LOG {
		t.Fatalf("whole feed %v", all.GetChanges())
	}
	resp, err := f.client.ListRiskChanges(ctx, &scoringv1.ListRiskChangesRequest{LoggedOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetLastChangeId() != all.GetChanges()[len(all.GetChanges())-1].GetChangeId() {
		t.Fatalf("last_change_id %q: the filtered read must say how far it read", resp.GetLastChangeId())
	}
	var got []string
	prev := ""
	for _, c := range resp.GetChanges() {
		if c.GetChangeId() <= prev || c.GetTenant() != "acme" || c.GetAssessment().GetUserId() != "carol" || len(c.GetAssessment().GetSignals()) == 0 {
			t.Fatalf("change %v", c)
		}
		prev = c.GetChangeId()
		got = append(got, c.GetEvent().GetEventId())
	}
	if len(got) == 0 || got[len(got)-1] != "ok" || got[0] == "login" {
		t.Fatalf("feed %v: want the signalled denials then the approval, no quiet login, no Decide attempt", got)
	}
	last := resp.GetChanges()[len(resp.GetChanges())-1]
	if has(last.GetAssessment(), engine.SignalApprovalAfterBurst) == nil {
		t.Fatalf("the approval's change lacks APPROVAL_AFTER_BURST: %v", last.GetAssessment().GetSignals())
	}
	// Paging from a cursor.
	page, err := f.client.ListRiskChanges(ctx, &scoringv1.ListRiskChangesRequest{After: resp.GetChanges()[0].GetChangeId(), PageSize: 2, LoggedOnly: true})
	if err != nil || len(page.GetChanges()) != 2 || page.GetChanges()[0].GetChangeId() != resp.GetChanges()[1].GetChangeId() {
		t.Fatalf("page after the first: %v, %v", page.GetChanges(), err)
	}
}

// TestRiskFeedWaitsForAChange: a reader at the end of the feed is answered
// as soon as a change is written, not at the end of its wait.
func TestRiskFeedWaitsForAChange(t *testing.T) {
	f := serve(t, nil, scoring.Options{Now: func() time.Time { return base.Add(time.Hour) }})
	ctx := context.Background()
	got := make(chan *scoringv1.ListRiskChangesResponse, 1)
	go func() {
		resp, err := f.client.ListRiskChanges(ctx, &scoringv1.ListRiskChangesRequest{MaxWait: durationpb.New(30 * time.Second)})
		if err != nil {
			t.Error(err)
		}
		got <- resp
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if _, err := f.client.Observe(ctx, &scoringv1.ObserveRequest{Events: []*eventv1.AuthEvent{
		event("fraud", "dan", eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED, 50*time.Minute, nil)}}); err != nil {
		t.Fatal(err)
	}
	select {
	case resp := <-got:
		if len(resp.GetChanges()) != 1 || resp.GetChanges()[0].GetEvent().GetType() != eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED {
			t.Fatalf("woken with %v", resp.GetChanges())
		}
		if waited := time.Since(start); waited > 20*time.Second {
			t.Fatalf("answered after %s: the wait ran out instead of the change waking it", waited)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("not answered")
	}
	// From a cursor before it, the change; from the change itself, nothing
	// after the wait.
	resp, err := f.client.ListRiskChanges(ctx, &scoringv1.ListRiskChangesRequest{After: ids.Floor(base), MaxWait: durationpb.New(50 * time.Millisecond)})
	if err != nil || len(resp.GetChanges()) != 1 {
		t.Fatalf("after an old cursor: %v, %v", resp.GetChanges(), err)
	}
	resp, err = f.client.ListRiskChanges(ctx, &scoringv1.ListRiskChangesRequest{After: resp.GetChanges()[0].GetChangeId(), MaxWait: durationpb.New(50 * time.Millisecond)})
	if err != nil || len(resp.GetChanges()) != 0 {
		t.Fatalf("after the last change: %v, %v", resp.GetChanges(), err)
	}
}

func TestRiskFeedRequestsAreValidated(t *testing.T) {
	f := serve(t, nil, scoring.Options{})
	for name, c := range map[string]struct {
		req   *scoringv1.ListRiskChangesRequest
		field string
	}{
		"bad cursor": {&scoringv1.ListRiskChangesRequest{After: "../scoring/user"}, "after"},
		"page size":  {&scoringv1.ListRiskChangesRequest{PageSize: 5000}, "page_size"},
		"long wait":  {&scoringv1.ListRiskChangesRequest{MaxWait: durationpb.New(time.Hour)}, "max_wait"},
	} {
		_, err := f.client.ListRiskChanges(context.Background(), c.req)
		if fs := apierr.Fields(err); len(fs) != 1 || fs[0] != c.field {
			t.Errorf("%s: %v, want a violation of %s", name, err, c.field)
		}
	}
}

// TestStopWaitingAnswersAWaitingReader: at shutdown a reader waiting for
// a change is answered at once, so its call does not hold up a graceful
// stop for the rest of its wait.
func TestStopWaitingAnswersAWaitingReader(t *testing.T) {
	f := serve(t, nil, scoring.Options{})
	got := make(chan error, 1)
	go func() {
		_, err := f.client.ListRiskChanges(context.Background(), &scoringv1.ListRiskChangesRequest{MaxWait: durationpb.New(30 * time.Second)})
		got <- err
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	f.svc.StopWaiting()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("answered %s after StopWaiting", d)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("a waiting reader was not answered at shutdown")
	}
}

func burstEvents(tenant, user string, from time.Duration, n int) []*eventv1.AuthEvent {
	var evs []*eventv1.AuthEvent
	for i := range n {
		e := event(fmt.Sprint(tenant, user, from, "-deny-", i), user, eventv1.EventType_EVENT_TYPE_PUSH_DENIED, from+time.Duration(i)*20*time.Second,
			geoClient("203.0.113.9", -36.85, 174.76, "NZ", 9500))
		e.Tenant = tenant
		evs = append(evs, e)
	}
	return evs
}

// TestTenantWatchStreamsChangesAndResumesFromItsCursor: a tenant-wide
// watch opened before a user's burst streams that user's change, only the
// tenant's and only what passes its filter; a consumer that reconnects
// with its cursor gets what it missed.
// On Redis, one replica takes the events and another serves the watch.
func TestTenantWatchStreamsChangesAndResumesFromItsCursor(t *testing.T) {
	clock := scoring.Options{Now: func() time.Time { return base.Add(time.Hour) }}
	t.Run("badger", func(t *testing.T) {
		f := serve(t, nil, clock)
		tenantWatch(t, f, f)
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		open := func() store.Store {
			st, err := store.OpenRedis(context.Background(), store.RedisOptions{Addrs: []string{srv.Addr}, Keyspaces: scoring.Keyspaces()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		}
		tenantWatch(t, serve(t, open(), clock), serve(t, open(), clock))
	})
}

func tenantWatch(t *testing.T, f, watcher fixture) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch, err := watcher.client.WatchRisk(ctx, &scoringv1.WatchRiskRequest{Tenant: "acme", MinScore: 1, Signals: []string{engine.SignalPushBurst, engine.SignalDenialStreak}})
	if err != nil {
		t.Fatal(err)
	}
	// The stream is open once the server sent headers; give it a moment
	// to find the end of the feed.
	time.Sleep(200 * time.Millisecond)
	if _, err := f.client.Observe(ctx, &scoringv1.ObserveRequest{Events: append(burstEvents("globex", "gil", 10*time.Minute, 6), burstEvents("acme", "hal", 20*time.Minute, 6)...)}); err != nil {
		t.Fatal(err)
	}
	first, err := watch.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if first.GetAssessment().GetUserId() != "hal" || first.GetEvent().GetTenant() != "acme" || first.GetChangeId() == "" || first.GetResync() {
		t.Fatalf("first change %v: want hal's, of acme only", first)
	}
	cancel()

	// The consumer was away while more happened; it reconnects with the
	// last change id it saw.
	if _, err := f.client.Observe(context.Background(), &scoringv1.ObserveRequest{Events: burstEvents("acme", "ivy", 30*time.Minute, 6)}); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel2()
	again, err := watcher.client.WatchRisk(ctx2, &scoringv1.WatchRiskRequest{Tenant: "acme", After: first.GetChangeId(), MinScore: 1})
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]bool{}
	for !users["ivy"] {
		m, err := again.Recv()
		if err != nil {
			t.Fatalf("resumed watch: %v (seen %v)", err, users)
		}
		if m.GetChangeId() <= first.GetChangeId() {
			t.Fatalf("change %s at or before the cursor %s", m.GetChangeId(), first.GetChangeId())
		}
		users[m.GetAssessment().GetUserId()] = true
	}
	if !users["hal"] || users["gil"] {
		t.Fatalf("resumed watch saw %v: want hal's later changes and ivy's, never globex's gil", users)
	}
}

// TestTenantWatchFromACursorPastRetentionSaysResync: changes older than
// the feed keeps are gone; the consumer is told.
func TestTenantWatchFromACursorPastRetentionSaysResync(t *testing.T) {
	f := serve(t, nil, scoring.Options{Now: func() time.Time { return base.Add(time.Hour) }})
	if _, err := f.client.Observe(context.Background(), &scoringv1.ObserveRequest{Events: burstEvents("acme", "jo", 10*time.Minute, 6)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w, err := f.client.WatchRisk(ctx, &scoringv1.WatchRiskRequest{Tenant: "acme", After: ids.Floor(base.Add(-48 * time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	m, err := w.Recv()
	if err != nil || !m.GetResync() {
		t.Fatalf("first message %v, %v: want resync", m, err)
	}
}

func TestTenantWatchIsValidated(t *testing.T) {
	f := serve(t, nil, scoring.Options{})
	for name, c := range map[string]struct {
		req   *scoringv1.WatchRiskRequest
		field string
	}{
		"bad cursor":       {&scoringv1.WatchRiskRequest{Tenant: "acme", After: "../x"}, "after"},
		"score":            {&scoringv1.WatchRiskRequest{Tenant: "acme", MinScore: 101}, "min_score"},
		"unknown signal":   {&scoringv1.WatchRiskRequest{Tenant: "acme", Signals: []string{"PUSH_BURSTY"}}, "signals[0]"},
		"filters and user": {&scoringv1.WatchRiskRequest{Tenant: "acme", UserId: "kim", MinScore: 10}, "user_id"},
	} {
		w, err := f.client.WatchRisk(context.Background(), c.req)
		if err == nil {
			_, err = w.Recv()
		}
		if fs := apierr.Fields(err); len(fs) != 1 || fs[0] != c.field {
			t.Errorf("%s: %v, want a violation of %s", name, err, c.field)
		}
	}
}
