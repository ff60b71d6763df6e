package replay

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	defaultpolicy "github.com/pushbackhq/pushback/deploy/policy"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/services/decision/policy"
	"github.com/pushbackhq/pushback/services/scoring/engine"
	"github.com/pushbackhq/pushback/services/scoring/scenario"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var obsTypes = map[engine.ObservationKind]eventv1.EventType{
	engine.ObsAttempt:               eventv1.EventType_EVENT_TYPE_PUSH_REQUESTED,
	engine.ObsPushSent:              eventv1.EventType_EVENT_TYPE_PUSH_SENT,
	engine.ObsPushApproved:          eventv1.EventType_EVENT_TYPE_PUSH_APPROVED,
	engine.ObsPushDenied:            eventv1.EventType_EVENT_TYPE_PUSH_DENIED,
	engine.ObsPushTimedOut:          eventv1.EventType_EVENT_TYPE_PUSH_TIMED_OUT,
	engine.ObsFraudReported:         eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED,
	engine.ObsLoginSucceeded:        eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED,
	engine.ObsLoginFailed:           eventv1.EventType_EVENT_TYPE_LOGIN_FAILED,
	engine.ObsNumberChallengeFailed: eventv1.EventType_EVENT_TYPE_NUMBER_CHALLENGE_FAILED,
	engine.ObsFactorEnrolled:        eventv1.EventType_EVENT_TYPE_FACTOR_ENROLLED,
}

// TestDefaultPolicyOnBenignPopulation runs the simulated benign population
// (10,000 users for a week: commutes, flights, carrier IP jumps, VPN use,
// phones that miss pushes, new phones) through scoring and the shipped
// default policy, as an IdP log reports it (each push once, as sent, with
// the approving device), and bounds how often a legitimate push would not
// simply be sent.
//
// The sign-ins on a phone that missed pushes are held apart: a third push
// in five minutes is what burst-number-match is for, and the user's own
// retries get number matching, by design; the bound on them is that none
// is denied or asked for a phishing-resistant factor more often than the
// rest are held up.
func TestDefaultPolicyOnBenignPopulation(t *testing.T) {
	pol, err := policy.Parse(bytes.NewReader(defaultpolicy.Default))
	if err != nil {
		t.Fatal(err)
	}
	en := New(Options{Scoring: engine.DefaultConfig(), Policy: pol})
	type tally struct {
		attempts int
		outcomes map[string]int
		rules    map[string]int
	}
	usual, habits := tally{outcomes: map[string]int{}, rules: map[string]int{}}, tally{outcomes: map[string]int{}, rules: map[string]int{}}
	client := func(c engine.ClientInfo) *eventv1.Client {
		if c == (engine.ClientInfo{}) {
			return nil
		}
		out := &eventv1.Client{Ip: c.IP, DeviceId: c.DeviceID, Asn: c.ASN, AsOrg: c.ASOrg}
		if c.HasGeo {
			out.Geo = &eventv1.Geo{Latitude: c.Lat, Longitude: c.Lon, AccuracyKm: c.AccuracyKm, Country: c.Country, City: c.City}
		}
		return out
	}
	for i, ev := range scenario.DefaultBenign().Generate() {
		typ, ok := obsTypes[ev.Obs.Kind]
		if !ok || typ == eventv1.EventType_EVENT_TYPE_PUSH_REQUESTED {
			continue
		}
		e := &eventv1.AuthEvent{EventId: fmt.Sprint("b", i), UserId: ev.User, Type: typ, Time: timestamppb.New(ev.Obs.At),
			AppId: "vpn", Factor: eventv1.Factor_FACTOR_PUSH, Client: client(ev.Obs.Client), Responder: client(ev.Obs.Responder)}
		tl := &usual
		if ev.Habit != "" {
			tl = &habits
		}
		if typ == eventv1.EventType_EVENT_TYPE_PUSH_SENT {
			tl.attempts++
		}
		f, ok := en.Process(e)
		if ok && f.Outcome != "" && f.Outcome != "ALLOW" {
			tl.outcomes[f.Outcome]++
			for _, r := range f.Rules {
				tl.rules[r]++
			}
		}
	}
	rate := func(tl tally, outcomes ...string) (int, float64) {
		n := 0
		for o, k := range tl.outcomes {
			if len(outcomes) == 0 || slices.Contains(outcomes, o) {
				n += k
			}
		}
		return n, float64(n) / float64(max(tl.attempts, 1))
	}
	stepped, r := rate(usual)
	t.Logf("%d benign pushes; not simply allowed: %d (%.3f%%) %v; rules %v", usual.attempts, stepped, 100*r, usual.outcomes, usual.rules)
	hstepped, hr := rate(habits)
	held, hheld := rate(habits, "DENY", "REQUIRE_PHISHING_RESISTANT")
	t.Logf("%d pushes of sign-ins on a phone that missed pushes or a new phone; not simply allowed: %d (%.3f%%) %v; rules %v; denied or phishing-resistant: %d (%.3f%%)",
		habits.attempts, hstepped, 100*hr, habits.outcomes, habits.rules, held, 100*hheld)
	if usual.attempts < 100000 || habits.attempts < 1000 {
		t.Fatalf("only %d and %d pushes simulated", usual.attempts, habits.attempts)
	}
	if r > 0.005 {
		t.Errorf("the default policy holds up %.3f%% of benign pushes (> 0.5%%)", 100*r)
	}
	if hheld > 0.005 {
		t.Errorf("the default policy denies the user's own retries, or asks them for a phishing-resistant factor, on %.3f%% of their pushes (> 0.5%%)", 100*hheld)
	}
}
