// Package userid turns the many spellings of one user id into one canonical
// form, so that every count Pushback keeps per user (bursts, cooldowns,
// travel, audit indexes) sees one user however the caller spelled it.
//
// An attacker who can choose how a user id is spelled (a RADIUS gate passes
// on what was typed; a directory matches "BOB" to bob) would otherwise get
// a fresh count per spelling. Decide, intake, scoring and replay all apply
// the same Rules, so a decision, the events the identity provider logged and
// a backtest meet on one user.
package userid

import (
	"fmt"
	"maps"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/validate"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Rule is how a tenant's user ids are canonicalised.
type Rule string

// The rules.
const (
	// Fold trims surrounding white space, applies Unicode NFKC (fullwidth
	// and other compatibility forms become their plain letters) and full
	// case folding: "Bob", " BOB ", "ｂｏｂ" are all "bob". An email address
	// is folded whole, local part included ("Bob@Example.COM" is
	// "bob@example.com"): no identity provider tells users apart by the
	// case of their address, and RFC 5321's case-sensitive local part is
	// not honoured by the mail systems they use either.
	Fold Rule = "fold"
	// Exact only trims surrounding white space, for identity providers
	// whose user ids are case-sensitive (two users may differ by case
	// alone). White space around an id is an artefact of the caller
	// (a template, an export), never part of an IdP's id.
	Exact Rule = "exact"
)

// Default is the rule of a tenant nobody configured.
const Default = Fold

// ParseRule returns the rule named s.
func ParseRule(s string) (Rule, error) {
	switch r := Rule(strings.TrimSpace(s)); r {
	case Fold, Exact:
		return r, nil
	}
	return "", fmt.Errorf("%q is not a user id rule (fold or exact)", s)
}

// Apply returns the canonical form of id under r. It is idempotent:
// applying it to its own result changes nothing. The result may be empty
// (an id of white space only) or longer than id (NFKC expands some
// characters); Check reports both.
func (r Rule) Apply(id string) string {
	if r == Exact {
		return strings.TrimFunc(id, unicode.IsSpace)
	}
	return fold(id)
}

// fold is the Fold rule. ASCII, by far the common case, needs no Unicode
// tables: NFKC leaves it as it is and folding it is lowering it, and an id
// already in canonical form is returned without allocating.
func fold(id string) string {
	ascii, upper := true, false
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
		upper = upper || ('A' <= c && c <= 'Z')
	}
	if ascii {
		// ASCII white space is at most ' ': most ids have none to trim.
		if id != "" && (id[0] <= ' ' || id[len(id)-1] <= ' ') {
			id = strings.TrimFunc(id, unicode.IsSpace)
		}
		if !upper {
			return id
		}
		return strings.ToLower(id)
	}
	// Folding may leave a string that is not in NFKC, and NFKC may turn a
	// character into white space (U+00A8 becomes a space and a combining
	// mark), so the steps run until nothing changes; two rounds are the
	// most any input has needed (the fuzz test checks the result is stable).
	// A Caser is made per call: the package keeps no state, and Fold's is
	// cheap to make.
	caser := cases.Fold()
	for range 4 {
		next := strings.TrimFunc(norm.NFKC.String(caser.String(norm.NFKC.String(strings.TrimFunc(id, unicode.IsSpace)))), unicode.IsSpace)
		if next == id {
			break
		}
		id = next
	}
	return id
}

// Rules maps tenants to rules: a default and per-tenant exceptions. A nil
// *Rules applies Default to every tenant. Rules are immutable and safe for
// concurrent use.
type Rules struct {
	def     Rule
	tenants map[string]Rule
	aliases *Aliases
}

// NewRules returns def for every tenant but those in tenants.
func NewRules(def Rule, tenants map[string]Rule) *Rules {
	return &Rules{def: def, tenants: maps.Clone(tenants)}
}

// For returns the rule of tenant.
func (r *Rules) For(tenant string) Rule {
	if r == nil {
		return Default
	}
	if rule, ok := r.tenants[tenant]; ok {
		return rule
	}
	return r.def
}

// WithAliases returns the rules with an alias map: an id of a person in
// the map canonicalises to the person's id (itself in canonical form).
func (r *Rules) WithAliases(a *Aliases) *Rules {
	out := &Rules{aliases: a}
	if r != nil {
		out.def, out.tenants = r.def, r.tenants
	} else {
		out.def = Default
	}
	return out
}

// Aliases returns the alias map (nil when none).
func (r *Rules) Aliases() *Aliases {
	if r == nil {
		return nil
	}
	return r.aliases
}

// Canonical returns the canonical form of a tenant's user id. It does not
// check the result; see Check.
func (r *Rules) Canonical(tenant, id string) string {
	rule := r.For(tenant)
	if r != nil && r.aliases != nil {
		if p, ok := r.aliases.Lookup(tenant, id); ok {
			return rule.Apply(p.ID)
		}
	}
	return rule.Apply(id)
}

// Check canonicalises id, a user id that has passed validate.ID, and
// returns its canonical form. When that form is not a valid id (white space
// only, or too long once NFKC expanded it) it records a violation of field
// and returns "".
func (r *Rules) Check(v *apierr.Violations, field, tenant, id string) string {
	rule := r.For(tenant)
	c := r.Canonical(tenant, id)
	if c == id {
		return c
	}
	switch {
	case c == "":
		v.Add(field, "is only white space")
		return ""
	case len(c) > validate.MaxIDBytes:
		v.Add(field, "is longer than %d bytes in its canonical form (user id rule %s)", validate.MaxIDBytes, rule)
		return ""
	}
	// A compatibility mapping could in principle produce what validation
	// refuses in an id; the canonical form is held to the same rules.
	n := v.Len()
	validate.ID(v, field, c, true)
	if v.Len() > n {
		return ""
	}
	return c
}
