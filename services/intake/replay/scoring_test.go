package replay

import (
	"fmt"
	"slices"
	"testing"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/services/scoring/engine"
)

// sprayPolicy denies a push from a source spraying many users.
const sprayPolicy = `
version: spray
rules:
  - name: spray-deny
    when: '"PUSH_SPRAY" in signals'
    outcome: DENY
`

// TestReplaySprayShowsPushSpray plays a password spray: one IP pushes to
// eight users with history (each signed in from home the day before), one
// push each, two minutes apart. A backtest must see what the live scorer
// sees: PUSH_SPRAY from the fifth user on (the IP threshold), naming the
// source, and the policy's answer to it. An office that pushes to users
// who then approve on their own devices must not.
func TestReplaySprayShowsPushSpray(t *testing.T) {
	cfg := engine.DefaultConfig()
	t0 := time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)
	const sprayer = "203.0.113.66"
	var evs []*eventv1.AuthEvent
	for i := range 8 {
		user := fmt.Sprint("user", i)
		home := &eventv1.Client{Ip: fmt.Sprintf("198.51.100.%d", 10+i), Asn: 7922, DeviceId: "laptop-" + user,
			Geo: &eventv1.Geo{Latitude: 40.71, Longitude: -74.0, AccuracyKm: 20, Country: "US", City: "New York"}}
		login := ev("login-"+user, user, eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, t0.Add(-24*time.Hour+time.Duration(i)*time.Minute), "")
		login.Client = home
		evs = append(evs, login)
	}
	for i := range 8 {
		user := fmt.Sprint("user", i)
		push := ev("spray-"+user, user, eventv1.EventType_EVENT_TYPE_PUSH_SENT, t0.Add(time.Duration(i)*2*time.Minute), sprayer)
		push.Client.Asn = 64496
		evs = append(evs, push)
	}
	en := New(Options{Scoring: cfg, Policy: mustPolicy(t, sprayPolicy)})
	got := map[string]Finding{}
	for _, e := range evs {
		if f, ok := en.Process(e); ok {
			got[f.EventID] = f
		}
	}
	for i := range 8 {
		id := fmt.Sprint("spray-user", i)
		f := got[id]
		sprayed := slices.Contains(f.Signals, engine.SignalPushSpray)
		if want := i+1 >= cfg.Spray.IPThreshold; sprayed != want {
			t.Errorf("%s: PUSH_SPRAY = %v, want %v (signals %v)", id, sprayed, want, f.Signals)
		}
		if sprayed && (f.Outcome != "DENY" || !slices.Contains(f.Rules, "spray-deny")) {
			t.Errorf("%s: outcome %s by %v, want DENY by spray-deny", id, f.Outcome, f.Rules)
		}
	}

	// The same eight pushes from an office, each approved on the user's
	// own laptop right away: the users vouch for it, nothing sprays.
	office := New(Options{Scoring: cfg, Policy: mustPolicy(t, sprayPolicy)})
	for _, e := range evs[:8] {
		office.Process(e)
	}
	for i := range 8 {
		user := fmt.Sprint("user", i)
		at := t0.Add(time.Duration(i) * 2 * time.Minute)
		push := ev("office-"+user, user, eventv1.EventType_EVENT_TYPE_PUSH_SENT, at, "192.0.2.1")
		ok := ev("ok-"+user, user, eventv1.EventType_EVENT_TYPE_PUSH_APPROVED, at.Add(10*time.Second), "192.0.2.1")
		ok.Responder = &eventv1.Client{Ip: "192.0.2.1", DeviceId: "laptop-" + user}
		for _, e := range []*eventv1.AuthEvent{push, ok} {
			if f, found := office.Process(e); found && slices.Contains(f.Signals, engine.SignalPushSpray) {
				t.Errorf("office %s: PUSH_SPRAY %v", f.EventID, f.Signals)
			}
		}
	}
}

// TestReplayForgetsAnIdleUser: the service drops the state of a user idle
// for longer than IdleTTL, so a backtest does too: a push on another
// device forty days after the user's last sign-in finds no history to call
// it new, where one a day later does.
func TestReplayForgetsAnIdleUser(t *testing.T) {
	cfg := engine.DefaultConfig()
	t0 := time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		gap  time.Duration
		want bool
	}{
		{"a day later", 24 * time.Hour, true},
		{"past IdleTTL", cfg.IdleTTL + 10*24*time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			en := New(Options{Scoring: cfg})
			login := ev("login", "idle", eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, t0, "198.51.100.7")
			login.Client.DeviceId = "laptop"
			en.Process(login)
			push := ev("push", "idle", eventv1.EventType_EVENT_TYPE_PUSH_SENT, t0.Add(tc.gap), "198.51.100.7")
			push.Client.DeviceId = "tablet"
			f, _ := en.Process(push)
			if got := slices.Contains(f.Signals, engine.SignalNewDevice); got != tc.want {
				t.Fatalf("NEW_DEVICE = %v, want %v (signals %v)", got, tc.want, f.Signals)
			}
		})
	}
}
