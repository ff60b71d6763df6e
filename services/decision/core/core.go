// Package core is the decision service's pure core: it judges one attempt
// from the policy, scoring's assessment (or its absence) and the user's
// guard state, with time passed in. The service persists around it;
// `pushback replay` runs it over recorded events.
package core

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/services/decision/guard"
	"github.com/pushbackhq/pushback/services/decision/policy"
)

// defaultWindows are the burst windows the guard counts in when scoring did
// not answer: scoring's defaults, which the default policy's rules name.
var defaultWindows = []time.Duration{time.Minute, 5 * time.Minute, 10 * time.Minute, time.Hour}

// Signals that come from the user's push counts: a phishing-resistant
// attempt, and the user's own context during a cooldown, are judged
// without them.
const (
	signalPushBurst    = "PUSH_BURST"
	signalDenialStreak = "DENIAL_STREAK"
)

// Input is what one attempt is judged on.
type Input struct {
	Req *decisionv1.DecideRequest
	// Policy is enforced; Shadow, when set, is evaluated beside it.
	Policy, Shadow *policy.Policy
	// Assessment is scoring's; nil when scoring did not answer (Cause
	// says why), and the failure mode joins the policy's answer.
	Assessment *scoringv1.RiskAssessment
	Cause      decisionv1.FailureCause
	Tier       policy.Tier
	// Now is Pushback's clock (unix ms): cooldowns and the guard's counts
	// run on it, never on the time an attempt claims.
	Now int64
	// AttemptID identifies the attempt in the guard (guard.AttemptID).
	AttemptID guard.ID
	// Budget of the Decide call, named in failure reasons.
	Budget time.Duration
}

// Verdict is the judgement of one attempt.
type Verdict struct {
	policy.Result
	// Shadow is the shadow policy's result (nil without one).
	Shadow *policy.Result
	// Cooldown is what remains of the user's cooldown (0 when none).
	Cooldown time.Duration
	// Context is how a cooldown judged the attempt's context.
	Context *decisionv1.CooldownContext
	// Cleared is set when a phishing-resistant sign-in ended the cooldown.
	Cleared bool
	// Counted is set when the attempt was counted now (not a retry of one
	// already counted, not a phishing-resistant factor).
	Counted bool
	// RuleError joins the errors of rules that failed to evaluate.
	RuleError error
}

// PhishingResistant reports whether f resists phishing (it sends no push).
func PhishingResistant(f eventv1.Factor) bool {
	return f == eventv1.Factor_FACTOR_WEBAUTHN || f == eventv1.Factor_FACTOR_SMART_CARD
}

// familiar reports whether the attempt's context is one the user is known
// to use: a device they signed in with, from their last trusted IP or a
// network they use. Neither alone is enough: a device id is what the
// login's browser says, and an attacker can rent addresses in the user's
// ISP or share their office NAT.
func familiar(ra *scoringv1.RiskAssessment) bool {
	f := ra.GetFamiliarity()
	return f.GetHistory() && f.GetKnownDevice() && (f.GetKnownIp() || f.GetKnownAsn())
}

// familiarWindow is the window over which the user's familiar context is
// allowed policy.Cooldown.FamiliarPushes pushes during a cooldown.
const familiarWindow = 10 * time.Minute

func contextOf(c *eventv1.Client) guard.Context {
	ip := c.GetIp()
	if a, err := netip.ParseAddr(ip); err == nil {
		ip = a.Unmap().WithZone("").String()
	}
	return guard.Context{IP: ip, ASN: c.GetAsn(), Device: c.GetDeviceId()}
}

