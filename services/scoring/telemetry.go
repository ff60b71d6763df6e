package scoring

import (
	"context"
	"github.com/pushbackhq/pushback/services/scoring/engine"
	"strconv"
	"time"
	"unicode/utf8"

	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
)

// signalCodes are the public codes; any other is counted as "other" so the
// code label stays bounded.
var signalCodes = []string{engine.SignalPushBurst, engine.SignalDenialStreak, engine.SignalFraudReported, engine.SignalApprovalAfterBurst,
	engine.SignalImpossibleTravel, engine.SignalResponseMismatch, engine.SignalNewDevice, engine.SignalNewCountry, engine.SignalNewASN,
	engine.SignalPushSpray, engine.SignalAnonymizer}

// instruments are the scoring service's metrics, with attribute sets built
// once so that recording on the Assess path allocates nothing.
type instruments struct {
	signals metric.Int64Counter
	score   metric.Int64Histogram
	byCode  map[string]metric.AddOption
	other   metric.AddOption
	none    metric.RecordOption
	redact  *telemetry.Redactor
	resets  metric.Int64Counter
}

func newInstruments(m metric.Meter, redact *telemetry.Redactor) *instruments {
	if m == nil {
		m = noop.NewMeterProvider().Meter("scoring")
	}
	if redact == nil {
		redact = telemetry.NewRedactor(nil, false)
	}
	in := &instruments{byCode: make(map[string]metric.AddOption, len(signalCodes)), redact: redact,
		other: metric.WithAttributeSet(attribute.NewSet(attribute.String("code", "other"))),
		none:  metric.WithAttributeSet(attribute.NewSet())}
	for _, c := range signalCodes {
		in.byCode[c] = metric.WithAttributeSet(attribute.NewSet(attribute.String("code", c)))
	}
	in.signals, _ = m.Int64Counter("pushback.signals", metric.WithUnit("{signal}"),
		metric.WithDescription("Signals fired in the assessments of push attempts, by code."))
	in.resets, _ = m.Int64Counter("pushback.scoring.state_resets", metric.WithUnit("{state}"),
		metric.WithDescription("Stored user states that could not be decoded and were replaced by new ones."))
	in.score, _ = m.Int64Histogram("pushback.risk.score", metric.WithDescription("Risk score (0-100) of assessed push attempts."),
		metric.WithExplicitBucketBoundaries(0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100))
	return in
}

// resetState counts an unreadable user state replaced by a new one.
func (in *instruments) resetState() { in.resets.Add(context.Background(), 1) }

// assessed records the metrics of one assessed attempt.
func (in *instruments) assessed(ctx context.Context, ra *scoringv1.RiskAssessment) {
	in.score.Record(ctx, int64(ra.GetScore()), in.none)
	for _, s := range ra.GetSignals() {
		opt, ok := in.byCode[s.GetCode()]
		if !ok {
			opt = in.other
		}
		in.signals.Add(ctx, 1, opt)
	}
}

// annotate puts the assessment on span: bounded attributes, and one event
// per signal carrying its evidence. Identities in the evidence (IPs, device
// ids) are keyed hashes unless the operator turned raw ids on; the signal's
// free-text summary is left out because it quotes them.
func (in *instruments) annotate(span trace.Span, user string, ra *scoringv1.RiskAssessment) {
	codes := make([]string, 0, len(ra.GetSignals()))
	for _, s := range ra.GetSignals() {
		codes = append(codes, s.GetCode())
	}
	span.SetAttributes(in.redact.UserAttr(user),
		attribute.Int("pushback.score", int(ra.GetScore())), attribute.StringSlice("pushback.signals", codes))
	for _, s := range ra.GetSignals() {
		span.AddEvent("signal "+s.GetCode(), trace.WithAttributes(in.evidence(s)...))
	}
}

