package replay

import (
	"bytes"
	"fmt"
	"testing"

	defaultpolicy "github.com/pushbackhq/pushback/deploy/policy"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/services/decision/policy"
	"github.com/pushbackhq/pushback/services/scoring"
	"github.com/pushbackhq/pushback/services/scoring/scenario"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var obsTypes = map[scoring.ObservationKind]eventv1.EventType{
	scoring.ObsAttempt:               eventv1.EventType_EVENT_TYPE_PUSH_REQUESTED,
	scoring.ObsPushSent:              eventv1.EventType_EVENT_TYPE_PUSH_SENT,
	scoring.ObsPushApproved:          eventv1.EventType_EVENT_TYPE_PUSH_APPROVED,
	scoring.ObsPushDenied:            eventv1.EventType_EVENT_TYPE_PUSH_DENIED,
	scoring.ObsPushTimedOut:          eventv1.EventType_EVENT_TYPE_PUSH_TIMED_OUT,
	scoring.ObsFraudReported:         eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED,
	scoring.ObsLoginSucceeded:        eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED,
	scoring.ObsLoginFailed:           eventv1.EventType_EVENT_TYPE_LOGIN_FAILED,
	scoring.ObsNumberChallengeFailed: eventv1.EventType_EVENT_TYPE_NUMBER_CHALLENGE_FAILED,
	scoring.ObsFactorEnrolled:        eventv1.EventType_EVENT_TYPE_FACTOR_ENROLLED,
}

// TestDefaultPolicyOnBenignPopulation runs the simulated benign population
// (10,000 users for a week: commutes, flights, carrier IP jumps, VPN use)
// through scoring and the shipped default policy, and bounds how often a
// legitimate push would not simply be sent.
func TestDefaultPolicyOnBenignPopulation(t *testing.T) {
	pol, err := policy.Parse(bytes.NewReader(defaultpolicy.Default))
	if err != nil {
		t.Fatal(err)
	}
	en := New(Options{Scoring: scoring.DefaultConfig(), Policy: pol})
	attempts := 0
	outcomes := map[string]int{}
	rules := map[string]int{}
	for i, ev := range scenario.DefaultBenign().Generate() {
		typ, ok := obsTypes[ev.Obs.Kind]
		if !ok {
			continue
		}
		c := ev.Obs.Client
		e := &eventv1.AuthEvent{EventId: fmt.Sprint("b", i), UserId: ev.User, Type: typ, Time: timestamppb.New(ev.Obs.At),
			AppId: "vpn", Factor: eventv1.Factor_FACTOR_PUSH,
			Client: &eventv1.Client{Ip: c.IP, DeviceId: c.DeviceID, Asn: c.ASN, AsOrg: c.ASOrg}}
		if c.HasGeo {
			e.Client.Geo = &eventv1.Geo{Latitude: c.Lat, Longitude: c.Lon, AccuracyKm: c.AccuracyKm, Country: c.Country, City: c.City}
		}
		if typ == eventv1.EventType_EVENT_TYPE_PUSH_REQUESTED {
			attempts++
		}
		f, ok := en.Process(e)
		if ok && f.Outcome != "" && f.Outcome != "ALLOW" {
			outcomes[f.Outcome]++
			for _, r := range f.Rules {
				rules[r]++
			}
		}
	}
	stepped := 0
	for _, n := range outcomes {
		stepped += n
	}
	rate := float64(stepped) / float64(attempts)
	t.Logf("%d benign push attempts; not simply allowed: %d (%.3f%%) %v; rules %v", attempts, stepped, 100*rate, outcomes, rules)
	if attempts < 100000 {
		t.Fatalf("only %d attempts simulated", attempts)
	}
	if rate > 0.005 {
		t.Fatalf("the default policy holds up %.3f%% of benign pushes (> 0.5%%)", 100*rate)
	}
}
