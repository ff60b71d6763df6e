package decision_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
	"github.com/pushbackhq/pushback/services/decision"
	"github.com/pushbackhq/pushback/services/scoring"
)

// storeKeyspaces are those of the services the tests run on one store:
// decision and the scoring it asks. The tests' stores refuse every other
// key, as every store the mesh opens does.
func storeKeyspaces() []store.Keyspace {
	return append(decision.Keyspaces(), scoring.Keyspaces()...)
}

// TestKeyspacesHoldEveryKey checks every key a burst of decisions writes
// and every prefix their listing scans.
func TestKeyspacesHoldEveryKey(t *testing.T) {
	rec := storetest.Record(storetest.Memory(t, storeKeyspaces()...))
	e := newEnv(t, envOptions{store: rec})
	var last *decisionv1.DecideResponse
	for i := range 6 {
		r := req("alice/x", "vpn", fmt.Sprint("a-", i), t0.Add(time.Duration(i)*time.Minute))
		last = e.decide(t, r)
		// The same attempt again: answered from its idempotency record.
		e.decide(t, r)
	}
	if last.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY {
		t.Fatalf("the burst ended with %v, want a deny and its cooldown", last.GetOutcome())
	}
	e.record(t, last.GetDecisionId())
	if got := e.list(t, "alice/x"); len(got) == 0 {
		t.Fatal("no decision listed")
	}
	if _, err := e.dc.ListDecisions(context.Background(), &decisionv1.ListDecisionsRequest{UserId: "alice/x", PageSize: 2}); err != nil {
		t.Fatal(err)
	}
	rec.CheckKeyspaces(t, storeKeyspaces())
	for _, p := range []string{"decision/id/", "decision/user/", "decision/attempt/", "decision/cooldown/"} {
		if !written(rec, p) {
			t.Errorf("nothing written under %s: the test no longer covers it", p)
		}
	}
}

func written(rec *storetest.Recorder, prefix string) bool {
	for _, k := range rec.Written() {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}
