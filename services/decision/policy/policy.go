// Package policy compiles and evaluates Pushback's declarative decision
// policy: YAML rules whose conditions are CEL expressions over the risk
// assessment and the request. Every matching rule is evaluated; the strictest
// outcome wins (DENY > REQUIRE_PHISHING_RESISTANT > REQUIRE_NUMBER_MATCH >
// ALLOW) and every matched rule is reported.
package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	"github.com/pushbackhq/pushback/pkg/userid"
	"go.yaml.in/yaml/v3"
)

// Limits on a policy file.
const (
	MaxRules     = 500
	MaxExprBytes = 4096
	MaxFileBytes = 1 << 20
)

// File is the YAML shape of a policy.
type File struct {
	// Version names the policy; the content hash is used when empty.
	Version string `yaml:"version"`
	// DefaultTier applies to applications not listed in Apps.
	DefaultTier string `yaml:"default_tier"`
	// Tiers by name.
	Tiers map[string]TierFile `yaml:"tiers"`
	// Apps maps an application id to its tier.
	Apps map[string]string `yaml:"apps"`
	// Groups maps a group name to its members (user ids), in addition to
	// the groups a request names. Members match under the fold user id rule
	// whatever the tenant's rule: requests carry canonical user ids, and
	// "Alice@Example.com" listed here must still hold alice@example.com.
	Groups map[string][]string `yaml:"groups"`
	// Cooldown after a DENY.
	Cooldown CooldownFile `yaml:"cooldown"`
	// Rules, evaluated all.
	Rules []RuleFile `yaml:"rules"`
	// Respond holds the response rules: what to do when ingested events
	// show an attack (respond.go).
	Respond RespondFile `yaml:"respond"`
}

// TierFile is one sensitivity tier.
type TierFile struct {
	// FailureMode when scoring does not answer in time: open, closed or number_match.
	FailureMode string `yaml:"failure_mode"`
	// Description for humans.
	Description string `yaml:"description"`
}

// CooldownFile configures cooldowns.
type CooldownFile struct {
	// Base is the first cooldown after a DENY.
	Base string `yaml:"base"`
	// Max caps the escalating cooldown.
	Max string `yaml:"max"`
	// Factor multiplies the cooldown for every attempt made during one.
	Factor float64 `yaml:"factor"`
	// Scope is what a cooldown holds back: "source" (the default) denies
	// the sources that drove it and asks the user's familiar context for
	// number matching; "user" denies every push for the user.
	Scope string `yaml:"scope"`
	// FamiliarPushes is how many number-matched pushes the user's familiar
	// context gets in 10 minutes during a source-scoped cooldown (default 2).
	FamiliarPushes *int `yaml:"familiar_pushes"`
}

// RuleFile is one rule.
type RuleFile struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// When is a CEL expression that must evaluate to a bool.
	When string `yaml:"when"`
	// Outcome: ALLOW, REQUIRE_NUMBER_MATCH, REQUIRE_PHISHING_RESISTANT or DENY.
	Outcome string `yaml:"outcome"`
	// Reason is the human text reported when the rule matches.
	Reason string `yaml:"reason"`
	// Cooldown starts a cooldown when the rule denies (true by default for DENY).
	Cooldown *bool `yaml:"cooldown"`
}

// Tier is a compiled tier.
type Tier struct {
	Name        string
	FailureMode decisionv1.FailureMode
}

// Rule is a compiled rule.
type Rule struct {
	Name     string
	Reason   string
	Outcome  decisionv1.Outcome
	Cooldown bool
	prg      cel.Program
}

// Cooldown scopes.
const (
	// ScopeSource binds a cooldown to the sources (IP, network, device) of
	// the unfamiliar pushes that drove it.
	ScopeSource = "source"
	// ScopeUser denies every push for the user during a cooldown.
	ScopeUser = "user"
)

// Cooldown is the compiled cooldown configuration.
type Cooldown struct {
	Base, Max time.Duration
	Factor    float64
	// Scope is ScopeSource or ScopeUser.
	Scope string
	// FamiliarPushes is what the user's familiar context gets in 10
	// minutes during a source-scoped cooldown.
	FamiliarPushes int
}

