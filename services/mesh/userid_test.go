package mesh_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	"github.com/pushbackhq/pushback/services/mesh"
)

// oktaPush is an Okta System Log record of a push sent to user.
func oktaPush(id, user string, at time.Time) string {
	return fmt.Sprintf(`{"uuid":%q,"published":%q,"eventType":"system.push.send_factor_verify_push",`+
		`"actor":{"id":"00u1bob","type":"User","alternateId":%q},"client":{"ipAddress":"198.51.100.7"},"outcome":{"result":"SUCCESS"}}`,
		id, at.Format(time.RFC3339Nano), user)
}

func postOkta(t *testing.T, m *running, tenant string, records ...string) {
	t.Helper()
	url := "http://" + m.httpAddr + "/v1/ingest/okta"
	if tenant != "" {
		url += "?tenant=" + tenant
	}
	resp, err := http.Post(url, "application/json", strings.NewReader(strings.Join(records, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST okta: %d %s", resp.StatusCode, body)
	}
}

// TestIntakeAndDecideMeetOnOneUser: Okta logs the user as Bob@Example.com,
// the hook asks about bob@example.com. Both are one user: the pushes Okta
// logged count toward the burst the hook's attempt meets, and the
// user's events are found under the spelling Decide uses.
func TestIntakeAndDecideMeetOnOneUser(t *testing.T) {
	m := start(t, mesh.Default())
	ctx := context.Background()
	base := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Second)
	var records []string
	for i := range 5 {
		records = append(records, oktaPush(fmt.Sprint("okta-push-", i), "Bob@Example.com", base.Add(time.Duration(i)*30*time.Second)))
	}
	postOkta(t, m, "", records...)

	dc := decisionv1.NewDecisionServiceClient(m.conn)
	resp, err := dc.Decide(ctx, decideReq("bob@example.com", "hook-1", base.Add(3*time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY || !hasSignal(resp.GetRisk(), "PUSH_BURST") {
		t.Fatalf("the sixth push (five logged by Okta as Bob@Example.com): %v %v, want DENY on PUSH_BURST; %v", resp.GetOutcome(), resp.GetReasons(), resp.GetRisk())
	}
	// Someone else is not affected.
	other, err := dc.Decide(ctx, decideReq("carol@example.com", "hook-2", base.Add(3*time.Minute)))
	if err != nil || other.GetOutcome() != decisionv1.Outcome_OUTCOME_ALLOW {
		t.Fatalf("another user: %v, %v", other.GetOutcome(), err)
	}
	events, err := intakev1.NewIntakeServiceClient(m.conn).ListEvents(ctx, &intakev1.ListEventsRequest{UserId: "BOB@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if len(events.GetEvents()) != 5 {
		t.Fatalf("ListEvents(BOB@example.com) = %d events, want the 5 Okta logged", len(events.GetEvents()))
	}
	for _, e := range events.GetEvents() {
		if e.GetUserId() != "bob@example.com" || e.GetRawUserId() != "Bob@Example.com" {
			t.Fatalf("stored event: user %q raw %q", e.GetUserId(), e.GetRawUserId())
		}
	}
}

// TestPerTenantExactRuleKeepsCaseSensitiveIDsApart: with
// --user-id-rule-tenants=acme=exact, acme's Bob and bob are two users (its
// identity provider says so), while the default tenant folds them.
func TestPerTenantExactRuleKeepsCaseSensitiveIDsApart(t *testing.T) {
	cfg, err := mesh.Load([]string{"--user-id-rule-tenants=acme=exact"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	m := start(t, cfg)
	dc := decisionv1.NewDecisionServiceClient(m.conn)
	base := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Second)
	for _, tenant := range []string{"acme", ""} {
		var last *decisionv1.DecideResponse
		for i := range 5 {
			r := decideReq([]string{"Bob", "bob"}[i%2], fmt.Sprintf("%s-%d", tenant, i), base.Add(time.Duration(i)*time.Minute))
			r.Tenant = tenant
			if last, err = dc.Decide(context.Background(), r); err != nil {
				t.Fatal(err)
			}
		}
		denied := last.GetOutcome() == decisionv1.Outcome_OUTCOME_DENY
		if tenant == "acme" && denied {
			t.Fatalf("acme (exact): Bob's and bob's pushes were counted together: %v", last.GetReasons())
		}
		if tenant == "" && !denied {
			t.Fatalf("default tenant (fold): the fifth push to Bob/bob is %v, want DENY", last.GetOutcome())
		}
	}
	if _, err := mesh.Load([]string{"--user-id-rule=lower"}, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "user-id-rule") {
		t.Fatalf("an unknown rule: %v", err)
	}
	env := map[string]string{"PUSHBACK_USER_ID_RULE": "exact"}
	cfg, err = mesh.Load(nil, func(k string) string { return env[k] })
	if err != nil || cfg.UserIDs.Rule != "exact" {
		t.Fatalf("from the environment: %+v, %v", cfg.UserIDs, err)
	}
}
