// Package decision answers, before every push, whether it may be sent and in
// what form: it records the attempt through scoring, evaluates the policy,
// applies cooldowns and failure modes, and keeps an audit trail.
package decision

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/httpapi"
	"github.com/pushbackhq/pushback/pkg/ids"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/telemetry"
	"github.com/pushbackhq/pushback/pkg/userid"
	"github.com/pushbackhq/pushback/pkg/validate"
	"github.com/pushbackhq/pushback/services/decision/policy"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Scorer is the part of the scoring service decision calls.
type Scorer interface {
	Assess(ctx context.Context, in *scoringv1.AssessRequest, opts ...grpc.CallOption) (*scoringv1.AssessResponse, error)
	Observe(ctx context.Context, in *scoringv1.ObserveRequest, opts ...grpc.CallOption) (*scoringv1.ObserveResponse, error)
}

// Notifier is the part of the notification service decision calls.
type Notifier interface {
	Notify(ctx context.Context, in *notifyv1.NotifyRequest, opts ...grpc.CallOption) (*notifyv1.NotifyResponse, error)
}

// Options configures the service.
type Options struct {
	Store    store.Store
	Scorer   Scorer
	Notifier Notifier
	Policy   *policy.Policy
	// ShadowPolicy, when set, is evaluated beside Policy; where the two
	// differ is recorded and counted, never changing the outcome.
	ShadowPolicy *policy.Policy
	// Counters receives the service's counts (a fresh set when nil).
	Counters *Counters
	Logger   *slog.Logger
	Tracer   trace.Tracer
	// Meter records the service's metrics (none when nil).
	Meter metric.Meter
	// Redactor hashes user ids in spans (a per-process random key when nil).
	Redactor *telemetry.Redactor
	// Budget is how long a Decide may take: scoring gets four fifths of it,
	// storing the decision the rest (default 50ms).
	Budget time.Duration
	// NotifyTimeout bounds each call that follows a suppressed push, after
	// the answer: recording it with scoring, queueing the alert (default 1s).
	NotifyTimeout time.Duration
	// Retention of decision records (default 90 days).
	Retention time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// UserIDs canonicalises user ids (the default fold rule when nil).
	UserIDs *userid.Rules
}

// Service implements decisionv1.DecisionServiceServer.
type Service struct {
	decisionv1.UnimplementedDecisionServiceServer
	opts   Options
	policy atomic.Pointer[policy.Policy]
	shadow atomic.Pointer[policy.Policy]
	count  *Counters
	log    *slog.Logger
	tracer trace.Tracer
	tel    *instruments
	now    func() time.Time
	after  *followUps
}