// At returns the cooldown of escalation level (1 for the first denial):
// Base multiplied by Factor for every level above 1, capped at Max.
func (c Cooldown) At(level int) time.Duration {
	d := float64(c.Base)
	for i := 1; i < level; i++ {
		d *= c.Factor
		if d >= float64(c.Max) {
			return c.Max
		}
	}
	return min(time.Duration(d), c.Max)
}

// Policy is a compiled, immutable policy, safe for concurrent use.
type Policy struct {
	Version     string
	DefaultTier string
	Tiers       map[string]Tier
	Apps        map[string]string
	Cooldown    Cooldown
	Rules       []Rule
	// Respond is the compiled respond: section.
	Respond Respond
	// Digest is the SHA-256 of the file Parse compiled (zero from Compile):
	// a reload compares it with the file to see whether it changed.
	Digest  [32]byte
	members map[string][]string // user -> groups
}

// Error is a policy compile error naming the rule and position.
type Error struct {
	// Rule is the rule name ("" for errors outside rules).
	Rule string
	// Field is the path of the offending field, e.g. rules[2].when.
	Field string
	// Line in the file (0 when unknown).
	Line int
	// Column, within the expression's line, of a CEL error (0 when not one).
	Column int
	// Expr is the expression of a CEL error.
	Expr string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	b.WriteString(e.Field)
	if e.Rule != "" {
		fmt.Fprintf(&b, " (rule %q)", e.Rule)
	}
	b.WriteString(": ")
	if e.Column > 0 {
		fmt.Fprintf(&b, "expression column %d: ", e.Column)
	}
	b.WriteString(e.Msg)
	return b.String()
}

var outcomeNames = map[string]decisionv1.Outcome{
	"ALLOW":                      decisionv1.Outcome_OUTCOME_ALLOW,
	"REQUIRE_NUMBER_MATCH":       decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH,
	"REQUIRE_PHISHING_RESISTANT": decisionv1.Outcome_OUTCOME_REQUIRE_PHISHING_RESISTANT,
	"DENY":                       decisionv1.Outcome_OUTCOME_DENY,
}

var failureModes = map[string]decisionv1.FailureMode{
	"open":         decisionv1.FailureMode_FAILURE_MODE_OPEN,
	"closed":       decisionv1.FailureMode_FAILURE_MODE_CLOSED,
	"number_match": decisionv1.FailureMode_FAILURE_MODE_NUMBER_MATCH,
}

// Parse reads and compiles a policy. Unknown YAML fields are errors.
func Parse(r io.Reader) (*Policy, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, &Error{Field: "file", Msg: fmt.Sprintf("larger than %d bytes", MaxFileBytes)}
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Field: "file", Msg: "is empty"}
		}
		return nil, &Error{Field: "file", Msg: err.Error()}
	}
	locs := ruleLocations(data)
	lines := make([]int, len(locs))
	for i, l := range locs {
		lines[i] = l.line
	}
	if f.Version == "" {
		sum := sha256.Sum256(data)
		f.Version = "sha256:" + hex.EncodeToString(sum[:6])
	}
	p, err := compile(f, lines, locs)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) == nil && len(doc.Content) > 0 {
		if p.Respond, err = compileRespond(f.Respond, locationsUnder(doc.Content[0], "respond", "rules")); err != nil {
			return nil, err
		}
	} else if p.Respond, err = compileRespond(f.Respond, nil); err != nil {
		return nil, err
	}
	p.Digest = sha256.Sum256(data)
	return p, nil
}

// ruleLocation is where a rule and its `when` are in the file.
type ruleLocation struct {
	line int
	// whenLine is the line the expression starts on (0 when unknown).
	whenLine int
}

// ruleLocations finds the line of each rule and of its expression, for
// error messages.
func ruleLocations(data []byte) []ruleLocation {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	return locationsUnder(doc.Content[0], "rules")
}

// locationsUnder finds the rules listed at path (keys of nested maps).
func locationsUnder(root *yaml.Node, path ...string) []ruleLocation {
	if root.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != path[0] {
			continue
		}
		if len(path) > 1 {
			return locationsUnder(root.Content[i+1], path[1:]...)
		}
		var out []ruleLocation
		for _, n := range root.Content[i+1].Content {
			loc := ruleLocation{line: n.Line}
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == "when" {
					v := n.Content[j+1]
					loc.whenLine = v.Line
					if v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
						loc.whenLine++ // the text starts below the | or >
					}
				}
			}
			out = append(out, loc)
		}
		return out
	}
	return nil
}

