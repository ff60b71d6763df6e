package notify_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/connectors/respond"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/redistest"
	"github.com/pushbackhq/pushback/pkg/userid"
	"github.com/pushbackhq/pushback/services/notify"
)

// fakeConnector records what it is asked to do; fail decides each call's
// error.
type fakeConnector struct {
	name string
	acts []respond.Action
	mu   sync.Mutex
	done []respond.Request
	fail func(n int) error
}

func (f *fakeConnector) Name() string { return f.name }

func (f *fakeConnector) Supports(a respond.Action) bool {
	for _, x := range f.acts {
		if x == a {
			return true
		}
	}
	return false
}

func (f *fakeConnector) Do(_ context.Context, r respond.Request) (respond.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		if err := f.fail(len(f.done)); err != nil {
			f.done = append(f.done, respond.Request{})
			return respond.Result{}, err
		}
	}
	f.done = append(f.done, r)
	return respond.Result{Detail: fmt.Sprintf("DELETE /users/%s/sessions: 204", r.UserID), IdPUserID: "00u-" + r.UserID}, nil
}

func (f *fakeConnector) calls() []respond.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []respond.Request
	for _, r := range f.done {
		if r.UserID != "" {
			out = append(out, r)
		}
	}
	return out
}

func respondAlert(key, tenant, user string, at time.Time, actions ...*notifyv1.ResponseAction) *notifyv1.NotifyRequest {
	r := alert(key, user, at, "APPROVAL_AFTER_BURST")
	r.Tenant = tenant
	r.Attributes["rules"] = "fatigue-success"
	r.Attributes["source"] = "okta"
	r.ResponseActions = actions
	return r
}

func revoke(rule string) *notifyv1.ResponseAction {
	return &notifyv1.ResponseAction{Action: "revoke_sessions", Rule: rule}
}

func TestResponseActionIsTakenOncePerIncidentAndAudited(t *testing.T) {
	clk := newClock()
	aliases, err := userid.ParseAliases(strings.NewReader("people:\n  - id: alice@example.com\n    okta: Alice.Smith@example.com\n"))
	if err != nil {
		t.Fatal(err)
	}
	okta := &fakeConnector{name: "okta", acts: []respond.Action{respond.RevokeSessions, respond.RevokeTokens}}
	duo := &fakeConnector{name: "duo", acts: []respond.Action{respond.SetUserStatus}}
	s := newService(t, newStore(t), clk, notify.Options{Channels: []notify.Channel{
		notify.LogChannel{Logger: (&logBuffer{}).logger()},
		&notify.ActionChannel{Connector: okta, Aliases: aliases}, &notify.ActionChannel{Connector: duo, Aliases: aliases},
	}})
	first := notifyOK(t, s, respondAlert("respond:c1", "acme", "alice@example.com", clk.Now(), revoke("fatigue-success")))
	// The rule matches again on the next event of the same attack: same
	// incident, no second revocation.
	again := notifyOK(t, s, respondAlert("respond:c2", "acme", "alice@example.com", clk.Now(), revoke("fatigue-success")))
	if again.GetIncidentId() != first.GetIncidentId() {
		t.Fatalf("two incidents %s %s", first.GetIncidentId(), again.GetIncidentId())
	}
	settle(t, s, clk, 5)
	calls := okta.calls()
	if len(calls) != 1 || calls[0].UserID != "Alice.Smith@example.com" || calls[0].Action != respond.RevokeSessions || calls[0].IncidentID != first.GetIncidentId() {
		t.Fatalf("okta calls %+v", calls)
	}
	if len(duo.calls()) != 0 {
		t.Fatalf("duo took an action it was not asked for: %+v", duo.calls())
	}
	inc, err := s.GetIncident(context.Background(), &notifyv1.GetIncidentRequest{IncidentId: first.GetIncidentId()})
	if err != nil {
		t.Fatal(err)
	}
	if inc.GetIncident().GetUserId() != "alice@example.com" || inc.GetIncident().GetTenant() != "acme" || inc.GetIncident().GetRules()[0] != "fatigue-success" {
		t.Fatalf("incident %v", inc.GetIncident())
	}
	var action *notifyv1.Delivery
	for _, d := range inc.GetDeliveries() {
		if d.GetNotification().GetKind() == notifyv1.Kind_KIND_RESPONSE_ACTION {
			if action != nil {
				t.Fatalf("two actions in the incident")
			}
			action = d
		}
	}
	if action == nil || action.GetStatus() != notifyv1.Status_STATUS_DELIVERED || action.GetChannel() != "okta" ||
		!strings.Contains(action.GetResult(), "Alice.Smith@example.com") || action.GetNotification().GetResponseActions()[0].GetRule() != "fatigue-success" {
		t.Fatalf("audited action %v", action)
	}
	list, err := s.ListIncidents(context.Background(), &notifyv1.ListIncidentsRequest{Tenant: "acme", UserId: "alice@example.com"})
	if err != nil || len(list.GetIncidents()) != 1 || list.GetIncidents()[0].GetIncidentId() != first.GetIncidentId() {
		t.Fatalf("ListIncidents = %v, %v", list, err)
	}
	if other, _ := s.ListIncidents(context.Background(), &notifyv1.ListIncidentsRequest{Tenant: "globex"}); len(other.GetIncidents()) != 0 {
		t.Fatalf("another tenant sees %v", other.GetIncidents())
	}
}