// New returns the decision service.
func New(opts Options) (*Service, error) {
	if opts.Store == nil || opts.Scorer == nil || opts.Policy == nil {
		return nil, errors.New("decision: store, scorer and policy are required")
	}
	if opts.Budget <= 0 {
		opts.Budget = 50 * time.Millisecond
	}
	if opts.NotifyTimeout <= 0 {
		opts.NotifyTimeout = time.Second
	}
	if opts.Retention <= 0 {
		opts.Retention = 90 * 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Tracer == nil {
		opts.Tracer = noop.NewTracerProvider().Tracer("decision")
	}
	if opts.Counters == nil {
		opts.Counters = &Counters{}
	}
	if opts.Redactor == nil {
		opts.Redactor = telemetry.NewRedactor(nil, false)
	}
	s := &Service{opts: opts, count: opts.Counters, log: opts.Logger, tracer: opts.Tracer, now: opts.Now,
		tel: newInstruments(opts.Meter, opts.Counters, opts.Redactor), after: newFollowUps(maxFollowUps)}
	s.policy.Store(opts.Policy)
	s.shadow.Store(opts.ShadowPolicy)
	return s, nil
}

// Register adds the service to a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) { decisionv1.RegisterDecisionServiceServer(r, s) }

// maxFollowUps bounds the follow-ups of suppressed pushes running after
// their answers; more wait in the Decide that made them.
const maxFollowUps = 256

// Drain is for shutdown, before the peers go away: later follow-ups of
// suppressed pushes run before their Decide answers, and Drain waits (until
// ctx ends) for those still running in the background.
func (s *Service) Drain(ctx context.Context) error { return s.after.close(ctx) }

// SetPolicy replaces the enforced policy (hot reload).
func (s *Service) SetPolicy(p *policy.Policy) { s.policy.Store(p) }

// Policy returns the enforced policy.
func (s *Service) Policy() *policy.Policy { return s.policy.Load() }

// SetShadowPolicy replaces the shadow policy; nil turns shadow mode off.
func (s *Service) SetShadowPolicy(p *policy.Policy) { s.shadow.Store(p) }

// ShadowPolicy returns the shadow policy, or nil.
func (s *Service) ShadowPolicy() *policy.Policy { return s.shadow.Load() }

// Counters returns the service's counts.
func (s *Service) Counters() *Counters { return s.count }

func validateDecide(req *decisionv1.DecideRequest) error {
	var v apierr.Violations
	validate.ID(&v, "user_id", req.GetUserId(), true)
	validate.ID(&v, "app_id", req.GetAppId(), false)
	validate.ID(&v, "attempt_id", req.GetAttemptId(), false)
	validate.ID(&v, "tenant", req.GetTenant(), false)
	validate.ID(&v, "session_id", req.GetSessionId(), false)
	validate.Enum(&v, "factor", int32(req.GetFactor()), eventv1.Factor_name, false)
	validate.Time(&v, "time", req.GetTime())
	validate.Client(&v, "client", req.GetClient())
	if len(req.GetGroups()) > 64 {
		v.Add("groups", "more than 64 groups")
	}
	for i, g := range req.GetGroups() {
		validate.ID(&v, fmt.Sprintf("groups[%d]", i), g, true)
	}
	return v.Err()
}

// Decide implements the RPC.
func (s *Service) Decide(ctx context.Context, req *decisionv1.DecideRequest) (*decisionv1.DecideResponse, error) {
	if err := validateDecide(req); err != nil {
		return nil, err
	}
	// From here on every step (scoring, the cooldown, attempt and index
	// keys, notify, telemetry) sees the tenant's canonical user id, so
	// "Bob" and "bob" share one count; the record keeps the spelling sent.
	rawUserID := req.GetUserId()
	req, err := s.canonicalUser(req)
	if err != nil {
		return nil, err
	}
	ctx, span := s.tracer.Start(ctx, "decision.decide")
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(s.tel.userAttr(req.GetUserId()), attribute.String("pushback.app_id", req.GetAppId()))
	}
	// One budget for the whole call: scoring may use four fifths of it and
	// the commit the rest, so a hook never waits much past the budget even
	// when the store is down too.
	start := time.Now()
	defer s.tel.took(ctx, start)
	scoreBy, commitBy := start.Add(s.opts.Budget*4/5), start.Add(s.opts.Budget)
	now := s.now()
	attemptTime := validate.TimeOr(req.GetTime(), now)
	req = proto.CloneOf(req)
	req.Time = timestamppb.New(attemptTime)

	// A retried attempt is not looked up first: scoring counts an attempt id
	// once (it remembers the user's recent ids), and the commit below finds
	// the stored decision of the same attempt id and returns it unchanged.
	// That saves a store read on every decision.
	pol := s.policy.Load()
	shadow := s.shadow.Load()
	tier := pol.TierOf(req.GetAppId())
	resp := &decisionv1.DecideResponse{
		DecisionId:    ids.New(now),
		TraceId:       traceID(ctx),
		PolicyVersion: pol.Version,
	}
	p := pending{req: req, resp: resp, pol: pol, at: attemptTime, tier: tier.Name, groups: pol.GroupsOf(req.GetUserId(), req.GetGroups())}
	p.rawUserID = rawIfChanged(rawUserID, req.GetUserId())

	assessment, failErr := s.assess(ctx, req, scoreBy)
	if failErr != nil {
		s.count.FailureModeDecisions.Add(1)
		p.scoringError = httpapi.CodeName(status.Code(failErr))
		resp.FailureMode = tier.FailureMode
		resp.Outcome = failureOutcome(tier.FailureMode)
		resp.Reasons = []string{failureReason(s.opts.Budget, tier)}
		resp.Risk = &scoringv1.RiskAssessment{UserId: req.GetUserId(), Time: req.GetTime()}
		span.SetAttributes(attribute.String("pushback.failure_mode", tier.FailureMode.String()))
		span.AddEvent("scoring unavailable", trace.WithAttributes(attribute.String("pushback.scoring_error", p.scoringError)))
		if shadow != nil {
			st := shadow.TierOf(req.GetAppId())
			p.shadow = &policy.Result{Outcome: failureOutcome(st.FailureMode), Reasons: []string{failureReason(s.opts.Budget, st)}, Tier: st}
			p.shadowVersion = shadow.Version
		}
	} else {
		resp.Risk = assessment
		if t := assessment.GetLastPhishingResistantTime(); t != nil {
			p.strongAuth = t.AsTime()
		}
		res := s.evaluate(ctx, pol, req, assessment, "decision.policy")
		resp.Outcome = res.Outcome
		resp.MatchedRules = res.Matched
		resp.Reasons = res.Reasons
		p.startCooldown = res.Cooldown
		if shadow != nil {
			sr := s.evaluate(ctx, shadow, req, assessment, "decision.shadow_policy")
			p.shadow = &sr
			p.shadowVersion = shadow.Version
		}
	}

	// The commit gets at least a fifth of the budget even when scoring used
	// all of its share.
	cctx, cancel := context.WithDeadline(ctx, maxTime(commitBy, time.Now().Add(s.opts.Budget/5)))
	rec, err := s.commit(cctx, p)
	cancel()
	if errors.Is(err, errAttemptReused) {
		return nil, apierr.AttemptReused("attempt_id", req.GetAttemptId())
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return s.unrecorded(ctx, span, p, tier, err), nil
	}
	resp = rec.GetResponse()
	if resp.GetReplayed() {
		// A concurrent call with the same attempt id committed first.
		s.count.Replays.Add(1)
		return resp, nil
	}
	s.count.Decisions.Add(1)
	s.tel.decided(ctx, resp)
	if rec.GetCooldownCleared() {
		s.count.CooldownsCleared.Add(1)
		s.log.InfoContext(ctx, "cooldown cleared by a phishing-resistant authentication", slog.String("decision_id", resp.GetDecisionId()))
	}
	if shadow != nil {
		s.count.ShadowEvaluations.Add(1)
		if rec.GetShadowDiffers() {
			s.count.ShadowDifferences.Add(1)
			span.SetAttributes(attribute.String("pushback.shadow_outcome", rec.GetShadowOutcome().String()))
		}
	}
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("pushback.decision_id", resp.GetDecisionId()),
			attribute.String("pushback.outcome", resp.GetOutcome().String()),
			attribute.Int("pushback.score", int(resp.GetRisk().GetScore())),
			attribute.StringSlice("pushback.signals", signalCodes(resp.GetRisk())),
			attribute.StringSlice("pushback.rules", resp.GetMatchedRules()),
			attribute.String("pushback.policy_version", resp.GetPolicyVersion()),
			attribute.String("pushback.tier", rec.GetTier()),
		)
	}
	if suppressed(resp) {
		// After the answer: the caller's deadline must not wait for scoring
		// and notify, and neither call may die with the caller's context.
		actx := context.WithoutCancel(ctx)
		s.after.run(func() { s.afterDecision(actx, req, resp) })
	}
	return resp, nil
}

