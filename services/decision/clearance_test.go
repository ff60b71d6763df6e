package decision_test

import (
	"context"
	"strings"
	"testing"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	"github.com/pushbackhq/pushback/pkg/auth"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestCooldownClearanceIsAudited: clearing a cooldown stores who (the name
// the operator gave and the fingerprint of the credential the call
// presented, which the caller cannot choose), why and when; GetCooldown
// reads the cooldown and the record in any spelling of the user, without
// counting an attempt.
func TestCooldownClearanceIsAudited(t *testing.T) {
	e := newEnv(t, envOptions{policy: testPolicy})
	ctx := context.Background()
	e.decide(t, req("dana", "deny-me", "d-0", t0))
	before, err := e.dc.GetCooldown(ctx, &decisionv1.GetCooldownRequest{UserId: " DANA "})
	if err != nil || !before.GetActive() || before.GetUserId() != "dana" || before.GetUntil() == nil || len(before.GetClearances()) != 0 {
		t.Fatalf("GetCooldown before clearing = %v, %v; want dana's cooldown active", before, err)
	}
	const token = "operator-token-0123456789"
	octx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	got, err := e.dc.ClearCooldown(octx, &decisionv1.ClearCooldownRequest{UserId: "Dana", Reason: "verified by call-back <b>", Operator: " ana "})
	if err != nil || !got.GetCleared() {
		t.Fatalf("ClearCooldown = %v, %v", got, err)
	}
	c := got.GetClearance()
	if c.GetUserId() != "dana" || c.GetReason() != "verified by call-back <b>" || c.GetOperator() != "ana" ||
		c.GetCredential() != auth.Fingerprint(token) || !c.GetWasActive() || c.GetClearedAt() == nil {
		t.Fatalf("clearance = %v", c)
	}
	if c.GetCredential() == token || len(c.GetCredential()) > 32 {
		t.Fatalf("the audit record keeps the token itself: %q", c.GetCredential())
	}
	after, err := e.dc.GetCooldown(ctx, &decisionv1.GetCooldownRequest{UserId: "dana"})
	if err != nil || after.GetActive() || len(after.GetClearances()) != 1 {
		t.Fatalf("GetCooldown after clearing = %v, %v", after, err)
	}
	if r := after.GetClearances()[0]; r.GetReason() != c.GetReason() || r.GetOperator() != "ana" || r.GetCredential() != c.GetCredential() ||
		!r.GetClearedAt().AsTime().Equal(c.GetClearedAt().AsTime()) {
		t.Fatalf("stored clearance %v, want %v", r, c)
	}
	// Without a credential (the newcomer's mesh) the record says so.
	anon, err := e.dc.ClearCooldown(ctx, &decisionv1.ClearCooldownRequest{UserId: "dana", Reason: "again"})
	if err != nil || anon.GetCleared() || anon.GetClearance().GetCredential() != auth.NoCredential {
		t.Fatalf("ClearCooldown without a credential = %v, %v", anon, err)
	}
	list, err := e.dc.GetCooldown(ctx, &decisionv1.GetCooldownRequest{UserId: "dana"})
	// The test's clock stands still: both clearings share a millisecond,
	// and neither overwrites the other.
	if err != nil || len(list.GetClearances()) != 2 {
		t.Fatalf("clearances = %v, %v; want both", list, err)
	}
}

// TestClearanceReasonRefusesControlCharacters plays an operator calling
// ClearCooldown directly (not through the console, which checks the
// reason itself): a reason with terminal escapes, other control
// characters or bidirectional overrides is refused, naming the field, and
// nothing is cleared or recorded; line breaks and tabs are kept.
func TestClearanceReasonRefusesControlCharacters(t *testing.T) {
	e := newEnv(t, envOptions{policy: testPolicy})
	ctx := context.Background()
	e.decide(t, req("dana", "deny-me", "d-0", t0))
	for _, reason := range []string{"ok\x1b[2K\rforged", "nul\x00", "bell\a", "call-back \u202eeno", "ticket \u2066x", "nel\u0085"} {
		_, err := e.dc.ClearCooldown(ctx, &decisionv1.ClearCooldownRequest{UserId: "dana", Reason: reason})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "reason") {
			t.Fatalf("ClearCooldown with reason %q = %v, want InvalidArgument naming reason", reason, err)
		}
	}
	// The operator's name is one line: no Unicode line or paragraph
	// separator either (the contract's pattern refuses the others).
	for _, name := range []string{"ana\u2028cleared by bo", "ana\u2029"} {
		_, err := e.dc.ClearCooldown(ctx, &decisionv1.ClearCooldownRequest{UserId: "dana", Reason: "fine", Operator: name})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "operator") {
			t.Fatalf("ClearCooldown by operator %q = %v, want InvalidArgument naming operator", name, err)
		}
	}
	if cd, err := e.dc.GetCooldown(ctx, &decisionv1.GetCooldownRequest{UserId: "dana"}); err != nil || !cd.GetActive() || len(cd.GetClearances()) != 0 {
		t.Fatalf("after refused clearings: %v, %v; want the cooldown active, nothing recorded", cd, err)
	}
	got, err := e.dc.ClearCooldown(ctx, &decisionv1.ClearCooldownRequest{UserId: "dana", Reason: "verified\r\n\tticket 42"})
	if err != nil || got.GetClearance().GetReason() != "verified\r\n\tticket 42" {
		t.Fatalf("ClearCooldown with line breaks = %v, %v", got, err)
	}
}
