package policy_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	defaultpolicy "github.com/pushbackhq/pushback/deploy/policy"
	"github.com/pushbackhq/pushback/services/decision/policy"
)

func respondIn(signals map[string]int, conf map[string]float64, fresh []string, event map[string]any) policy.RespondInput {
	return policy.RespondInput{Input: policy.Input{User: "alice", Signals: signals}, Tenant: "acme", Confidence: conf, Fresh: fresh, Event: event}
}

func matched(t *testing.T, p *policy.Policy, in policy.RespondInput) []string {
	t.Helper()
	ms, err := p.Respond.Evaluate(in)
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Rule)
	}
	return out
}

func TestDefaultResponseRules(t *testing.T) {
	p, err := policy.Parse(bytes.NewReader(defaultpolicy.Default))
	if err != nil {
		t.Fatal(err)
	}
	approved := map[string]any{"type": "PUSH_APPROVED", "success": true, "source": "okta"}
	denied := map[string]any{"type": "PUSH_DENIED", "success": false, "source": "okta"}
	for name, c := range map[string]struct {
		in   policy.RespondInput
		want []string
	}{
		"fatigue success from an attacker's burst": {
			respondIn(map[string]int{"APPROVAL_AFTER_BURST": 90, "PUSH_BURST": 60}, map[string]float64{"APPROVAL_AFTER_BURST": 1, "PUSH_BURST": 1}, []string{"APPROVAL_AFTER_BURST"}, approved),
			[]string{"fatigue-success"}},
		"the user's own retries": {
			respondIn(map[string]int{"APPROVAL_AFTER_BURST": 20}, map[string]float64{"APPROVAL_AFTER_BURST": 0.3}, []string{"APPROVAL_AFTER_BURST"}, approved),
			nil},
		"a success that lingers in the risk is not acted on again": {
			respondIn(map[string]int{"APPROVAL_AFTER_BURST": 60}, map[string]float64{"APPROVAL_AFTER_BURST": 1}, nil, map[string]any{"type": "LOGIN_SUCCEEDED", "success": true}),
			nil},
		"fraud report": {
			respondIn(map[string]int{"FRAUD_REPORTED": 80}, map[string]float64{"FRAUD_REPORTED": 1}, []string{"FRAUD_REPORTED"}, map[string]any{"type": "FRAUD_REPORTED", "success": false}),
			[]string{"fraud-reported"}},
		"travel success": {
			respondIn(map[string]int{"IMPOSSIBLE_TRAVEL": 70}, map[string]float64{"IMPOSSIBLE_TRAVEL": 0.9}, []string{"IMPOSSIBLE_TRAVEL"}, map[string]any{"type": "LOGIN_SUCCEEDED", "success": true}),
			[]string{"travel-success"}},
		"low-confidence travel": {
			respondIn(map[string]int{"IMPOSSIBLE_TRAVEL": 20}, map[string]float64{"IMPOSSIBLE_TRAVEL": 0.4}, []string{"IMPOSSIBLE_TRAVEL"}, map[string]any{"type": "LOGIN_SUCCEEDED", "success": true}),
			nil},
		"burst without success": {
			respondIn(map[string]int{"PUSH_BURST": 60}, map[string]float64{"PUSH_BURST": 1}, nil, denied),
			[]string{"push-burst"}},
		"nothing": {respondIn(nil, nil, nil, map[string]any{"type": "LOGIN_SUCCEEDED", "success": true}), nil},
	} {
		if got := matched(t, p, c.in); !slices.Equal(got, c.want) {
			t.Errorf("%s: matched %v, want %v", name, got, c.want)
		}
	}
	ms, _ := p.Respond.Evaluate(respondIn(map[string]int{"APPROVAL_AFTER_BURST": 90}, map[string]float64{"APPROVAL_AFTER_BURST": 1}, []string{"APPROVAL_AFTER_BURST"}, approved))
	if len(ms) != 1 || !ms[0].Alert || !slices.Equal(ms[0].Actions, nil) && string(ms[0].Actions[0]) != "revoke_sessions" || ms[0].DryRun {
		t.Fatalf("fatigue-success match %+v: want alert and revoke_sessions, not dry", ms)
	}
}