// suppressed reports whether the answer keeps the push from being sent.
func suppressed(resp *decisionv1.DecideResponse) bool {
	return resp.GetOutcome() == decisionv1.Outcome_OUTCOME_DENY || resp.GetOutcome() == decisionv1.Outcome_OUTCOME_REQUIRE_PHISHING_RESISTANT
}

// unrecorded answers when the decision could not be stored: the cooldown
// state is unknown, so the outcome is the stricter of the policy's and the
// tier's failure mode, and the response says it was not recorded.
func (s *Service) unrecorded(ctx context.Context, span trace.Span, p pending, tier policy.Tier, err error) *decisionv1.DecideResponse {
	s.count.StoreFailures.Add(1)
	span.SetStatus(codes.Error, "store unavailable")
	s.log.ErrorContext(ctx, "store decision; answering with the failure mode", slog.Any("error", err))
	resp := p.resp
	if fo := failureOutcome(tier.FailureMode); policy.Stricter(fo, resp.GetOutcome()) {
		resp.Outcome = fo
	}
	if resp.GetOutcome() == decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH && resp.GetNumberChallenge() == "" {
		resp.NumberChallenge = challenge()
	}
	resp.FailureMode = tier.FailureMode
	resp.Reasons = append(resp.Reasons, fmt.Sprintf("decision store unavailable: not recorded; %s tier fails %s", tier.Name, failureName(tier.FailureMode)))
	span.SetAttributes(attribute.String("pushback.decision_id", resp.GetDecisionId()), attribute.String("pushback.outcome", resp.GetOutcome().String()),
		attribute.String("pushback.failure_mode", tier.FailureMode.String()), attribute.String("pushback.policy_version", resp.GetPolicyVersion()))
	s.tel.decided(ctx, resp)
	return resp
}

