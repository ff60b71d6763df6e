package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
)

// TestReplayUserIDRule: replay counts users by serve's rule, fold unless
// --user-id-rule or --user-id-rule-tenants say otherwise.
func TestReplayUserIDRule(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)
	var log strings.Builder
	for i, user := range []string{"bob", "Bob", "BOB", "bOb", "ｂｏｂ"} {
		fmt.Fprintf(&log, `{"uuid":"p%d","published":%q,"eventType":"system.push.send_factor_verify_push","actor":{"type":"User","alternateId":%q},"outcome":{"result":"SUCCESS"}}`+"\n",
			i, t0.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), user)
	}
	tests := []struct {
		name  string
		args  []string
		users string
		deny  bool
	}{
		{"default fold", nil, "1 users", true},
		{"exact", []string{"--user-id-rule=exact"}, "5 users", false},
		{"exact for the tenant", []string{"--tenant=acme", "--user-id-rule-tenants=acme=exact"}, "5 users", false},
		{"exact for another tenant", []string{"--tenant=acme", "--user-id-rule-tenants=globex=exact"}, "1 users", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runReplay(t, log.String(), append([]string{"--format=okta", "--report", "-"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if !strings.Contains(out, tt.users) || strings.Contains(out, "burst-deny") != tt.deny {
				t.Fatalf("want %s, deny %v:\n%s", tt.users, tt.deny, out)
			}
		})
	}
	if code, _, errOut := runReplay(t, log.String(), "--format=okta", "--user-id-rule=lower", "-"); code != 2 || !strings.Contains(errOut, "user-id-rule") {
		t.Fatalf("an unknown rule: exit %d: %s", code, errOut)
	}
}

func TestExplainShowsTheSpellingSent(t *testing.T) {
	rec := &decisionv1.DecisionRecord{DecisionId: "d1", RawUserId: "Bob@Example.COM",
		Request:  &decisionv1.DecideRequest{UserId: "bob@example.com", Tenant: "acme"},
		Response: &decisionv1.DecideResponse{Outcome: decisionv1.Outcome_OUTCOME_ALLOW}}
	var b bytes.Buffer
	writeExplanation(&b, rec)
	if want := `bob@example.com (sent as "Bob@Example.COM") (tenant acme)`; !strings.Contains(b.String(), want) {
		t.Fatalf("lacks %q:\n%s", want, b.String())
	}
}