// Compile checks and compiles a policy file; lines, when known, are the
// file lines of the rules.
func Compile(f File, lines []int) (*Policy, error) {
	p, err := compile(f, lines, nil)
	if err != nil {
		return nil, err
	}
	if p.Respond, err = compileRespond(f.Respond, nil); err != nil {
		return nil, err
	}
	return p, nil
}

func compile(f File, lines []int, locs []ruleLocation) (*Policy, error) {
	p := &Policy{
		Version:     f.Version,
		DefaultTier: f.DefaultTier,
		Tiers:       map[string]Tier{},
		Apps:        map[string]string{},
		members:     map[string][]string{},
	}
	if p.DefaultTier == "" {
		p.DefaultTier = "standard"
	}
	for name, t := range f.Tiers {
		fm := decisionv1.FailureMode_FAILURE_MODE_NUMBER_MATCH
		if t.FailureMode != "" {
			var ok bool
			if fm, ok = failureModes[t.FailureMode]; !ok {
				return nil, &Error{Field: "tiers." + name + ".failure_mode", Msg: fmt.Sprintf("%q is not one of open, closed, number_match", t.FailureMode)}
			}
		}
		p.Tiers[name] = Tier{Name: name, FailureMode: fm}
	}
	if _, ok := p.Tiers[p.DefaultTier]; !ok {
		p.Tiers[p.DefaultTier] = Tier{Name: p.DefaultTier, FailureMode: decisionv1.FailureMode_FAILURE_MODE_NUMBER_MATCH}
	}
	for app, tier := range f.Apps {
		if _, ok := p.Tiers[tier]; !ok {
			return nil, &Error{Field: "apps." + app, Msg: fmt.Sprintf("tier %q is not defined under tiers", tier)}
		}
		p.Apps[app] = tier
	}
	for group, users := range f.Groups {
		for _, u := range users {
			k := userid.Fold.Apply(u)
			p.members[k] = append(p.members[k], group)
		}
	}
	cd, err := compileCooldown(f.Cooldown)
	if err != nil {
		return nil, err
	}
	p.Cooldown = cd
	if len(f.Rules) > MaxRules {
		return nil, &Error{Field: "rules", Msg: fmt.Sprintf("%d rules exceed the limit of %d", len(f.Rules), MaxRules)}
	}
	env, err := newEnv()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, rf := range f.Rules {
		line := 0
		if i < len(lines) {
			line = lines[i]
		}
		field := fmt.Sprintf("rules[%d]", i)
		fail := func(sub, msg string) error {
			return &Error{Rule: rf.Name, Field: field + sub, Line: line, Msg: msg}
		}
		if rf.Name == "" {
			return nil, fail(".name", "is required")
		}
		if seen[rf.Name] {
			return nil, fail(".name", "is used by an earlier rule")
		}
		seen[rf.Name] = true
		outcome, ok := outcomeNames[rf.Outcome]
		if !ok {
			return nil, fail(".outcome", fmt.Sprintf("%q is not one of ALLOW, REQUIRE_NUMBER_MATCH, REQUIRE_PHISHING_RESISTANT, DENY", rf.Outcome))
		}
		var loc *ruleLocation
		if i < len(locs) {
			loc = &locs[i]
		}
		prg, err := compileWhen(env, rf.When, rf.Name, field+".when", line, loc)
		if err != nil {
			return nil, err
		}
		cooldown := outcome == decisionv1.Outcome_OUTCOME_DENY
		if rf.Cooldown != nil {
			cooldown = *rf.Cooldown && outcome == decisionv1.Outcome_OUTCOME_DENY
		}
		reason := rf.Reason
		if reason == "" {
			reason = rf.Description
		}
		if reason == "" {
			reason = rf.Name
		}
		p.Rules = append(p.Rules, Rule{Name: rf.Name, Reason: reason, Outcome: outcome, Cooldown: cooldown, prg: prg})
	}
	return p, nil
}