func failureReason(budget time.Duration, tier policy.Tier) string {
	return fmt.Sprintf("scoring unavailable within %s (its share of the %s budget); %s tier fails %s", budget*4/5, budget, tier.Name, failureName(tier.FailureMode))
}

func (s *Service) assess(ctx context.Context, req *decisionv1.DecideRequest, by time.Time) (*scoringv1.RiskAssessment, error) {
	ctx, cancel := context.WithDeadline(ctx, by)
	defer cancel()
	out, err := s.opts.Scorer.Assess(ctx, &scoringv1.AssessRequest{Record: true, Attempt: &scoringv1.Attempt{
		AttemptId: req.GetAttemptId(),
		Tenant:    req.GetTenant(),
		UserId:    req.GetUserId(),
		AppId:     req.GetAppId(),
		Factor:    req.GetFactor(),
		Time:      req.GetTime(),
		Client:    req.GetClient(),
		SessionId: req.GetSessionId(),
	}})
	if err != nil {
		return nil, err
	}
	return out.GetAssessment(), nil
}

// evaluate runs pol over the assessment. A rule that fails to evaluate does
// not match; the failure is logged and counted.
func (s *Service) evaluate(ctx context.Context, pol *policy.Policy, req *decisionv1.DecideRequest, ra *scoringv1.RiskAssessment, spanName string) policy.Result {
	_, span := s.tracer.Start(ctx, spanName)
	defer span.End()
	in := policy.Input{
		User:    req.GetUserId(),
		App:     req.GetAppId(),
		Factor:  req.GetFactor().String(),
		Groups:  req.GetGroups(),
		Score:   int(ra.GetScore()),
		Signals: make(map[string]int, len(ra.GetSignals())),
		Pushes:  make(map[string]int, len(ra.GetWindows())),
		Denied:  make(map[string]int, len(ra.GetWindows())),
		Client:  clientVars(req.GetClient()),
	}
	for _, sig := range ra.GetSignals() {
		in.Signals[sig.GetCode()] = int(sig.GetWeight())
	}
	for _, w := range ra.GetWindows() {
		name := formatWindow(w.GetWindow().AsDuration())
		in.Pushes[name] = int(w.GetPushes())
		in.Denied[name] = int(w.GetDenied() + w.GetTimedOut())
	}
	res, err := pol.Evaluate(in)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("pushback.outcome", res.Outcome.String()), attribute.StringSlice("pushback.rules", res.Matched),
			attribute.String("pushback.policy_version", pol.Version), attribute.String("pushback.tier", res.Tier.Name),
			attribute.Int("pushback.score", in.Score))
	}
	if err != nil {
		s.count.RuleErrors.Add(1)
		s.log.WarnContext(ctx, "policy rule failed to evaluate", slog.String("policy_version", pol.Version), slog.Any("error", err))
	}
	return res
}

