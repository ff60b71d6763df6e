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
	} {
		_, err := policy.Parse(strings.NewReader(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, c.want)
		}
	}
}
