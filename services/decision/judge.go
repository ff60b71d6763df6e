package decision

import (
	"fmt"
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

// verdictInput is what one attempt is judged on.
type verdictInput struct {
	req    *decisionv1.DecideRequest
	pol    *policy.Policy
	shadow *policy.Policy
	// ra is scoring's assessment; nil when scoring did not answer (cause
	// says why), and the failure mode joins the policy's answer.
	ra    *scoringv1.RiskAssessment
	cause decisionv1.FailureCause
	tier  policy.Tier
	// now is Pushback's clock (unix ms): cooldowns and the guard's counts
	// run on it, never on the time an attempt claims.
	now       int64
	attemptID uint64
	budget    time.Duration
}

// verdict is the judgement of one attempt.
type verdict struct {
	policy.Result
	shadow    *policy.Result
	cooldown  time.Duration // remaining, 0 when none
	cctx      *decisionv1.CooldownContext
	cleared   bool // a phishing-resistant sign-in ended the cooldown
	ruleError error
}

func phishingResistant(f eventv1.Factor) bool {
	return f == eventv1.Factor_FACTOR_WEBAUTHN || f == eventv1.Factor_FACTOR_SMART_CARD
}

// familiar reports whether the attempt's context is one the user is known
// to use: a device they signed in with, or their last trusted IP. A network
// (ASN) alone is not enough: an attacker can rent one in the user's ISP.
func familiar(ra *scoringv1.RiskAssessment) bool {
	f := ra.GetFamiliarity()
	return f.GetHistory() && (f.GetKnownDevice() || f.GetKnownIp())
}

func contextOf(c *eventv1.Client) guard.Context {
	ip := c.GetIp()
	if a, err := netip.ParseAddr(ip); err == nil {
		ip = a.Unmap().WithZone("").String()
	}
	return guard.Context{IP: ip, ASN: c.GetAsn(), Device: c.GetDeviceId()}
}

// judge decides one attempt against the user's guard state st and updates
// st: the attempt is counted (a push whatever answers it), a cooldown
// starts, escalates or is cleared. It reads no clock and no store.
func judge(st *guard.State, in verdictInput) verdict {
	req, pol, now := in.req, in.pol, in.now
	strong := phishingResistant(req.GetFactor())
	ctx := contextOf(req.GetClient())
	fam := in.ra != nil && familiar(in.ra)
	var v verdict

	if t := in.ra.GetLastPhishingResistantTime(); t != nil && st.Active(now) && t.AsTime().UnixMilli() > st.Cooldown.Since {
		// The user proved themselves with a phishing-resistant factor
		// after the cooldown started: it no longer applies.
		st.Clear(t.AsTime().UnixMilli())
		v.cleared = true
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
		counted = st.Record(guard.Attempt{ID: in.attemptID, At: now, Familiar: fam}, ctx, now)
	}
	// During a source-scoped cooldown the user's familiar context, which no
	// burst source shares, is judged on its own pushes only.
	own := active && !strong && scope == policy.ScopeSource && fam && boundBy == ""

	input := policyInput(req, in.ra, st, now, strong || own, own)
	res, err := pol.Evaluate(input)
	v.ruleError = err
	var shadow *policy.Result
	if in.shadow != nil {
		sr, _ := in.shadow.Evaluate(input)
		shadow = &sr
	}
	if in.ra == nil {
		failed := func(r *policy.Result, t policy.Tier) {
			if fo := failureOutcome(t.FailureMode); policy.Stricter(fo, r.Outcome) {
				r.Outcome = fo
			}
			r.Reasons = append([]string{failureReason(in.cause, in.budget, t)}, r.Reasons...)
		}
		failed(&res, in.tier)
		if shadow != nil {
			failed(shadow, in.shadow.TierOf(req.GetAppId()))
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
		v.cctx = &decisionv1.CooldownContext{Scope: scope, Familiar: true, Familiarity: in.ra.GetFamiliarity()}
		reason := fmt.Sprintf("cooldown until %s holds back pushes from the sources that drove it; this attempt comes from the user's familiar context (%s), which none of them shares: number matching",
			until(), familiarEvidence(in.ra.GetFamiliarity()))
		both(func(r *policy.Result) {
			if policy.Stricter(decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH, r.Outcome) {
				r.Outcome = decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH
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
		v.cctx = &decisionv1.CooldownContext{Scope: scope, BoundBy: boundBy, Familiar: fam, Familiarity: in.ra.GetFamiliarity()}
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
	if st.Active(now) {
		v.cooldown = time.Duration(st.Cooldown.Until-now) * time.Millisecond
	}
	v.Result = res
	v.shadow = shadow
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
	for _, sig := range ra.GetSignals() {
		if pushless && (sig.GetCode() == signalPushBurst || sig.GetCode() == signalDenialStreak) {
			continue
		}
		in.Signals[sig.GetCode()] = int(sig.GetWeight())
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