func TestDryRunActionIsRecordedNotTaken(t *testing.T) {
	clk := newClock()
	okta := &fakeConnector{name: "okta", acts: []respond.Action{respond.RevokeSessions}}
	s := newService(t, newStore(t), clk, notify.Options{Channels: []notify.Channel{&notify.ActionChannel{Connector: okta}}})
	a := revoke("fatigue-success")
	a.DryRun = true
	notifyOK(t, s, respondAlert("respond:c1", "acme", "bob", clk.Now(), a))
	settle(t, s, clk, 5)
	if len(okta.calls()) != 0 {
		t.Fatalf("a dry run called the IdP: %+v", okta.calls())
	}
	var found bool
	for _, d := range list(t, s, notifyv1.Status_STATUS_DELIVERED) {
		if d.GetNotification().GetKind() == notifyv1.Kind_KIND_RESPONSE_ACTION {
			found = true
			if !strings.HasPrefix(d.GetResult(), "dry run: would revoke_sessions at okta for bob") {
				t.Fatalf("result %q", d.GetResult())
			}
		}
	}
	if !found {
		t.Fatal("the dry-run action is not recorded")
	}
}

// TestBrakeHoldsRevocationsPastTheLimit plays a bad rule that matches the
// whole company: past the brake, actions are held and one alert says so;
// an operator releases them.
// On Redis too: held actions are found again by a scan of their index.
func TestBrakeHoldsRevocationsPastTheLimit(t *testing.T) {
	t.Run("badger", func(t *testing.T) { brakeHoldsRevocations(t, newStore(t)) })
	t.Run("redis", func(t *testing.T) {
		st, err := store.OpenRedis(context.Background(), store.RedisOptions{Addrs: []string{redistest.Start(t).Addr}, Keyspaces: notify.Keyspaces()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		brakeHoldsRevocations(t, st)
	})
}

func brakeHoldsRevocations(t *testing.T, st store.Store) {
	clk := newClock()
	okta := &fakeConnector{name: "okta", acts: []respond.Action{respond.RevokeSessions}}
	logs := &logBuffer{}
	s := newService(t, st, clk, notify.Options{Brake: 3, Channels: []notify.Channel{
		notify.LogChannel{Logger: logs.logger()}, &notify.ActionChannel{Connector: okta},
	}})
	for i := range 10 {
		notifyOK(t, s, respondAlert(fmt.Sprintf("respond:c%d", i), "acme", fmt.Sprintf("user%d", i), clk.Now(), revoke("too-broad")))
	}
	// Another tenant has its own brake.
	notifyOK(t, s, respondAlert("respond:g", "globex", "gina", clk.Now(), revoke("too-broad")))
	deliverDue(t, s)
	deliverDue(t, s)
	if n := len(okta.calls()); n != 4 {
		t.Fatalf("%d revocations went out, want 3 for acme and 1 for globex", n)
	}
	held := list(t, s, notifyv1.Status_STATUS_HELD)
	if len(held) != 7 {
		t.Fatalf("%d held, want 7", len(held))
	}
	// The alert that says so waits for the alert channel's rate limit
	// like any alert (eleven users' alerts went first).
	for range 30 {
		clk.Advance(2 * time.Second)
		deliverDue(t, s)
	}
	if c := strings.Count(logs.String(), "response actions held in tenant acme"); c != 1 {
		t.Fatalf("%d brake alerts, want 1:\n%s", c, logs.String())
	}
	// Time passing does not release them: an operator does.
	clk.Advance(10 * time.Minute)
	deliverDue(t, s)
	if n := len(okta.calls()); n != 4 || len(list(t, s, notifyv1.Status_STATUS_HELD)) != 7 {
		t.Fatalf("held actions went out by themselves: %d", n)
	}
	resp, err := s.ReleaseActions(context.Background(), &notifyv1.ReleaseActionsRequest{Tenant: "acme", DeliveryIds: []string{held[0].GetDeliveryId()}})
	if err != nil || len(resp.GetDeliveryIds()) != 1 {
		t.Fatalf("release one = %v, %v", resp, err)
	}
	resp, err = s.ReleaseActions(context.Background(), &notifyv1.ReleaseActionsRequest{Tenant: "acme"})
	if err != nil || len(resp.GetDeliveryIds()) != 6 {
		t.Fatalf("release the rest = %v, %v", resp, err)
	}
	settle(t, s, clk, 10)
	if n := len(okta.calls()); n != 11 {
		t.Fatalf("%d revocations after release, want 11", n)
	}
	if _, err := s.ReleaseActions(context.Background(), &notifyv1.ReleaseActionsRequest{DeliveryIds: []string{"../etc"}}); apierr.Reason(err) != "ERROR_REASON_INVALID_ARGUMENT" {
		t.Fatalf("bad id: %v", err)
	}
}

func TestFailedActionIsNeverSilent(t *testing.T) {
	clk := newClock()
	okta := &fakeConnector{name: "okta", acts: []respond.Action{respond.RevokeSessions},
		fail: func(int) error { return respond.Permanent("GET /api/v1/users/x: HTTP 403 (E0000006)") }}
	logs := &logBuffer{}
	s := newService(t, newStore(t), clk, notify.Options{Channels: []notify.Channel{notify.LogChannel{Logger: logs.logger()}, &notify.ActionChannel{Connector: okta}}})
	notifyOK(t, s, respondAlert("respond:c1", "acme", "carol", clk.Now(), revoke("fatigue-success")))
	settle(t, s, clk, 5)
	dead := list(t, s, notifyv1.Status_STATUS_DEAD)
	if len(dead) != 1 || dead[0].GetAttempts() != 1 || !strings.Contains(dead[0].GetLastError(), "403") {
		t.Fatalf("dead %v: a permanent failure is not retried", dead)
	}
	if !strings.Contains(logs.String(), "revoke_sessions failed at okta") {
		t.Fatalf("no alert for the failed action:\n%s", logs.String())
	}
}

func TestRateLimitedActionWaitsAsTheIdPAsks(t *testing.T) {
	clk := newClock()
	okta := &fakeConnector{name: "okta", acts: []respond.Action{respond.RevokeSessions}, fail: func(n int) error {
		if n == 0 {
			return &respond.RetryAfter{Wait: 45 * time.Second, Err: errors.New("HTTP 429")}
		}
		return nil
	}}
	s := newService(t, newStore(t), clk, notify.Options{Channels: []notify.Channel{&notify.ActionChannel{Connector: okta}}})
	notifyOK(t, s, respondAlert("respond:c1", "acme", "dave", clk.Now(), revoke("fatigue-success")))
	deliverDue(t, s)
	pending := list(t, s, notifyv1.Status_STATUS_PENDING)
	var action *notifyv1.Delivery
	for _, d := range pending {
		if d.GetNotification().GetKind() == notifyv1.Kind_KIND_RESPONSE_ACTION {
			action = d
		}
	}
	if action == nil || action.GetNextAttemptTime().AsTime().Sub(clk.Now()) < 45*time.Second {
		t.Fatalf("retry of a rate-limited action %v, want no sooner than 45s", action)
	}
	settle(t, s, clk, 5)
	if len(okta.calls()) != 1 {
		t.Fatalf("calls %+v", okta.calls())
	}
}

func TestActionNobodyTakesRaisesAnAlert(t *testing.T) {
	clk := newClock()
	logs := &logBuffer{}
	s := newService(t, newStore(t), clk, notify.Options{Channels: []notify.Channel{notify.LogChannel{Logger: logs.logger()}}})
	notifyOK(t, s, respondAlert("respond:c1", "acme", "erin", clk.Now(), &notifyv1.ResponseAction{Action: "confirm_compromised", Rule: "r"}))
	settle(t, s, clk, 5)
	if !strings.Contains(logs.String(), "no connector can confirm_compromised") {
		t.Fatalf("no alert:\n%s", logs.String())
	}
}

func TestResponseActionsAreValidated(t *testing.T) {
	s := newService(t, newStore(t), newClock(), notify.Options{})
	for name, c := range map[string]struct {
		req   *notifyv1.NotifyRequest
		field string
	}{
		"unknown action": {respondAlert("k1", "t", "u", time.Now(), &notifyv1.ResponseAction{Action: "delete_user"}), "response_actions[0].action"},
		"status without set_user_status": {respondAlert("k2", "t", "u", time.Now(), &notifyv1.ResponseAction{Action: "revoke_sessions", UserStatus: "disabled"}),
			"response_actions[0].user_status"},
		"bad status": {respondAlert("k3", "t", "u", time.Now(), &notifyv1.ResponseAction{Action: "set_user_status", UserStatus: "deleted"}), "response_actions[0].user_status"},
		"no user":    {respondAlert("k4", "t", "", time.Now(), revoke("r")), "user_id"},
		"action kind without actions": {&notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_RESPONSE_ACTION, IdempotencyKey: "k5", UserId: "u"},
			"response_actions"},
	} {
		_, err := s.Notify(context.Background(), c.req)
		if f := apierr.Fields(err); len(f) == 0 || f[0] != c.field {
			t.Errorf("%s: %v, want a violation of %s", name, err, c.field)
		}
	}
}

// TestIncidentTurningCriticalAlertsAtOnce: a burst was alerted; minutes
// later the attack succeeds. The SOC hears of the success now, not after
// the update interval.
func TestIncidentTurningCriticalAlertsAtOnce(t *testing.T) {
	clk := newClock()
	logs := &logBuffer{}
	s := newService(t, newStore(t), clk, notify.Options{UpdateInterval: 5 * time.Minute, Channels: []notify.Channel{notify.LogChannel{Logger: logs.logger()}}})
	notifyOK(t, s, alert("burst:1", "frank", clk.Now()))
	deliverDue(t, s)
	clk.Advance(time.Minute)
	notifyOK(t, s, alert("burst:2", "frank", clk.Now()))
	deliverDue(t, s)
	if c := strings.Count(logs.String(), `"msg":"alert"`); c != 1 {
		t.Fatalf("%d alerts before the success, want 1 (the update waits)", c)
	}
	success := alert("success:1", "frank", clk.Now(), "APPROVAL_AFTER_BURST")
	success.Title = "fatigue success"
	notifyOK(t, s, success)
	deliverDue(t, s)
	if !strings.Contains(logs.String(), "fatigue success") {
		t.Fatalf("the success waits for the update interval:\n%s", logs.String())
	}
}