func (in *instruments) evidence(s *scoringv1.Signal) []attribute.KeyValue {
	kv := make([]attribute.KeyValue, 0, 12)
	kv = append(kv, attribute.String("pushback.signal.code", s.GetCode()), attribute.Int("pushback.signal.weight", int(s.GetWeight())),
		attribute.Float64("pushback.signal.confidence", s.GetConfidence()))
	switch e := s.GetEvidence().(type) {
	case *scoringv1.Signal_Burst:
		b := e.Burst
		kv = append(kv, attribute.Int("pushback.evidence.threshold", int(b.GetThreshold())),
			attribute.String("pushback.evidence.window", b.GetWindow().AsDuration().String()))
		for _, w := range b.GetWindows() {
			if w.GetWindow().AsDuration() == b.GetWindow().AsDuration() {
				kv = append(kv, attribute.Int("pushback.evidence.pushes", int(w.GetPushes())),
					attribute.Int("pushback.evidence.denied", int(w.GetDenied())), attribute.Int("pushback.evidence.timed_out", int(w.GetTimedOut())))
			}
		}
		if b.GetStreak() > 0 {
			kv = append(kv, attribute.Int("pushback.evidence.streak", int(b.GetStreak())))
		}
	case *scoringv1.Signal_Streak:
		kv = append(kv, attribute.Int("pushback.evidence.length", int(e.Streak.GetLength())),
			attribute.Int("pushback.evidence.denied", int(e.Streak.GetDenied())), attribute.Int("pushback.evidence.timed_out", int(e.Streak.GetTimedOut())))
	case *scoringv1.Signal_Fraud:
		kv = append(kv, attribute.String("pushback.evidence.reported_at", e.Fraud.GetReportedAt().AsTime().UTC().Format(time.RFC3339)),
			attribute.String("pushback.evidence.remaining", e.Fraud.GetRemaining().AsDuration().String()))
	case *scoringv1.Signal_Travel:
		t := e.Travel
		kv = append(kv, attribute.Int("pushback.evidence.distance_km", int(t.GetDistanceKm())), attribute.Int("pushback.evidence.speed_kmh", int(t.GetSpeedKmh())),
			attribute.Int("pushback.evidence.threshold_kmh", int(t.GetThresholdKmh())), attribute.String("pushback.evidence.elapsed", t.GetElapsed().AsDuration().String()),
			attribute.String("pushback.evidence.previous_country", t.GetPrevious().GetGeo().GetCountry()),
			attribute.String("pushback.evidence.current_country", t.GetCurrent().GetGeo().GetCountry()),
			in.redact.IPAttr("pushback.evidence.previous_ip", t.GetPrevious().GetIp()),
			in.redact.IPAttr("pushback.evidence.current_ip", t.GetCurrent().GetIp()))
		if t.GetDiscount() != "" {
			kv = append(kv, attribute.String("pushback.evidence.discount", t.GetDiscount()))
		}
	case *scoringv1.Signal_Novelty:
		v := e.Novelty.GetValue()
		if s.GetCode() == engine.SignalNewDevice {
			v = in.redact.Device(v)
		}
		kv = append(kv, attribute.String("pushback.evidence.value", v), attribute.Int("pushback.evidence.known", int(e.Novelty.GetKnown())))
	case *scoringv1.Signal_Spray:
		sp := e.Spray
		kv = append(kv, attribute.Int("pushback.evidence.distinct_users", int(sp.GetDistinctUsers())), attribute.Int("pushback.evidence.threshold", int(sp.GetThreshold())),
			attribute.String("pushback.evidence.window", sp.GetWindow().AsDuration().String()))
		if sp.GetSourceIp() != "" {
			kv = append(kv, in.redact.IPAttr("pushback.evidence.source_ip", sp.GetSourceIp()))
		}
		if sp.GetAsn() != 0 {
			kv = append(kv, attribute.String("pushback.evidence.asn", strconv.FormatUint(uint64(sp.GetAsn()), 10)))
		}
		if sp.GetDormantUsers() != 0 {
			kv = append(kv, attribute.Int("pushback.evidence.dormant_users", int(sp.GetDormantUsers())))
		}
		if sp.GetVouchedUsers() != 0 {
			kv = append(kv, attribute.Int("pushback.evidence.vouched_users", int(sp.GetVouchedUsers())))
		}
	case *scoringv1.Signal_Anonymizer:
		kv = append(kv, attribute.String("pushback.evidence.kind", e.Anonymizer.GetKind()),
			attribute.String("pushback.evidence.asn", strconv.FormatUint(uint64(e.Anonymizer.GetAsn()), 10)),
			attribute.String("pushback.evidence.as_org", truncate(e.Anonymizer.GetAsOrg(), 64)))
	}
	return kv
}

// truncate bounds a free-text attribute.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