func clientVars(c *eventv1.Client) map[string]any {
	return map[string]any{
		"ip":        c.GetIp(),
		"country":   c.GetGeo().GetCountry(),
		"city":      c.GetGeo().GetCity(),
		"asn":       int64(c.GetAsn()),
		"device_id": c.GetDeviceId(),
	}
}

// cooldownState is what is kept per user between decisions.
type cooldownState struct {
	Until int64 // unix ms
	Level int
	Since int64 // unix ms the cooldown started; 0 in records written before it was kept
}

func (c cooldownState) marshal() []byte {
	b := binary.AppendVarint(nil, c.Until)
	b = binary.AppendUvarint(b, uint64(c.Level))
	return binary.AppendVarint(b, c.Since)
}

func unmarshalCooldown(b []byte) cooldownState {
	until, n := binary.Varint(b)
	if n <= 0 {
		return cooldownState{}
	}
	level, m := binary.Uvarint(b[n:])
	if m <= 0 {
		return cooldownState{}
	}
	since, _ := binary.Varint(b[n+m:])
	return cooldownState{Until: until, Level: int(level), Since: since}
}

// pending is a decision on its way to the store.
type pending struct {
	req           *decisionv1.DecideRequest
	resp          *decisionv1.DecideResponse
	pol           *policy.Policy
	at            time.Time
	startCooldown bool
	// strongAuth is the user's last phishing-resistant authentication (zero when none).
	strongAuth   time.Time
	tier         string
	groups       []string
	scoringError string
	// shadow is the shadow policy's result (nil without shadow mode).
	shadow        *policy.Result
	shadowVersion string
	// rawUserID is the user id as sent, when it differs from req's.
	rawUserID string
}

