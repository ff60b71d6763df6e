package policy

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/interpreter"
	"github.com/pushbackhq/pushback/connectors/respond"
)

// MaxRespondRules caps the respond: rules of a policy.
const MaxRespondRules = 100

// ActionAlert raises a SOC alert on the incident (every alert channel).
const ActionAlert = "alert"

// RespondFile is the YAML shape of the respond: section: rules over the
// risk that ingested events produce, and what to do when one matches.
type RespondFile struct {
	// DryRun records every action without taking it (alerts still go out).
	DryRun bool `yaml:"dry_run"`
	// Rules, evaluated all.
	Rules []RespondRuleFile `yaml:"rules"`
}

// RespondRuleFile is one response rule.
type RespondRuleFile struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// When is a CEL expression over the assessment and the event.
	When string `yaml:"when"`
	// Actions: alert, revoke_sessions, revoke_tokens, confirm_compromised,
	// block_user, set_user_status, caep_credential_change,
	// caep_risk_level_change.
	Actions []string `yaml:"actions"`
	// UserStatus for set_user_status ("disabled": the one status Duo lets an API client set that stops sign-ins).
	UserStatus string `yaml:"user_status"`
	// CredentialChange holds the claims of caep_credential_change.
	CredentialChange *CredentialChange `yaml:"credential_change"`
	// RiskLevelChange holds the claims of caep_risk_level_change.
	RiskLevelChange *RiskLevelChange `yaml:"risk_level_change"`
	// DryRun records this rule's actions without taking them.
	DryRun bool   `yaml:"dry_run"`
	Reason string `yaml:"reason"`
}

// CredentialChange is what a CAEP credential-change event says happened
// to one of the user's credentials.
type CredentialChange struct {
	// CredentialType is one of CAEP's (password, pin, x509,
	// fido2-platform, fido2-roaming, fido-u2f, verifiable-credential,
	// phone-voice, phone-sms, app) or another the receivers know.
	CredentialType string `yaml:"credential_type"`
	// ChangeType: create, revoke, update or delete.
	ChangeType string `yaml:"change_type"`
}

// RiskLevelChange is the user's risk level a CAEP risk-level-change event
// announces.
type RiskLevelChange struct {
	// CurrentLevel: LOW, MEDIUM or HIGH.
	CurrentLevel string `yaml:"current_level"`
	// PreviousLevel: LOW, MEDIUM, HIGH, or empty when unknown.
	PreviousLevel string `yaml:"previous_level"`
	// RiskReason says why, for example MFA_FATIGUE_SUCCEEDED.
	RiskReason string `yaml:"risk_reason"`
}