// Judge decides one attempt against the user's guard state st and updates
// st: the attempt is counted (a push whatever answers it), a cooldown
// starts, escalates or is cleared. It reads no clock and no store.
func Judge(st *guard.State, in Input) Verdict {
	req, pol, now := in.Req, in.Policy, in.Now
	strong := PhishingResistant(req.GetFactor())
	ctx := contextOf(req.GetClient())
	fam := in.Assessment != nil && familiar(in.Assessment)
	var v Verdict

	if t := in.Assessment.GetLastPhishingResistantTime(); t != nil && st.Active(now) && t.AsTime().UnixMilli() > st.Cooldown.Since {
		// The user proved themselves with a phishing-resistant factor
		// after the cooldown started: it no longer applies. The clearing
		// takes Pushback's clock at the latest: a sign-in stamped ahead (an
		// IdP's skewed clock) must not void cooldowns that start later.
		st.Clear(min(t.AsTime().UnixMilli(), now))
		v.Cleared = true
	}
	active := st.Active(now)
	scope := pol.Cooldown.Scope
	boundBy := ""
	if active && !strong {
		// Checked before this attempt marks its own sources.
		boundBy = st.Binds(ctx)
	}
	counted := false
	if !strong {
		counted = st.Record(guard.Attempt{ID: in.AttemptID, At: now, Familiar: fam}, ctx, now)
	}
	// During a source-scoped cooldown the user's familiar context, which no
	// burst source shares, is judged on its own pushes only.
	own := active && !strong && scope == policy.ScopeSource && fam && boundBy == ""

	input := policyInput(req, in.Assessment, st, now, strong || own, own)
	res, err := pol.Evaluate(input)
	v.RuleError = err
	var shadow *policy.Result
	if in.Shadow != nil {
		sr, _ := in.Shadow.Evaluate(input)
		shadow = &sr
	}
	if in.Assessment == nil {
		failed := func(r *policy.Result, t policy.Tier) {
			if fo := FailureOutcome(t.FailureMode); policy.Stricter(fo, r.Outcome) {
				r.Outcome = fo
			}
			r.Reasons = append([]string{failureReason(in.Cause, in.Budget, t)}, r.Reasons...)
		}
		failed(&res, in.Tier)
		if shadow != nil {
			failed(shadow, in.Shadow.TierOf(req.GetAppId()))
		}
	}
	both := func(f func(r *policy.Result)) {
		f(&res)
		if shadow != nil {
			f(shadow)
		}
	}
	until := func() string { return time.UnixMilli(st.Cooldown.Until).UTC().Format(time.RFC3339) }
	switch {
	case active && strong:
		// A phishing-resistant factor is the way out of a cooldown (its
		// success clears it), so it is neither denied nor counted against
		// the user; an attacker with only a password cannot pass it.
		res.Reasons = append(res.Reasons, fmt.Sprintf("cooldown until %s does not hold back a phishing-resistant factor", until()))
	case own:
		v.Context = &decisionv1.CooldownContext{Scope: scope, Familiar: true, Familiarity: in.Assessment.GetFamiliarity()}
		// Few pushes, each number-matched: whoever reproduces the user's
		// device and network still gets only FamiliarPushes of them, and
		// cannot approve one blindly.
		sent := st.Count(now, familiarWindow, true)
		reason := fmt.Sprintf("cooldown until %s holds back pushes from the sources that drove it; this attempt comes from the user's familiar context (%s), which none of them shares: number matching (push %d of the %d it allows in %s)",
			until(), familiarEvidence(in.Assessment.GetFamiliarity()), sent, pol.Cooldown.FamiliarPushes, formatWindow(familiarWindow))
		outcome := decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH
		if sent > pol.Cooldown.FamiliarPushes {
			outcome = decisionv1.Outcome_OUTCOME_DENY
			reason = fmt.Sprintf("cooldown until %s: the user's familiar context (%s) already had the %d number-matched pushes it allows in %s",
				until(), familiarEvidence(in.Assessment.GetFamiliarity()), pol.Cooldown.FamiliarPushes, formatWindow(familiarWindow))
		}
		both(func(r *policy.Result) {
			if policy.Stricter(outcome, r.Outcome) {
				r.Outcome = outcome
			}
			r.Matched = append(r.Matched, CooldownRule)
			r.Reasons = append(r.Reasons, reason)
		})
	case active:
		// An attempt during a cooldown is denied and escalates it, never
		// shortening it. A retry of an attempt already counted does not
		// escalate again.
		if counted {
			st.Escalate(now, pol.Cooldown.At)
		}
		v.Context = &decisionv1.CooldownContext{Scope: scope, BoundBy: boundBy, Familiar: fam, Familiarity: in.Assessment.GetFamiliarity()}
		reason := fmt.Sprintf("cooldown after an earlier denial, now until %s", until())
		switch {
		case scope == policy.ScopeUser:
		case boundBy != "":
			reason += fmt.Sprintf("; this attempt comes from a %s that drove it", boundName(boundBy))
		default:
			reason += "; this attempt does not come from the user's familiar context"
		}
		both(func(r *policy.Result) {
			r.Outcome = decisionv1.Outcome_OUTCOME_DENY
			r.Matched = append(r.Matched, CooldownRule)
			r.Reasons = append(r.Reasons, reason)
		})
	case res.Cooldown && res.Outcome == decisionv1.Outcome_OUTCOME_DENY && !strong:
		st.Start(now, pol.Cooldown.Base)
	}
	if strong {
		// No push is sent for a phishing-resistant factor: number matching
		// means nothing for it, and a hook that read it as "send the push"
		// would send one nobody counted.
		both(func(r *policy.Result) {
			if r.Outcome == decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH {
				r.Outcome = decisionv1.Outcome_OUTCOME_ALLOW
				r.Reasons = append(r.Reasons, "number matching does not apply to a phishing-resistant factor, which sends no push")
			}
		})
	}
	if st.Active(now) {
		v.Cooldown = time.Duration(st.Cooldown.Until-now) * time.Millisecond
	}
	v.Result = res
	v.Shadow = shadow
	v.Counted = counted
	return v
}

func boundName(by string) string {
	switch by {
	case "ip":
		return "source IP"
	case "asn":
		return "network"
	}
	return by
}