func TestResponseRuleDryRun(t *testing.T) {
	p, err := policy.Parse(strings.NewReader(`
respond:
  rules:
    - {name: live, when: 'score > 10', actions: [revoke_sessions]}
    - {name: trial, when: 'score > 10', actions: [alert, set_user_status], user_status: disabled, dry_run: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := p.Respond.Evaluate(policy.RespondInput{Input: policy.Input{Score: 50}})
	if len(ms) != 2 || ms[0].DryRun || !ms[1].DryRun || ms[1].UserStatus != "disabled" || ms[0].Alert || !ms[1].Alert {
		t.Fatalf("matches %+v", ms)
	}
	all, err := policy.Parse(strings.NewReader("respond:\n  dry_run: true\n  rules:\n    - {name: live, when: 'score > 10', actions: [revoke_sessions]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if ms, _ := all.Respond.Evaluate(policy.RespondInput{Input: policy.Input{Score: 50}}); len(ms) != 1 || !ms[0].DryRun {
		t.Fatalf("section dry run: %+v", ms)
	}
}

func TestResponseRuleCompileErrors(t *testing.T) {
	for name, c := range map[string]struct{ yaml, want string }{
		"no actions":       {"respond:\n  rules:\n    - {name: a, when: 'true'}\n", "respond.rules[0].actions"},
		"unknown action":   {"respond:\n  rules:\n    - {name: a, when: 'true', actions: [delete_user]}\n", `"delete_user" is not one of alert`},
		"twice":            {"respond:\n  rules:\n    - {name: a, when: 'true', actions: [revoke_sessions, revoke_sessions]}\n", "listed twice"},
		"no status":        {"respond:\n  rules:\n    - {name: a, when: 'true', actions: [set_user_status]}\n", "user_status"},
		"bad status":       {"respond:\n  rules:\n    - {name: a, when: 'true', actions: [set_user_status], user_status: bypass}\n", `"bypass" is not disabled`},
		"stray status":     {"respond:\n  rules:\n    - {name: a, when: 'true', actions: [alert], user_status: disabled}\n", "only for set_user_status"},
		"duplicate name":   {"respond:\n  rules:\n    - {name: a, when: 'true', actions: [alert]}\n    - {name: a, when: 'true', actions: [alert]}\n", "earlier response rule"},
		"not bool":         {"respond:\n  rules:\n    - {name: a, when: 'score', actions: [alert]}\n", "want bool"},
		"unknown variable": {"respond:\n  rules:\n    - name: a\n      actions: [alert]\n      when: 'nope > 1'\n", "line 5"},
		"unknown field":    {"respond:\n  rules:\n    - {name: a, when: 'true', actions: [alert], severity: high}\n", "severity"},
		"credential change without claims": {"respond:\n  rules:\n    - {name: a, when: 'true', actions: [caep_credential_change]}\n",
			"is required by caep_credential_change"},
		"stray credential change": {"respond:\n  rules:\n    - {name: a, when: 'true', actions: [alert], credential_change: {credential_type: password, change_type: revoke}}\n",
			"only for caep_credential_change"},
		"unknown change type": {"respond:\n  rules:\n    - {name: a, when: 'true', actions: [caep_credential_change], credential_change: {credential_type: password, change_type: reset}}\n",
			"respond.rules[0].credential_change.change_type"},
		"credential type spelled oddly": {"respond:\n  rules:\n    - {name: a, when: 'true', actions: [caep_credential_change], credential_change: {credential_type: 'Pass Word', change_type: revoke}}\n",
			"respond.rules[0].credential_change.credential_type"},
		"risk level without claims": {"respond:\n  rules:\n    - {name: a, when: 'true', actions: [caep_risk_level_change]}\n",
			"is required by caep_risk_level_change"},
		"risk level in lower case": {"respond:\n  rules:\n    - {name: a, when: 'true', actions: [caep_risk_level_change], risk_level_change: {current_level: high}}\n",
			"respond.rules[0].risk_level_change.current_level"},
		"unknown previous risk level": {"respond:\n  rules:\n    - {name: a, when: 'true', actions: [caep_risk_level_change], risk_level_change: {current_level: HIGH, previous_level: NONE}}\n",
			"respond.rules[0].risk_level_change.previous_level"},
		"risk reason with a control character": {"respond:\n  rules:\n    - {name: a, when: 'true', actions: [caep_risk_level_change], risk_level_change: {current_level: HIGH, risk_reason: \"a\\u0007b\"}}\n",
			"respond.rules[0].risk_level_change.risk_reason"},
		"unknown claim": {"respond:\n  rules:\n    - {name: a, when: 'true', actions: [caep_risk_level_change], risk_level_change: {current_level: HIGH, principal: DEVICE}}\n",
			"principal"},
	} {
		_, err := policy.Parse(strings.NewReader(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, c.want)
		}
	}
}

// TestResponseRuleCAEPSignals: a rule asks for CAEP credential-change and
// risk-level-change events, and its matches carry their claims.
func TestResponseRuleCAEPSignals(t *testing.T) {
	p, err := policy.Parse(strings.NewReader(`
respond:
  rules:
    - name: fatigue-success
      when: '"APPROVAL_AFTER_BURST" in fresh'
      actions: [alert, revoke_sessions, caep_credential_change, caep_risk_level_change]
      credential_change: {credential_type: password, change_type: revoke}
      risk_level_change: {current_level: HIGH, previous_level: LOW, risk_reason: MFA_FATIGUE_SUCCEEDED}
`))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := p.Respond.Evaluate(respondIn(map[string]int{"APPROVAL_AFTER_BURST": 60}, nil, []string{"APPROVAL_AFTER_BURST"}, nil))
	if err != nil || len(ms) != 1 {
		t.Fatalf("matches %+v: %v", ms, err)
	}
	m := ms[0]
	if len(m.Actions) != 3 || m.CredentialChange == nil || *m.CredentialChange != (policy.CredentialChange{CredentialType: "password", ChangeType: "revoke"}) ||
		m.RiskLevelChange == nil || *m.RiskLevelChange != (policy.RiskLevelChange{CurrentLevel: "HIGH", PreviousLevel: "LOW", RiskReason: "MFA_FATIGUE_SUCCEEDED"}) {
		t.Fatalf("match %+v", m)
	}
}