var (
	credentialTypeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,63}$`)
	riskLevels       = []string{"LOW", "MEDIUM", "HIGH"}
	changeTypes      = []string{"create", "revoke", "update", "delete"}
)

// check says what is wrong with the claims, naming the field below the
// rule's credential_change.
func (c *CredentialChange) check() (field, msg string) {
	switch {
	case !credentialTypeRE.MatchString(c.CredentialType):
		return ".credential_type", fmt.Sprintf("%q is not a credential type (password, pin, x509, fido2-platform, fido2-roaming, fido-u2f, verifiable-credential, phone-voice, phone-sms, app)", c.CredentialType)
	case !slices.Contains(changeTypes, c.ChangeType):
		return ".change_type", fmt.Sprintf("%q is not one of create, revoke, update, delete", c.ChangeType)
	}
	return "", ""
}

// check says what is wrong with the claims, naming the field below the
// rule's risk_level_change.
func (r *RiskLevelChange) check() (field, msg string) {
	switch {
	case !slices.Contains(riskLevels, r.CurrentLevel):
		return ".current_level", fmt.Sprintf("%q is not one of LOW, MEDIUM, HIGH", r.CurrentLevel)
	case r.PreviousLevel != "" && !slices.Contains(riskLevels, r.PreviousLevel):
		return ".previous_level", fmt.Sprintf("%q is not one of LOW, MEDIUM, HIGH", r.PreviousLevel)
	case len(r.RiskReason) > 256 || strings.IndexFunc(r.RiskReason, func(c rune) bool { return unicode.IsControl(c) || unicode.Is(unicode.Bidi_Control, c) }) >= 0:
		return ".risk_reason", "must be at most 256 bytes without control characters"
	}
	return "", ""
}

// Respond is the compiled respond: section.
type Respond struct {
	DryRun bool
	Rules  []RespondRule
}

// RespondRule is a compiled response rule.
type RespondRule struct {
	Name             string
	Reason           string
	Alert            bool
	Actions          []respond.Action
	UserStatus       string
	CredentialChange *CredentialChange
	RiskLevelChange  *RiskLevelChange
	DryRun           bool
	prg              cel.Program
}

// RespondInput is what response rules see: the decision rules' variables
// (without a request: app and groups come from the event or are empty),
// the tenant, each signal's confidence and the event that changed the risk.
type RespondInput struct {
	Input
	Tenant string
	// Confidence maps a signal code to its confidence, 0 to 1.
	Confidence map[string]float64
	// Fresh lists the signal codes whose cause is new for the user: an
	// approval after a burst, a journey, a fraud report not seen in an
	// earlier change. A signal that lingers in the risk is not fresh.
	Fresh []string
	// Event: type (e.g. "PUSH_APPROVED"), success (a login completed or a
	// push approved), factor, app, source (the IdP format), ip, country.
	Event map[string]any
}

// RespondMatch is one matched response rule.
type RespondMatch struct {
	Rule       string
	Reason     string
	Alert      bool
	Actions    []respond.Action
	UserStatus string
	// CredentialChange and RiskLevelChange are the claims of the CAEP
	// events the rule sends, when it sends them.
	CredentialChange *CredentialChange
	RiskLevelChange  *RiskLevelChange
	// DryRun: the rule or the whole section runs dry.
	DryRun bool
}

func compileRespond(f RespondFile, locs []ruleLocation) (Respond, error) {
	out := Respond{DryRun: f.DryRun}
	if len(f.Rules) > MaxRespondRules {
		return out, &Error{Field: "respond.rules", Msg: fmt.Sprintf("%d rules exceed the limit of %d", len(f.Rules), MaxRespondRules)}
	}
	env, err := respondEnv()
	if err != nil {
		return out, err
	}
	seen := map[string]bool{}
	for i, rf := range f.Rules {
		var loc *ruleLocation
		line := 0
		if i < len(locs) {
			loc, line = &locs[i], locs[i].line
		}
		field := fmt.Sprintf("respond.rules[%d]", i)
		fail := func(sub, msg string) error { return &Error{Rule: rf.Name, Field: field + sub, Line: line, Msg: msg} }
		if rf.Name == "" {
			return out, fail(".name", "is required")
		}
		if seen[rf.Name] {
			return out, fail(".name", "is used by an earlier response rule")
		}
		seen[rf.Name] = true
		if len(rf.Actions) == 0 {
			return out, fail(".actions", "is required: alert, or an action at the identity provider")
		}
		r := RespondRule{Name: rf.Name, Reason: rf.Reason, DryRun: rf.DryRun}
		for j, a := range rf.Actions {
			switch act := respond.Action(a); {
			case a == ActionAlert:
				r.Alert = true
			case act.Valid():
				if slices.Contains(r.Actions, act) {
					return out, fail(fmt.Sprintf(".actions[%d]", j), fmt.Sprintf("%q is listed twice", a))
				}
				r.Actions = append(r.Actions, act)
			default:
				return out, fail(fmt.Sprintf(".actions[%d]", j), fmt.Sprintf("%q is not one of alert, %s", a, actionNames()))
			}
		}
		switch {
		case slices.Contains(r.Actions, respond.SetUserStatus) && rf.UserStatus == "":
			return out, fail(".user_status", "is required by set_user_status")
		case rf.UserStatus != "" && !slices.Contains(r.Actions, respond.SetUserStatus):
			return out, fail(".user_status", "is only for set_user_status")
		case rf.UserStatus != "" && rf.UserStatus != "disabled":
			return out, fail(".user_status", fmt.Sprintf("%q is not disabled (the one status Duo lets an API client set that stops sign-ins)", rf.UserStatus))
		}
		r.UserStatus = rf.UserStatus
		for _, sig := range []struct {
			action, name string
			claims       interface{ check() (string, string) }
			set          bool
		}{
			{string(respond.CAEPCredentialChange), "credential_change", rf.CredentialChange, rf.CredentialChange != nil},
			{string(respond.CAEPRiskLevelChange), "risk_level_change", rf.RiskLevelChange, rf.RiskLevelChange != nil},
		} {
			asked := slices.Contains(r.Actions, respond.Action(sig.action))
			switch {
			case asked && !sig.set:
				return out, fail("."+sig.name, "is required by "+sig.action)
			case sig.set && !asked:
				return out, fail("."+sig.name, "is only for "+sig.action)
			case sig.set:
				if f, msg := sig.claims.check(); msg != "" {
					return out, fail("."+sig.name+f, msg)
				}
			}
		}
		r.CredentialChange, r.RiskLevelChange = rf.CredentialChange, rf.RiskLevelChange
		if r.Reason == "" {
			r.Reason = rf.Description
		}
		if r.Reason == "" {
			r.Reason = rf.Name
		}
		if r.prg, err = compileWhen(env, rf.When, rf.Name, field+".when", line, loc); err != nil {
			return out, err
		}
		out.Rules = append(out.Rules, r)
	}
	return out, nil
}

func actionNames() string {
	var s string
	for i, a := range respond.Actions {
		if i > 0 {
			s += ", "
		}
		s += string(a)
	}
	return s
}

func respondEnv() (*cel.Env, error) {
	return newEnv(
		cel.Variable("tenant", cel.StringType),
		cel.Variable("confidence", cel.MapType(cel.StringType, cel.DoubleType)),
		cel.Variable("fresh", cel.ListType(cel.StringType)),
		cel.Variable("event", cel.MapType(cel.StringType, cel.DynType)),
	)
}

// Evaluate runs every response rule. A rule whose evaluation errors does
// not match; the error is returned beside the matches to be counted.
func (r Respond) Evaluate(in RespondInput) ([]RespondMatch, error) {
	if len(r.Rules) == 0 {
		return nil, nil
	}
	orEmpty := func(m map[string]int) map[string]int {
		if m == nil {
			return map[string]int{}
		}
		return m
	}
	groups, client, conf, event, fresh := in.Groups, in.Client, in.Confidence, in.Event, in.Fresh
	if groups == nil {
		groups = []string{}
	}
	if fresh == nil {
		fresh = []string{}
	}
	if client == nil {
		client = map[string]any{}
	}
	if conf == nil {
		conf = map[string]float64{}
	}
	if event == nil {
		event = map[string]any{}
	}
	vars := map[string]any{
		"user":               in.User,
		"app":                in.App,
		"tier":               "",
		"factor":             in.Factor,
		"phishing_resistant": in.Factor == "FACTOR_WEBAUTHN" || in.Factor == "FACTOR_SMART_CARD",
		"groups":             groups,
		"score":              int64(in.Score),
		"signals":            keys(in.Signals),
		"weights":            orEmpty(in.Signals),
		"pushes":             orEmpty(in.Pushes),
		"denied":             orEmpty(in.Denied),
		"client":             client,
		"tenant":             in.Tenant,
		"confidence":         conf,
		"fresh":              fresh,
		"event":              event,
	}
	for k, v := range vars {
		vars[k] = types.DefaultTypeAdapter.NativeToValue(v)
	}
	act, err := interpreter.NewActivation(vars)
	if err != nil {
		return nil, err
	}
	var out []RespondMatch
	var errs []error
	for _, rule := range r.Rules {
		val, _, err := rule.prg.Eval(act)
		if err != nil {
			errs = append(errs, fmt.Errorf("response rule %q: %w", rule.Name, err))
			continue
		}
		if b, ok := val.Value().(bool); !ok || !b {
			continue
		}
		out = append(out, RespondMatch{Rule: rule.Name, Reason: rule.Reason, Alert: rule.Alert, Actions: rule.Actions,
			UserStatus: rule.UserStatus, CredentialChange: rule.CredentialChange, RiskLevelChange: rule.RiskLevelChange,
			DryRun: r.DryRun || rule.DryRun})
	}
	return out, errors.Join(errs...)
}
