package decision

import (
	"context"
	"strings"
	"sync"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// maxRuleSeries bounds the rule label of pushback.policy.rule_matches:
// rules are named by the operator's policy, and reloads can bring new ones.
const maxRuleSeries = 512

// instruments are the decision service's metrics. Attribute sets are built
// once (outcome x failure mode) or once per rule, so recording on the
// Decide path allocates nothing.
type instruments struct {
	decisions metric.Int64Counter
	duration  metric.Float64Histogram
	matches   metric.Int64Counter
	respond   metric.Int64Counter
	byOutcome map[[2]int32]metric.MeasurementOption
	none      metric.MeasurementOption
	mu        sync.Mutex
	rules     sync.Map // ruleKey -> metric.MeasurementOption
	nrules    int
	redact    *telemetry.Redactor
}

type ruleKey struct {
	rule    string
	outcome decisionv1.Outcome
}

// label is the short lower-case metric value of an enum name:
// OUTCOME_REQUIRE_NUMBER_MATCH -> require_number_match.
func label(name, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(name, prefix))
}

func newInstruments(m metric.Meter, c *Counters, redact *telemetry.Redactor) *instruments {
	if m == nil {
		m = noop.NewMeterProvider().Meter("decision")
	}
	in := &instruments{byOutcome: map[[2]int32]metric.MeasurementOption{}, redact: redact}
	in.decisions, _ = m.Int64Counter("pushback.decisions", metric.WithUnit("{decision}"),
		metric.WithDescription("Decisions made (replays excluded), by outcome and the failure mode used (empty when scoring and the store answered)."))
	in.duration, _ = m.Float64Histogram("pushback.decide.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to answer a Decide call, replays included."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1))
	in.matches, _ = m.Int64Counter("pushback.policy.rule_matches", metric.WithUnit("{match}"),
		metric.WithDescription("Policy rules (and the cooldown) that matched a decision, by rule and the decision's outcome."))
	in.respond, _ = m.Int64Counter("pushback.respond.rule_matches", metric.WithUnit("{match}"),
		metric.WithDescription("Response rules that matched a risk change from ingested events, by rule."))
	for o, oname := range decisionv1.Outcome_name {
		for f, fname := range decisionv1.FailureMode_name {
			fm := ""
			if f != 0 {
				fm = label(fname, "FAILURE_MODE_")
			}
			in.byOutcome[[2]int32{o, f}] = metric.WithAttributeSet(attribute.NewSet(
				attribute.String("outcome", label(oname, "OUTCOME_")), attribute.String("failure_mode", fm)))
		}
	}
	in.none = metric.WithAttributeSet(attribute.NewSet())

	ok, failed := metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "ok"))),
		metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "failed")))
	reloads, _ := m.Int64ObservableCounter("pushback.policy.reloads", metric.WithUnit("{reload}"),
		metric.WithDescription("Policy reloads: ok put a new policy in force, failed kept the old one."))
	shadow, _ := m.Int64ObservableCounter("pushback.policy.shadow_differences", metric.WithUnit("{decision}"),
		metric.WithDescription("Decisions whose shadow-policy outcome differed from the enforced one."))
	storeFailures, _ := m.Int64ObservableCounter("pushback.decision.store_failures", metric.WithUnit("{decision}"),
		metric.WithDescription("Decisions answered by the failure mode without being recorded because the store failed."))
	authFailures, _ := m.Int64ObservableCounter("pushback.decision.auth_failures", metric.WithUnit("{call}"),
		metric.WithDescription("Decision API calls rejected for missing or wrong credentials."))
	ruleErrors, _ := m.Int64ObservableCounter("pushback.policy.rule_errors", metric.WithUnit("{evaluation}"),
		metric.WithDescription("Policy evaluations in which a rule failed to evaluate (and did not match)."))
	shed, _ := m.Int64ObservableCounter("pushback.decision.shed", metric.WithUnit("{call}"),
		metric.WithDescription("Decide calls answered at once from the user's own attempt counts because too many were waiting for scoring."))
	feedFailures, _ := m.Int64ObservableCounter("pushback.respond.feed_failures", metric.WithUnit("{pass}"),
		metric.WithDescription("Passes over scoring's risk-change feed that failed (reading it, or queueing a response) and were retried."))
	clamped, _ := m.Int64ObservableCounter("pushback.decision.clock_clamped", metric.WithUnit("{call}"),
		metric.WithDescription("Decide calls whose attempt time lay ahead of the clock or past the allowed skew behind it."))
	_, _ = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(reloads, c.PolicyReloads.Load(), ok)
		o.ObserveInt64(reloads, c.PolicyReloadFailures.Load(), failed)
		o.ObserveInt64(shadow, c.ShadowDifferences.Load())
		o.ObserveInt64(storeFailures, c.StoreFailures.Load())
		o.ObserveInt64(authFailures, c.AuthFailures.Load())
		o.ObserveInt64(ruleErrors, c.RuleErrors.Load())
		o.ObserveInt64(shed, c.Shed.Load())
		o.ObserveInt64(clamped, c.ClockClamped.Load())
		o.ObserveInt64(feedFailures, c.RespondFailures.Load())
		return nil
	}, reloads, shadow, storeFailures, authFailures, ruleErrors, shed, clamped, feedFailures)
	return in
}

// decided counts one decision and its matched rules.
func (in *instruments) decided(ctx context.Context, resp *decisionv1.DecideResponse) {
	in.decisions.Add(ctx, 1, in.outcome(resp.GetOutcome(), resp.GetFailureMode()))
	for _, r := range resp.GetMatchedRules() {
		in.matches.Add(ctx, 1, in.rule(r, resp.GetOutcome()))
	}
}

// responded counts one matched response rule.
func (in *instruments) responded(ctx context.Context, rule string) {
	in.respond.Add(ctx, 1, metric.WithAttributes(attribute.String("rule", rule)))
}

// took records the duration of a Decide call that started at start.
func (in *instruments) took(ctx context.Context, start time.Time) {
	in.duration.Record(ctx, time.Since(start).Seconds(), in.none)
}

func (in *instruments) outcome(o decisionv1.Outcome, f decisionv1.FailureMode) metric.MeasurementOption {
	if opt, ok := in.byOutcome[[2]int32{int32(o), int32(f)}]; ok {
		return opt
	}
	return in.byOutcome[[2]int32{0, 0}]
}

func (in *instruments) rule(name string, o decisionv1.Outcome) metric.MeasurementOption {
	k := ruleKey{name, o}
	if opt, ok := in.rules.Load(k); ok {
		return opt.(metric.MeasurementOption)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if opt, ok := in.rules.Load(k); ok {
		return opt.(metric.MeasurementOption)
	}
	if in.nrules >= maxRuleSeries {
		name = "other"
		k.rule = name
		if opt, ok := in.rules.Load(k); ok {
			return opt.(metric.MeasurementOption)
		}
	}
	opt := metric.WithAttributeSet(attribute.NewSet(attribute.String("rule", name), attribute.String("outcome", label(o.String(), "OUTCOME_"))))
	in.rules.Store(k, opt)
	in.nrules++
	return opt
}

// userAttr is the span attribute of a user: a keyed hash unless the
// operator turned raw ids on.
func (in *instruments) userAttr(user string) attribute.KeyValue {
	return in.redact.UserAttr(user)
}

// signalCodes lists the codes of the assessment's signals.
func signalCodes(ra *scoringv1.RiskAssessment) []string {
	out := make([]string, 0, len(ra.GetSignals()))
	for _, s := range ra.GetSignals() {
		out = append(out, s.GetCode())
	}
	return out
}
