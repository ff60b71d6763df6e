package scoring_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
	"github.com/pushbackhq/pushback/services/scoring"
)

// TestKeyspacesHoldEveryKey runs scoring's calls on a store that refuses
// keys outside scoring's declared keyspaces (as every store the mesh opens
// does) and checks every key written and every prefix scanned.
func TestKeyspacesHoldEveryKey(t *testing.T) {
	rec := storetest.Record(storetest.Memory(t, scoring.Keyspaces()...))
	f := serve(t, rec, scoring.Options{})
	ctx := context.Background()
	office := geoClient("198.51.100.1", 40.71, -74.0, "US", 7922)
	attacker := geoClient("45.9.9.9", 52.37, 4.89, "NL", 50000)
	var evs []*eventv1.AuthEvent
	for i := range 6 {
		u := fmt.Sprint("user/", i) // a "/" in an id stays in its key part
		evs = append(evs, event("login-"+u, u, eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, 0, office),
			event("sent-"+u, u, eventv1.EventType_EVENT_TYPE_PUSH_SENT, time.Hour, attacker),
			event("deny-"+u, u, eventv1.EventType_EVENT_TYPE_PUSH_DENIED, time.Hour+10*time.Second, attacker),
			event("fraud-"+u, u, eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED, time.Hour+20*time.Second, attacker))
	}
	if _, err := f.client.Observe(ctx, &scoringv1.ObserveRequest{Events: evs}); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		u := fmt.Sprint("user/", i)
		if _, err := f.client.Assess(ctx, &scoringv1.AssessRequest{Record: true, Attempt: &scoringv1.Attempt{
			AttemptId: "a-" + u, Tenant: "acme", UserId: u, Factor: eventv1.Factor_FACTOR_PUSH,
			Time: ts(2 * time.Hour), Client: attacker}}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.client.GetRisk(ctx, &scoringv1.GetRiskRequest{Tenant: "acme", UserId: u, Time: ts(2 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if resp, err := f.client.ListRiskChanges(ctx, &scoringv1.ListRiskChangesRequest{}); err != nil || len(resp.GetChanges()) == 0 {
		t.Fatalf("ListRiskChanges = %v, %v", resp, err)
	}
	rec.CheckKeyspaces(t, scoring.Keyspaces())
}
