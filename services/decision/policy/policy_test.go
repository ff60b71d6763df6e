package policy_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	defaultpolicy "github.com/pushbackhq/pushback/deploy/policy"
	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	"github.com/pushbackhq/pushback/services/decision/policy"
)

func mustParse(t testing.TB, src string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse(strings.NewReader(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func defaultPolicy(t testing.TB) *policy.Policy {
	t.Helper()
	p, err := policy.Parse(bytes.NewReader(defaultpolicy.Default))
	if err != nil {
		t.Fatalf("default policy: %v", err)
	}
	return p
}

// in builds an input with push counts per window.
func in(app string, p5, p10 int, signals ...string) policy.Input {
	sig := map[string]int{}
	for _, s := range signals {
		sig[s] = 30
	}
	return policy.Input{
		User: "alice", App: app, Factor: "FACTOR_PUSH", Signals: sig,
		Pushes: map[string]int{"1m": 1, "5m": p5, "10m": p10, "1h": p10},
		Denied: map[string]int{"1m": 0, "5m": 0, "10m": 0, "1h": 0},
		Client: map[string]any{"ip": "198.51.100.7", "country": "US", "city": "", "asn": int64(0), "device_id": "d1"},
	}
}

func TestDefaultPolicy(t *testing.T) {
	p := defaultPolicy(t)
	const (
		allow = decisionv1.Outcome_OUTCOME_ALLOW
		nm    = decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH
		pr    = decisionv1.Outcome_OUTCOME_REQUIRE_PHISHING_RESISTANT
		deny  = decisionv1.Outcome_OUTCOME_DENY
	)
	withGroups := func(i policy.Input, g ...string) policy.Input { i.Groups = g; return i }
	withFactor := func(i policy.Input, f string) policy.Input { i.Factor = f; return i }
	withScore := func(i policy.Input, s int) policy.Input { i.Score = s; return i }
	withWeight := func(i policy.Input, code string, w int) policy.Input { i.Signals[code] = w; return i }
	tests := []struct {
		name     string
		in       policy.Input
		want     decisionv1.Outcome
		matched  []string
		cooldown bool
		tier     string
	}{
		{"quiet", in("vpn", 1, 1), allow, nil, false, "standard"},
		{"two pushes", in("vpn", 2, 2), allow, nil, false, "standard"},
		{"three in 5m", in("vpn", 3, 3, "PUSH_BURST"), nm, []string{"burst-number-match"}, false, "standard"},
		{"four in 10m", in("vpn", 4, 4, "PUSH_BURST"), nm, []string{"burst-number-match"}, false, "standard"},
		{"five in 10m", in("vpn", 3, 5, "PUSH_BURST"), deny, []string{"burst-number-match", "burst-deny"}, true, "standard"},
		{"five in 10m spread out", in("vpn", 1, 5, "PUSH_BURST"), deny, []string{"burst-deny"}, true, "standard"},
		{"fraud", in("vpn", 1, 1, "FRAUD_REPORTED"), deny, []string{"fraud-reported"}, true, "standard"},
		{"streak", in("vpn", 1, 1, "DENIAL_STREAK"), nm, []string{"denial-streak"}, false, "standard"},
		{"travel", in("vpn", 1, 1, "IMPOSSIBLE_TRAVEL"), pr, []string{"impossible-travel"}, false, "standard"},
		{"low-confidence travel", withWeight(in("vpn", 1, 1), "IMPOSSIBLE_TRAVEL", 20), allow, nil, false, "standard"},
		{"sensitive app behind a VPN", withWeight(withWeight(in("payroll", 1, 1), "ANONYMIZER", 0), "NEW_ASN", 5), allow, nil, false, "sensitive"},
		{"travel with webauthn", withFactor(in("vpn", 1, 1, "IMPOSSIBLE_TRAVEL"), "FACTOR_WEBAUTHN"), allow, nil, false, "standard"},
		{"spray", in("vpn", 1, 1, "PUSH_SPRAY"), pr, []string{"push-spray"}, false, "standard"},
		{"elevated score", withScore(in("vpn", 1, 1), 60), nm, []string{"elevated-score"}, false, "standard"},
		{"sensitive app without signal", in("payroll", 1, 1), allow, nil, false, "sensitive"},
		{"sensitive app with a new device", in("payroll", 1, 1, "NEW_DEVICE"), pr, []string{"sensitive-app-step-up"}, false, "sensitive"},
		{"standard app with a new device", in("vpn", 1, 1, "NEW_DEVICE"), allow, nil, false, "standard"},
		{"low tier", in("wiki", 1, 1), allow, nil, false, "low"},
		{"admin from the request", withGroups(in("vpn", 1, 1), "admins"), pr, []string{"privileged-users"}, false, "standard"},
		{"finance from the request", withGroups(in("vpn", 1, 1), "staff", "finance"), pr, []string{"privileged-users"}, false, "standard"},
		{"admin on a smart card", withFactor(withGroups(in("vpn", 1, 1), "admins"), "FACTOR_SMART_CARD"), allow, nil, false, "standard"},
		{"deny beats step-up", withGroups(in("payroll", 3, 6, "PUSH_BURST"), "admins"), deny,
			[]string{"burst-number-match", "burst-deny", "sensitive-app-step-up", "privileged-users"}, true, "sensitive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := p.Evaluate(tc.in)
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if res.Outcome != tc.want || !slices.Equal(res.Matched, tc.matched) || res.Cooldown != tc.cooldown || res.Tier.Name != tc.tier {
				t.Fatalf("got %v %v cooldown=%v tier=%s, want %v %v cooldown=%v tier=%s",
					res.Outcome, res.Matched, res.Cooldown, res.Tier.Name, tc.want, tc.matched, tc.cooldown, tc.tier)
			}
			if len(res.Reasons) != len(res.Matched) {
				t.Fatalf("reasons %v do not pair with rules %v", res.Reasons, res.Matched)
			}
		})
	}
}

func TestGroupsFromThePolicyFile(t *testing.T) {
	p := mustParse(t, `
groups:
  admins: [root, carol]
rules:
  - name: admins
    when: '"admins" in groups'
    outcome: REQUIRE_PHISHING_RESISTANT
`)
	for _, tc := range []struct {
		user string
		want decisionv1.Outcome
	}{
		{"carol", decisionv1.Outcome_OUTCOME_REQUIRE_PHISHING_RESISTANT},
		{"dave", decisionv1.Outcome_OUTCOME_ALLOW},
	} {
		i := in("vpn", 1, 1)
		i.User = tc.user
		res, err := p.Evaluate(i)
		if err != nil || res.Outcome != tc.want {
			t.Errorf("%s: %v %v, want %v", tc.user, res.Outcome, err, tc.want)
		}
	}
	if got := p.GroupsOf("carol", []string{"staff", "admins"}); !slices.Equal(got, []string{"staff", "admins"}) {
		t.Errorf("GroupsOf duplicated a group: %v", got)
	}
}

func TestStrictestWins(t *testing.T) {
	order := []decisionv1.Outcome{
		decisionv1.Outcome_OUTCOME_ALLOW, decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH,
		decisionv1.Outcome_OUTCOME_REQUIRE_PHISHING_RESISTANT, decisionv1.Outcome_OUTCOME_DENY,
	}
	for i, a := range order {
		for j, b := range order {
			if got := policy.Stricter(a, b); got != (i > j) {
				t.Errorf("Stricter(%v, %v) = %v", a, b, got)
			}
		}
	}
}

func TestRuleErrorDoesNotMatch(t *testing.T) {
	p := mustParse(t, `
rules:
  - name: missing-window
    when: pushes["2m"] >= 1
    outcome: DENY
  - name: always
    when: "true"
    outcome: REQUIRE_NUMBER_MATCH
`)
	res, err := p.Evaluate(in("vpn", 1, 1))
	if err == nil || !strings.Contains(err.Error(), "missing-window") {
		t.Fatalf("error %v, want one naming the failing rule", err)
	}
	if res.Outcome != decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH || !slices.Equal(res.Matched, []string{"always"}) {
		t.Fatalf("a failing rule changed the outcome: %v %v", res.Outcome, res.Matched)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		rule  string
		field string
		line  int
		col   int
		msg   string
	}{
		{"undeclared variable", `
version: t
rules:
  - name: ok
    when: score > 10
    outcome: ALLOW
  - name: typo
    when: scroe > 10
    outcome: DENY
`, "typo", "rules[1].when", 8, 1, "undeclared reference to 'scroe'"},
		{"syntax error in a block", `
rules:
  - name: broken
    when: |
      score > 10 &&
        pushes["5m"] >= )
    outcome: DENY
`, "broken", "rules[0].when", 6, 19, "Syntax error"},
		{"not a bool", `
rules:
  - name: number
    when: score + 1
    outcome: DENY
`, "number", "rules[0].when", 3, 0, "want bool"},
		{"bad outcome", `
rules:
  - name: shout
    when: "true"
    outcome: BLOCK
`, "shout", "rules[0].outcome", 3, 0, `"BLOCK" is not one of`},
		{"missing name", `
rules:
  - when: "true"
    outcome: DENY
`, "", "rules[0].name", 3, 0, "is required"},
		{"duplicate name", `
rules:
  - name: a
    when: "true"
    outcome: DENY
  - name: a
    when: "false"
    outcome: DENY
`, "a", "rules[1].name", 6, 0, "earlier rule"},
		{"unknown field", `
rules:
  - name: a
    wehn: "true"
    outcome: DENY
`, "", "file", 0, 0, "field wehn not found"},
		{"app in unknown tier", `
apps:
  vpn: secret
`, "", "apps.vpn", 0, 0, `tier "secret" is not defined`},
		{"bad failure mode", `
tiers:
  standard:
    failure_mode: maybe
`, "", "tiers.standard.failure_mode", 0, 0, "not one of open"},
		{"cooldown max below base", `
cooldown:
  base: 1h
  max: 10m
`, "", "cooldown.max", 0, 0, "shorter than cooldown.base"},
		{"cooldown factor", `
cooldown:
  factor: 100
`, "", "cooldown.factor", 0, 0, "between 1 and 10"},
		{"empty", ``, "", "file", 0, 0, "is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := policy.Parse(strings.NewReader(tc.src))
			var pe *policy.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v, want a *policy.Error", err)
			}
			if pe.Rule != tc.rule || pe.Field != tc.field || pe.Line != tc.line || pe.Column != tc.col || !strings.Contains(pe.Msg, tc.msg) {
				t.Fatalf("got rule=%q field=%q line=%d col=%d msg=%q\nwant rule=%q field=%q line=%d col=%d msg~%q",
					pe.Rule, pe.Field, pe.Line, pe.Column, pe.Msg, tc.rule, tc.field, tc.line, tc.col, tc.msg)
			}
			if tc.rule != "" && !strings.Contains(err.Error(), `rule "`+tc.rule+`"`) {
				t.Fatalf("message %q does not name the rule", err)
			}
		})
	}
}