func familiarEvidence(f *scoringv1.Familiarity) string {
	var parts []string
	if f.GetKnownDevice() {
		parts = append(parts, "a device the user signed in with")
	}
	if f.GetKnownIp() {
		parts = append(parts, "the user's last trusted IP")
	}
	if f.GetKnownAsn() {
		parts = append(parts, "a network the user uses")
	}
	if f.GetKnownCountry() {
		parts = append(parts, "a country the user signed in from")
	}
	return strings.Join(parts, ", ")
}

// policyInput is what the rules see. Push counts are the larger of
// scoring's and the guard's own, so a flood scoring did not see in time
// still meets the burst rules. pushless drops what comes from push counts
// (a phishing-resistant attempt sends no push); ownOnly counts the familiar
// attempts only.
func policyInput(req *decisionv1.DecideRequest, ra *scoringv1.RiskAssessment, st *guard.State, now int64, pushless, ownOnly bool) policy.Input {
	in := policy.Input{
		User:    req.GetUserId(),
		App:     req.GetAppId(),
		Factor:  req.GetFactor().String(),
		Groups:  req.GetGroups(),
		Score:   int(ra.GetScore()),
		Signals: make(map[string]int, len(ra.GetSignals())),
		Pushes:  make(map[string]int, len(defaultWindows)),
		Denied:  make(map[string]int, len(defaultWindows)),
		Client:  clientVars(req.GetClient()),
	}
	rest := 1.0
	for _, sig := range ra.GetSignals() {
		if pushless && (sig.GetCode() == signalPushBurst || sig.GetCode() == signalDenialStreak) {
			continue
		}
		in.Signals[sig.GetCode()] = int(sig.GetWeight())
		rest *= 1 - float64(min(max(sig.GetWeight(), 0), 100))/100
	}
	if pushless {
		// The score without the push signals, combined as scoring does
		// (a noisy OR of the weights).
		in.Score = int(math.Round(100 * (1 - rest)))
	}
	windows := defaultWindows
	if ws := ra.GetWindows(); len(ws) > 0 {
		windows = make([]time.Duration, 0, len(ws))
		for _, w := range ws {
			windows = append(windows, w.GetWindow().AsDuration())
		}
	}
	for i, w := range windows {
		name := formatWindow(w)
		in.Pushes[name], in.Denied[name] = 0, 0
		if pushless && !ownOnly {
			continue
		}
		n := st.Count(now, w, ownOnly)
		if !ownOnly && i < len(ra.GetWindows()) {
			sw := ra.GetWindows()[i]
			n = max(n, int(sw.GetPushes()))
			in.Denied[name] = int(sw.GetDenied() + sw.GetTimedOut())
		}
		in.Pushes[name] = n
	}
	return in
}

// failureReason says why the failure mode answered.
func failureReason(cause decisionv1.FailureCause, budget time.Duration, tier policy.Tier) string {
	if cause == decisionv1.FailureCause_FAILURE_CAUSE_SHED {
		return fmt.Sprintf("mesh saturated: scoring not asked, the answer comes from this user's own attempt counts; %s tier fails %s", tier.Name, FailureName(tier.FailureMode))
	}
	return fmt.Sprintf("scoring unavailable within %s (its share of the %s budget); %s tier fails %s", budget*4/5, budget, tier.Name, FailureName(tier.FailureMode))
}

// ClampTime keeps t within skew before now and never after now.
func ClampTime(t, now time.Time, skew time.Duration) time.Time {
	if t.After(now) {
		return now
	}
	if earliest := now.Add(-skew); t.Before(earliest) {
		return earliest
	}
	return t
}

// clientVars is the client as rules see it.
func clientVars(c *eventv1.Client) map[string]any {
	return map[string]any{
		"ip":        c.GetIp(),
		"country":   c.GetGeo().GetCountry(),
		"city":      c.GetGeo().GetCity(),
		"asn":       int64(c.GetAsn()),
		"device_id": c.GetDeviceId(),
	}
}

// FailureOutcome is the outcome of a failure mode.
func FailureOutcome(fm decisionv1.FailureMode) decisionv1.Outcome {
	switch fm {
	case decisionv1.FailureMode_FAILURE_MODE_OPEN:
		return decisionv1.Outcome_OUTCOME_ALLOW
	case decisionv1.FailureMode_FAILURE_MODE_CLOSED:
		return decisionv1.Outcome_OUTCOME_DENY
	default:
		return decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH
	}
}

// FailureName names a failure mode in reasons.
func FailureName(fm decisionv1.FailureMode) string {
	switch fm {
	case decisionv1.FailureMode_FAILURE_MODE_OPEN:
		return "open"
	case decisionv1.FailureMode_FAILURE_MODE_CLOSED:
		return "closed"
	default:
		return "to number matching"
	}
}

// formatWindow names a window as rules see it: 5m, 1h, 30s.
func formatWindow(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	default:
		return fmt.Sprintf("%ds", d/time.Second)
	}
}

// CooldownRule is the name reported among the matched rules when a cooldown
// decided.
const CooldownRule = "cooldown"