// commit applies the cooldown and stores the decision, the attempt index and
// the user index in one transaction. If a concurrent request with the same
// attempt id won the race, its record is returned instead, marked replayed.
func (s *Service) commit(ctx context.Context, p pending) (*decisionv1.DecisionRecord, error) {
	req, pol := p.req, p.pol
	var out *decisionv1.DecisionRecord
	err := s.opts.Store.Update(ctx, func(tx store.Txn) error {
		if req.GetAttemptId() != "" {
			if id, err := tx.Get(attemptKey(req)); err == nil {
				b, err := tx.Get(decisionKey(string(id)))
				if err != nil {
					return err
				}
				rec := &decisionv1.DecisionRecord{}
				if err := proto.Unmarshal(b, rec); err != nil {
					return err
				}
				if !sameAttempt(rec.GetRequest(), req) {
					return errAttemptReused
				}
				rec.Response.Replayed = true
				out = rec
				return nil
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		r := proto.CloneOf(p.resp)
		rec := &decisionv1.DecisionRecord{DecisionId: r.GetDecisionId(), Request: req, Tier: p.tier, Groups: p.groups, ScoringError: p.scoringError}
		rec.RawUserId = p.rawUserID
		var shadow *policy.Result
		if p.shadow != nil {
			sr := *p.shadow
			sr.Matched, sr.Reasons = slices.Clone(sr.Matched), slices.Clone(sr.Reasons)
			shadow = &sr
		}
		ck := cooldownKey(req.GetTenant(), req.GetUserId())
		var cd cooldownState
		if b, err := tx.Get(ck); err == nil {
			cd = unmarshalCooldown(b)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		atMs := p.at.UnixMilli()
		active := cd.Until > atMs
		if active && !p.strongAuth.IsZero() && p.strongAuth.UnixMilli() > cd.Since {
			// The user proved themselves with a phishing-resistant factor
			// after the cooldown started: it no longer applies.
			if err := tx.Delete(ck); err != nil {
				return err
			}
			active = false
			rec.CooldownCleared = true
		}
		strong := req.GetFactor() == eventv1.Factor_FACTOR_WEBAUTHN || req.GetFactor() == eventv1.Factor_FACTOR_SMART_CARD
		if active && strong {
			// A phishing-resistant factor is the way out of a cooldown
			// (its success clears it), so it is neither denied nor counted
			// against the user; an attacker with only a password cannot
			// pass it.
			r.Reasons = append(r.Reasons, fmt.Sprintf("cooldown until %s does not hold back a phishing-resistant factor", time.UnixMilli(cd.Until).UTC().Format(time.RFC3339)))
		} else if active {
			// An attempt during a cooldown is denied and escalates it.
			// Never shorter than it was: an attempt stamped late (a delayed
			// retry, a skewed IdP clock) must not end the cooldown early.
			cd.Level++
			cd.Until = max(cd.Until, atMs+pol.Cooldown.At(cd.Level).Milliseconds())
			reason := fmt.Sprintf("cooldown after an earlier denial, now until %s", time.UnixMilli(cd.Until).UTC().Format(time.RFC3339))
			r.Outcome = decisionv1.Outcome_OUTCOME_DENY
			r.MatchedRules = append(r.MatchedRules, CooldownRule)
			r.Reasons = append(r.Reasons, reason)
			if shadow != nil {
				shadow.Outcome = decisionv1.Outcome_OUTCOME_DENY
				shadow.Matched = append(shadow.Matched, CooldownRule)
				shadow.Reasons = append(shadow.Reasons, reason)
			}
		} else if p.startCooldown && r.Outcome == decisionv1.Outcome_OUTCOME_DENY {
			cd = cooldownState{Level: 1, Until: atMs + pol.Cooldown.Base.Milliseconds(), Since: atMs}
			active = true
		}
		if active {
			r.Cooldown = durationpb.New(time.Duration(cd.Until-atMs) * time.Millisecond)
			ttl := time.Duration(cd.Until-atMs)*time.Millisecond + pol.Cooldown.Max
			if err := tx.Set(ck, cd.marshal(), ttl); err != nil {
				return err
			}
		}
		if r.Outcome == decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH {
			r.NumberChallenge = challenge()
		}
		if shadow != nil {
			rec.ShadowOutcome = shadow.Outcome
			rec.ShadowPolicyVersion = p.shadowVersion
			rec.ShadowMatchedRules = shadow.Matched
			rec.ShadowReasons = shadow.Reasons
			rec.ShadowDiffers = shadow.Outcome != r.GetOutcome()
		}
		rec.Response = r
		rec.DecidedAt = timestamppb.New(s.now())
		b, err := proto.Marshal(rec)
		if err != nil {
			return err
		}
		if err := tx.Set(decisionKey(r.GetDecisionId()), b, s.opts.Retention); err != nil {
			return err
		}
		if err := tx.Set(userIndexKey(req.GetTenant(), req.GetUserId(), rec.GetDecidedAt().AsTime(), r.GetDecisionId()), []byte(r.GetDecisionId()), s.opts.Retention); err != nil {
			return err
		}
		if req.GetAttemptId() != "" {
			if err := tx.Set(attemptKey(req), []byte(r.GetDecisionId()), s.opts.Retention); err != nil {
				return err
			}
		}
		out = rec
		return nil
	})
	return out, err
}

// errAttemptReused is what commit returns for an attempt id already
// decided for a different request.
var errAttemptReused = errors.New("attempt id reused for a different request")

// sameAttempt reports whether a retried request is the attempt that was
// decided: the same application, factor, session and client. Returning the
// stored answer for anything else would let a reused id skip the policy.
func sameAttempt(stored, retry *decisionv1.DecideRequest) bool {
	return stored.GetAppId() == retry.GetAppId() && stored.GetFactor() == retry.GetFactor() &&
		stored.GetSessionId() == retry.GetSessionId() &&
		stored.GetClient().GetIp() == retry.GetClient().GetIp() && stored.GetClient().GetDeviceId() == retry.GetClient().GetDeviceId()
}

// CooldownRule is the name reported among the matched rules when a cooldown
// decided.
const CooldownRule = "cooldown"

// afterDecision tells scoring about a suppressed push and queues an alert
// for a denial. Each call is bounded by NotifyTimeout; a failure is logged,
// the decision stands.
func (s *Service) afterDecision(ctx context.Context, req *decisionv1.DecideRequest, resp *decisionv1.DecideResponse) {
	octx, cancel := context.WithTimeout(ctx, s.opts.NotifyTimeout)
	_, err := s.opts.Scorer.Observe(octx, &scoringv1.ObserveRequest{Events: []*eventv1.AuthEvent{{
		EventId: "suppressed:" + resp.GetDecisionId(),
		Tenant:  req.GetTenant(),
		UserId:  req.GetUserId(),
		Type:    eventv1.EventType_EVENT_TYPE_PUSH_SUPPRESSED,
		Time:    req.GetTime(),
		AppId:   req.GetAppId(),
		Factor:  req.GetFactor(),
		Client:  req.GetClient(),
		Source:  &eventv1.Source{Idp: "pushback", RawEventType: "decision." + resp.GetOutcome().String()},
	}}})
	cancel()
	if err != nil {
		s.log.WarnContext(ctx, "record suppressed push", slog.String("decision_id", resp.GetDecisionId()), slog.Any("error", err))
	}
	if resp.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY || s.opts.Notifier == nil {
		return
	}
	nctx, cancel := context.WithTimeout(ctx, s.opts.NotifyTimeout)
	defer cancel()
	sigs := make([]string, 0, len(resp.GetRisk().GetSignals()))
	for _, sg := range resp.GetRisk().GetSignals() {
		sigs = append(sigs, sg.GetCode())
	}
	_, err = s.opts.Notifier.Notify(nctx, &notifyv1.NotifyRequest{
		Kind:           notifyv1.Kind_KIND_SOC_ALERT,
		IdempotencyKey: "deny:" + resp.GetDecisionId(),
		Tenant:         req.GetTenant(),
		UserId:         req.GetUserId(),
		DecisionId:     resp.GetDecisionId(),
		Title:          "Push denied for " + req.GetUserId(),
		Message:        strings.Join(resp.GetReasons(), "; "),
		Attributes: map[string]string{
			"outcome":        resp.GetOutcome().String(),
			"score":          fmt.Sprint(resp.GetRisk().GetScore()),
			"signals":        strings.Join(sigs, ","),
			"rules":          strings.Join(resp.GetMatchedRules(), ","),
			"policy_version": resp.GetPolicyVersion(),
			"app_id":         req.GetAppId(),
			"cooldown":       resp.GetCooldown().AsDuration().String(),
		},
		Time:    timestamppb.New(s.now()),
		TraceId: resp.GetTraceId(),
	})
	if err != nil {
		s.log.WarnContext(ctx, "queue alert", slog.String("decision_id", resp.GetDecisionId()), slog.Any("error", err))
	}
}

func failureOutcome(fm decisionv1.FailureMode) decisionv1.Outcome {
	switch fm {
	case decisionv1.FailureMode_FAILURE_MODE_OPEN:
		return decisionv1.Outcome_OUTCOME_ALLOW
	case decisionv1.FailureMode_FAILURE_MODE_CLOSED:
		return decisionv1.Outcome_OUTCOME_DENY
	default:
		return decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH
	}
}

func failureName(fm decisionv1.FailureMode) string {
	switch fm {
	case decisionv1.FailureMode_FAILURE_MODE_OPEN:
		return "open"
	case decisionv1.FailureMode_FAILURE_MODE_CLOSED:
		return "closed"
	default:
		return "to number matching"
	}
}

func traceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

// challenge returns a two-digit number for number matching.
func challenge() string {
	n, err := rand.Int(rand.Reader, big.NewInt(90))
	if err != nil {
		return "42"
	}
	return fmt.Sprint(n.Int64() + 10)
}

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

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
