package decision_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// spellings are one user as an attacker may type it: every one of them
// reaches the same person's phone through a directory that ignores case,
// width and surrounding space.
var spellings = []string{"bob", "Bob", "BOB", " bob ", "ｂｏｂ"}

// TestUserIDSpellingsShareOneBurstCount: five pushes to one user, each
// spelled differently, are five pushes to one user; the fifth is denied
// under the default policy as five pushes spelled alike are.
func TestUserIDSpellingsShareOneBurstCount(t *testing.T) {
	e := newEnv(t, envOptions{})
	want := []decisionv1.Outcome{
		decisionv1.Outcome_OUTCOME_ALLOW, decisionv1.Outcome_OUTCOME_ALLOW,
		decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH, decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH,
		decisionv1.Outcome_OUTCOME_DENY,
	}
	for i, user := range spellings {
		got := e.decide(t, req(user, "vpn", fmt.Sprint("s-", i), t0.Add(time.Duration(i)*time.Minute)))
		if got.GetOutcome() != want[i] {
			t.Fatalf("push %d as %q: %v (%v), want %v", i+1, user, got.GetOutcome(), got.GetReasons(), want[i])
		}
		if u := got.GetRisk().GetUserId(); u != "bob" {
			t.Fatalf("push %d as %q was assessed for %q, want bob", i+1, user, u)
		}
	}
	// The cooldown binds every spelling too.
	if got := e.decide(t, req("BoB", "mail", "after", t0.Add(6*time.Minute))); got.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY {
		t.Fatalf("push during the cooldown as BoB: %v", got.GetOutcome())
	}
	// An operator looking the user up in any spelling finds all of it.
	for _, user := range []string{"bob", "BOB", "ｂｏｂ"} {
		if recs := e.list(t, user); len(recs) != len(spellings)+1 {
			t.Fatalf("ListDecisions(%q) = %d decisions, want %d", user, len(recs), len(spellings)+1)
		}
	}
	// The alert names the user as counted.
	if err := e.svc.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.notes.mu.Lock()
	defer e.notes.mu.Unlock()
	for _, n := range e.notes.got {
		if n.GetUserId() != "bob" {
			t.Fatalf("alert for %q, want bob", n.GetUserId())
		}
	}
}

// TestOperatorClearsCooldownWhateverTheSpelling: a help desk operator who
// types "Bob" ends bob's cooldown, not an empty one of "Bob".
func TestOperatorClearsCooldownWhateverTheSpelling(t *testing.T) {
	e := newEnv(t, envOptions{policy: testPolicy})
	if got := e.decide(t, req("bob", "deny-me", "d-0", t0)); got.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY {
		t.Fatalf("setup: %v", got.GetOutcome())
	}
	got, err := e.dc.ClearCooldown(context.Background(), &decisionv1.ClearCooldownRequest{UserId: " Bob", Reason: "user called the help desk"})
	if err != nil || !got.GetCleared() {
		t.Fatalf("ClearCooldown( Bob) = %v, %v; want bob's cooldown cleared", got, err)
	}
	if r := e.decide(t, req("bob", "mail", "m-1", t0.Add(time.Minute))); r.GetOutcome() != decisionv1.Outcome_OUTCOME_ALLOW {
		t.Fatalf("after clearing: %v %v", r.GetOutcome(), r.GetReasons())
	}
}

// TestGetRiskFindsTheUserWhateverTheSpelling: a risk consumer asking for
// "Bob" reads the state Decide built for bob.
func TestGetRiskFindsTheUserWhateverTheSpelling(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.decide(t, req("bob", "vpn", "r-0", t0))
	e.decide(t, req("bob", "vpn", "r-1", t0.Add(time.Minute)))
	for _, user := range []string{"Bob", "ＢＯＢ"} {
		risk, err := e.scoring.GetRisk(context.Background(), &scoringv1.GetRiskRequest{UserId: user, Time: timestamppb.New(t0.Add(2 * time.Minute))})
		if err != nil {
			t.Fatal(err)
		}
		var attempts int32
		for _, w := range risk.GetAssessment().GetWindows() {
			if w.GetWindow().AsDuration() == 10*time.Minute {
				attempts = w.GetAttempts()
			}
		}
		if attempts != 2 {
			t.Fatalf("GetRisk(%q): %d attempts in 10m, want bob's 2", user, attempts)
		}
	}
}

// TestWhiteSpaceUserIDIsInvalid: an id of white space only has no
// canonical form; it is refused, not counted as the user "".
func TestWhiteSpaceUserIDIsInvalid(t *testing.T) {
	e := newEnv(t, envOptions{})
	_, err := e.dc.Decide(context.Background(), req(" \u3000 ", "vpn", "w-0", t0))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Decide with a white-space user id: %v, want InvalidArgument", err)
	}
}

// TestAuditRecordKeepsTheRawUserID: the record is stored under the
// canonical id and says how the caller spelled it.
func TestAuditRecordKeepsTheRawUserID(t *testing.T) {
	e := newEnv(t, envOptions{})
	spelled := e.decide(t, req("Bob@Example.COM", "vpn", "a-1", t0))
	plain := e.decide(t, req("bob@example.com", "vpn", "a-2", t0.Add(time.Minute)))
	rec := e.record(t, spelled.GetDecisionId())
	if rec.GetRawUserId() != "Bob@Example.COM" || rec.GetRequest().GetUserId() != "bob@example.com" {
		t.Fatalf("record: raw_user_id %q, request.user_id %q", rec.GetRawUserId(), rec.GetRequest().GetUserId())
	}
	if rec := e.record(t, plain.GetDecisionId()); rec.GetRawUserId() != "" {
		t.Fatalf("raw_user_id %q for an id sent in canonical form", rec.GetRawUserId())
	}
	raws := map[string]string{}
	for _, r := range e.list(t, "BOB@EXAMPLE.COM") {
		raws[r.GetDecisionId()] = r.GetRawUserId()
	}
	if len(raws) != 2 || raws[spelled.GetDecisionId()] != "Bob@Example.COM" || raws[plain.GetDecisionId()] != "" {
		t.Fatalf("ListDecisions(BOB@EXAMPLE.COM): raw ids by decision %v", raws)
	}
	// A retry of the attempt in another spelling is the same attempt.
	again := e.decide(t, req("BOB@example.com", "vpn", "a-1", t0))
	if !again.GetReplayed() || again.GetDecisionId() != spelled.GetDecisionId() {
		t.Fatalf("retry in another spelling: replayed %v, decision %s, want %s", again.GetReplayed(), again.GetDecisionId(), spelled.GetDecisionId())
	}
}
