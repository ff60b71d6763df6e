package userid

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const aliasYAML = `
people:
  - id: alice@example.com
    okta: Alice.Smith@Example.com
    entra: 6f1c2d3e-0000-4000-8000-000000000001
    duo: asmith
    auth0: "auth0|64f0a1"
  - id: bob@example.com
    tenant: acme
    duo: bob
`

func TestAliasesJoinOnePersonsIDs(t *testing.T) {
	a, err := ParseAliases(strings.NewReader(aliasYAML))
	if err != nil {
		t.Fatal(err)
	}
	r := NewRules(Fold, map[string]Rule{"exacting": Exact}).WithAliases(a)
	for _, id := range []string{"alice@example.com", "ALICE.SMITH@example.com", "asmith", "AUTH0|64f0a1", "6F1C2D3E-0000-4000-8000-000000000001"} {
		if got := r.Canonical("any", id); got != "alice@example.com" {
			t.Errorf("Canonical(%q) = %q, want alice@example.com", id, got)
		}
	}
	// A tenant-scoped entry holds in its tenant only.
	if got := r.Canonical("acme", "Bob"); got != "bob@example.com" {
		t.Errorf("acme bob = %q", got)
	}
	if got := r.Canonical("globex", "Bob"); got != "bob" {
		t.Errorf("globex bob = %q", got)
	}
	p, ok := a.Lookup("t", "alice@example.com")
	if !ok || p.At("okta") != "Alice.Smith@Example.com" || p.At("duo") != "asmith" || p.At("auth0") != "auth0|64f0a1" || p.At("nope") != "" {
		t.Fatalf("Lookup = %+v %v", p, ok)
	}
	// Unknown ids are left to the rule.
	if got := r.Canonical("exacting", " Carol "); got != "Carol" {
		t.Errorf("exact carol = %q", got)
	}
	var none *Aliases
	if _, ok := none.Lookup("t", "alice"); ok || none.Len() != 0 {
		t.Fatal("a nil map maps something")
	}
}

// TestAliasFileRefusesAnIDOfTwoPeople: an attacker who can edit one entry
// (or an operator's typo) must not join a victim's risk to their own.
func TestAliasFileRefusesAnIDOfTwoPeople(t *testing.T) {
	for name, y := range map[string]string{
		"shared id":    "people:\n  - id: a\n    duo: x\n  - id: b\n    okta: X\n",
		"missing id":   "people:\n  - okta: x\n",
		"unknown key":  "people:\n  - id: a\n    github: x\n",
		"control char": "people:\n  - id: \"a\\u0007\"\n",
	} {
		if _, err := ParseAliases(strings.NewReader(y)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "aliases.yaml")
	if err := os.WriteFile(path, []byte(aliasYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.AliasFile = path
	r, err := c.Rules()
	if err != nil || r.Aliases().Len() != 7 {
		t.Fatalf("Rules = %v, %v", r, err)
	}
	c.AliasFile = filepath.Join(dir, "missing.yaml")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "user-aliases") {
		t.Fatalf("Validate = %v", err)
	}
}