func TestVersionDefaultsToContentHash(t *testing.T) {
	a := mustParse(t, "rules: []\n")
	b := mustParse(t, "rules: []\n# changed\n")
	if !strings.HasPrefix(a.Version, "sha256:") || a.Version == b.Version {
		t.Fatalf("versions %q and %q", a.Version, b.Version)
	}
}

func BenchmarkEvaluateDefault(b *testing.B) {
	p := defaultPolicy(b)
	i := in("payroll", 3, 4, "PUSH_BURST", "NEW_DEVICE")
	i.Groups = []string{"staff"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Evaluate(i); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCooldownEscalatesToTheCap(t *testing.T) {
	c := policy.Cooldown{Base: 15 * time.Minute, Max: 2 * time.Hour, Factor: 2}
	for level, want := range map[int]time.Duration{1: 15 * time.Minute, 2: 30 * time.Minute, 3: time.Hour, 4: 2 * time.Hour, 9: 2 * time.Hour} {
		if got := c.At(level); got != want {
			t.Errorf("level %d: %s, want %s", level, got, want)
		}
	}
}

// TestGroupMembersMatchEverySpelling: requests carry canonical user ids,
// so a member listed as Root@Example.com must still hold root@example.com
// to its group, or canonicalisation would take an admin out of "admins".
func TestGroupMembersMatchEverySpelling(t *testing.T) {
	p := mustParse(t, `
groups:
  admins: [Root@Example.com, ＯＰＳ]
`)
	for _, user := range []string{"root@example.com", "ROOT@example.com", "ops"} {
		if got := p.GroupsOf(user, nil); !slices.Equal(got, []string{"admins"}) {
			t.Errorf("GroupsOf(%q) = %v, want [admins]", user, got)
		}
	}
	if got := p.GroupsOf("dave", nil); len(got) != 0 {
		t.Errorf("GroupsOf(dave) = %v", got)
	}
}