// compileWhen compiles a rule's condition, which must be a bool. Errors
// name the rule, the field and, for CEL errors, the line and column in the
// file.
func compileWhen(env *cel.Env, expr, rule, field string, line int, loc *ruleLocation) (cel.Program, error) {
	fail := func(msg string) error { return &Error{Rule: rule, Field: field, Line: line, Msg: msg} }
	if strings.TrimSpace(expr) == "" {
		return nil, fail("is required")
	}
	if len(expr) > MaxExprBytes {
		return nil, fail(fmt.Sprintf("longer than %d bytes", MaxExprBytes))
	}
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		e := &Error{Rule: rule, Field: field, Line: line, Msg: strings.TrimSpace(iss.Err().Error())}
		if errs := iss.Errors(); len(errs) > 0 {
			e.Msg = errs[0].Message
			l := errs[0].Location
			e.Column = l.Column() + 1
			if loc != nil && loc.whenLine > 0 {
				e.Line = loc.whenLine + l.Line() - 1
			}
			e.Expr = expr
		}
		return nil, e
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fail(fmt.Sprintf("evaluates to %s, want bool", ast.OutputType()))
	}
	// No runtime cost tracking: it costs allocations on every decision,
	// and a rule's cost is already bounded by the expression size limit
	// and by bounded inputs (at most 11 signal codes, 64 groups, 4 windows).
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fail(err.Error())
	}
	return prg, nil
}

func compileCooldown(c CooldownFile) (Cooldown, error) {
	cd := Cooldown{Base: 15 * time.Minute, Max: 2 * time.Hour, Factor: 2, Scope: ScopeSource, FamiliarPushes: 2}
	if c.FamiliarPushes != nil {
		if *c.FamiliarPushes < 0 || *c.FamiliarPushes > 4 {
			return cd, &Error{Field: "cooldown.familiar_pushes", Msg: "must be between 0 and 4"}
		}
		cd.FamiliarPushes = *c.FamiliarPushes
	}
	switch c.Scope {
	case "", ScopeSource:
	case ScopeUser:
		cd.Scope = ScopeUser
	default:
		return cd, &Error{Field: "cooldown.scope", Msg: fmt.Sprintf("%q is not source or user", c.Scope)}
	}
	var err error
	if c.Base != "" {
		if cd.Base, err = time.ParseDuration(c.Base); err != nil || cd.Base <= 0 {
			return cd, &Error{Field: "cooldown.base", Msg: fmt.Sprintf("%q is not a positive duration", c.Base)}
		}
	}
	if c.Max != "" {
		if cd.Max, err = time.ParseDuration(c.Max); err != nil || cd.Max <= 0 {
			return cd, &Error{Field: "cooldown.max", Msg: fmt.Sprintf("%q is not a positive duration", c.Max)}
		}
	}
	if cd.Max < cd.Base {
		return cd, &Error{Field: "cooldown.max", Msg: "is shorter than cooldown.base"}
	}
	if c.Factor != 0 {
		if c.Factor < 1 || c.Factor > 10 {
			return cd, &Error{Field: "cooldown.factor", Msg: "must be between 1 and 10"}
		}
		cd.Factor = c.Factor
	}
	return cd, nil
}

// Input is what rules see.
type Input struct {
	User    string
	App     string
	Factor  string
	Groups  []string
	Score   int
	Signals map[string]int // code -> weight
	Pushes  map[string]int // window ("5m") -> pushes
	Denied  map[string]int // window -> denied + timed out
	Client  map[string]any // ip, country, city, asn, device_id
}

// Result is the evaluation of a policy.
type Result struct {
	Outcome  decisionv1.Outcome
	Matched  []string
	Reasons  []string
	Cooldown bool
	Tier     Tier
}

// TierOf returns the tier of an application.
func (p *Policy) TierOf(app string) Tier {
	if t, ok := p.Apps[app]; ok {
		return p.Tiers[t]
	}
	return p.Tiers[p.DefaultTier]
}

// GroupsOf adds the policy's group memberships of user to the request's
// groups; members match under the fold user id rule.
func (p *Policy) GroupsOf(user string, requested []string) []string {
	extra := p.members[userid.Fold.Apply(user)]
	if len(extra) == 0 {
		return requested
	}
	out := slices.Clone(requested)
	for _, g := range extra {
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

// Evaluate runs every rule. A rule whose evaluation errors (a missing map
// key, say) does not match; the error is returned beside the result so it
// can be counted, never turning into an outcome.
func (p *Policy) Evaluate(in Input) (Result, error) {
	tier := p.TierOf(in.App)
	groups := p.GroupsOf(in.User, in.Groups)
	// Converted once to CEL values: every rule then reads the same
	// activation instead of re-adapting Go maps per rule. (Strings, bools
	// and ints are what NativeToValue makes of them, without its boxing.)
	act := &activation{
		user:              types.String(in.User),
		app:               types.String(in.App),
		tier:              types.String(tier.Name),
		factor:            types.String(in.Factor),
		phishingResistant: types.Bool(in.Factor == "FACTOR_WEBAUTHN" || in.Factor == "FACTOR_SMART_CARD"),
		groups:            types.DefaultTypeAdapter.NativeToValue(groups),
		score:             types.Int(in.Score),
		signals:           types.DefaultTypeAdapter.NativeToValue(keys(in.Signals)),
		weights:           types.DefaultTypeAdapter.NativeToValue(in.Signals),
		pushes:            types.DefaultTypeAdapter.NativeToValue(in.Pushes),
		denied:            types.DefaultTypeAdapter.NativeToValue(in.Denied),
		client:            types.DefaultTypeAdapter.NativeToValue(in.Client),
	}
	res := Result{Outcome: decisionv1.Outcome_OUTCOME_ALLOW, Tier: tier}
	var errs []error
	for _, r := range p.Rules {
		val, _, err := r.prg.Eval(act)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %q: %w", r.Name, err))
			continue
		}
		if b, ok := val.Value().(bool); !ok || !b {
			continue
		}
		res.Matched = append(res.Matched, r.Name)
		res.Reasons = append(res.Reasons, r.Reason)
		if Stricter(r.Outcome, res.Outcome) {
			res.Outcome = r.Outcome
		}
		if r.Cooldown {
			res.Cooldown = true
		}
	}
	return res, errors.Join(errs...)
}

// activation holds the variables of the rules (see env), looked up
// without a map.
type activation struct {
	user, app, tier, factor, phishingResistant, groups, score ref.Val
	signals, weights, pushes, denied, client                  ref.Val
}

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	var v ref.Val
	switch name {
	case "user":
		v = a.user
	case "app":
		v = a.app
	case "tier":
		v = a.tier
	case "factor":
		v = a.factor
	case "phishing_resistant":
		v = a.phishingResistant
	case "groups":
		v = a.groups
	case "score":
		v = a.score
	case "signals":
		v = a.signals
	case "weights":
		v = a.weights
	case "pushes":
		v = a.pushes
	case "denied":
		v = a.denied
	case "client":
		v = a.client
	default:
		return nil, false
	}
	return v, true
}

// Parent implements interpreter.Activation.
func (*activation) Parent() interpreter.Activation { return nil }

// Stricter reports whether a is stricter than b.
func Stricter(a, b decisionv1.Outcome) bool { return rank(a) > rank(b) }

func rank(o decisionv1.Outcome) int {
	switch o {
	case decisionv1.Outcome_OUTCOME_DENY:
		return 4
	case decisionv1.Outcome_OUTCOME_REQUIRE_PHISHING_RESISTANT:
		return 3
	case decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH:
		return 2
	case decisionv1.Outcome_OUTCOME_ALLOW:
		return 1
	}
	return 0
}

func keys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func newEnv(extra ...cel.EnvOption) (*cel.Env, error) {
	return cel.NewEnv(append([]cel.EnvOption{
		cel.Variable("user", cel.StringType),
		cel.Variable("app", cel.StringType),
		cel.Variable("tier", cel.StringType),
		cel.Variable("factor", cel.StringType),
		cel.Variable("phishing_resistant", cel.BoolType),
		cel.Variable("groups", cel.ListType(cel.StringType)),
		cel.Variable("score", cel.IntType),
		cel.Variable("signals", cel.ListType(cel.StringType)),
		cel.Variable("weights", cel.MapType(cel.StringType, cel.IntType)),
		cel.Variable("pushes", cel.MapType(cel.StringType, cel.IntType)),
		cel.Variable("denied", cel.MapType(cel.StringType, cel.IntType)),
		cel.Variable("client", cel.MapType(cel.StringType, cel.DynType)),
	}, extra...)...)
}
