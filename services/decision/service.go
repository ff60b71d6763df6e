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
	"github.com/pushbackhq/pushback/services/decision/core"
	"github.com/pushbackhq/pushback/services/decision/guard"
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
	// ClockSkew is how far an attempt's time may lie from the clock; a
	// time outside it is clamped to it, once, at the edge (default 5m).
	// Never ahead: an attempt's time is at most the clock.
	ClockSkew time.Duration
	// MaxInFlight bounds the calls waiting for scoring; past it a call is
	// shed: answered at once from the guard's own counts (default 256).
	MaxInFlight int
	// MaxGuardUsers bounds the users whose attempts are kept in memory
	// (default 200000; the store keeps them all).
	MaxGuardUsers int
	// UserIDs canonicalises user ids (the default fold rule when nil).
	UserIDs *userid.Rules
	// SharedStore is set when other replicas count the same users' attempts
	// in Store (Redis): this process's memory is then not the whole count,
	// and a push whose attempt the store cannot record is not sent.
	SharedStore bool
	// Feed is scoring's risk-change feed that the response rules act on
	// (RunResponder); nil leaves the respond: rules unused.
	Feed RiskFeed
	// RespondDryRun records every response action without taking it.
	RespondDryRun bool
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
	guards *guards
	// admit holds one token per call waiting for scoring.
	admit chan struct{}
	// storeLogged is when a store failure was last logged (unix ns).
	storeLogged atomic.Int64
	// respondLogged is when a responder failure was last logged (unix ns).
	respondLogged atomic.Int64
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
	if opts.ClockSkew <= 0 {
		opts.ClockSkew = 5 * time.Minute
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 256
	}
	if opts.MaxGuardUsers <= 0 {
		opts.MaxGuardUsers = 200_000
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
		tel:    newInstruments(opts.Meter, opts.Counters, opts.Redactor),
		guards: newGuards(opts.MaxGuardUsers), admit: make(chan struct{}, opts.MaxInFlight)}
	s.after = newFollowUps(maxFollowUps, maxFollowUpBacklog, func() {
		s.count.FollowUpsDropped.Add(1)
		s.log.Warn("follow-up of a suppressed push dropped: too many waiting (a peer is slow or down)")
	})
	s.policy.Store(opts.Policy)
	s.shadow.Store(opts.ShadowPolicy)
	return s, nil
}

// Register adds the service to a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) { decisionv1.RegisterDecisionServiceServer(r, s) }

// maxFollowUps bounds the follow-ups of suppressed pushes running after
// their answers, maxFollowUpBacklog those waiting for one of them.
const (
	maxFollowUps       = 256
	maxFollowUpBacklog = 4096
)

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

// Decide implements the RPC. An attempt is prepared (one clock, one
// policy), answered from memory when it is a retry, scored, judged by the
// guard in memory, then committed with its record; what follows a
// suppressed push runs after the answer.
func (s *Service) Decide(ctx context.Context, req *decisionv1.DecideRequest) (resp *decisionv1.DecideResponse, err error) {
	if err := validate.Request(ctx, req); err != nil {
		return nil, err
	}
	// From here on every step (scoring, the cooldown, attempt and index
	// keys, notify, telemetry) sees the tenant's canonical user id, so
	// "Bob" and "bob" share one count; the record keeps the spelling sent.
	rawUserID := req.GetUserId()
	req, err = s.canonicalUser(req)
	if err != nil {
		return nil, err
	}
	ctx, span := s.tracer.Start(ctx, "decision.decide")
	defer span.End()
	defer func() { keepTrace(span, resp, err) }()
	if span.IsRecording() {
		span.SetAttributes(s.tel.userAttr(req.GetUserId()), attribute.String("pushback.app_id", req.GetAppId()))
	}
	// One budget for the whole call: scoring may use four fifths of it and
	// the commit the rest, so a hook never waits much past the budget even
	// when the store is down too.
	start := time.Now()
	defer s.tel.took(ctx, start)
	p := s.prepare(ctx, span, req, rawUserID)
	e := s.guards.entry(p.key, p.in.Now)
	// A retried attempt is answered from this process's memory of the
	// user's recent answers, before anything else; the store is not read
	// first, which saves a read on every decision: scoring and the guard
	// count an attempt id once, and the commit finds a decision another
	// replica stored for it and returns that instead.
	if a, ok := e.retried(p); ok {
		return s.replay(p.req, a)
	}
	s.score(ctx, span, &p, start.Add(s.opts.Budget*4/5))
	if a, ok := s.judge(ctx, e, &p); ok {
		// The same attempt, answered while this call waited for scoring.
		return s.replay(p.req, a)
	}
	defer e.committed()
	return s.store(ctx, span, e, p, start)
}

// prepare applies the one clock rule of the request and builds the
// decision on its way: the attempt's time is a claim, clamped to the
// allowed skew of Pushback's clock and never ahead of it, and every later
// step uses this one value. Cooldowns and the guard's counts run on the
// clock itself.
func (s *Service) prepare(ctx context.Context, span trace.Span, req *decisionv1.DecideRequest, rawUserID string) pending {
	now := s.now()
	attemptTime := validate.TimeOr(req.GetTime(), now)
	if c := core.ClampTime(attemptTime, now, s.opts.ClockSkew); !c.Equal(attemptTime) {
		s.count.ClockClamped.Add(1)
		span.AddEvent("attempt time clamped", trace.WithAttributes(attribute.String("pushback.claimed_time", attemptTime.UTC().Format(time.RFC3339Nano))))
		attemptTime = c
	}
	req = proto.CloneOf(req)
	req.Time = timestamppb.New(attemptTime)

	pol := s.policy.Load()
	tier := pol.TierOf(req.GetAppId())
	resp := &decisionv1.DecideResponse{
		DecisionId:    ids.New(now),
		TraceId:       traceID(ctx),
		PolicyVersion: pol.Version,
	}
	guardKey := cooldownKey(req.GetTenant(), req.GetUserId())
	return pending{req: req, resp: resp, tier: tier.Name, groups: pol.GroupsOf(req.GetUserId(), req.GetGroups()),
		rawUserID: rawIfChanged(rawUserID, req.GetUserId()), key: string(guardKey), guardKey: guardKey,
		policyTier: tier,
		in: core.Input{Req: req, Policy: pol, Shadow: s.shadow.Load(), Tier: tier, Now: now.UnixMilli(), Budget: s.opts.Budget,
			AttemptID: guard.AttemptID(req.GetTenant(), req.GetUserId(), req.GetAttemptId(), resp.GetDecisionId())}}
}

// score asks scoring for the attempt's assessment by the deadline by, or
// fills in the tier's failure mode when scoring fails or the call is
// shed. Admission control: a saturated mesh answers at once from the
// guard instead of queueing for scoring and spending the budget first.
func (s *Service) score(ctx context.Context, span trace.Span, p *pending, by time.Time) {
	select {
	case s.admit <- struct{}{}:
		assessment, failErr := s.assess(ctx, p.req, by)
		<-s.admit
		if failErr != nil {
			p.in.Cause = decisionv1.FailureCause_FAILURE_CAUSE_SCORING_UNAVAILABLE
			p.scoringError = httpapi.CodeName(status.Code(failErr))
			span.AddEvent("scoring unavailable", trace.WithAttributes(attribute.String("pushback.scoring_error", p.scoringError)))
		} else {
			p.in.Assessment = assessment
		}
	default:
		p.in.Cause = decisionv1.FailureCause_FAILURE_CAUSE_SHED
		p.scoringError = "SHED"
		s.count.Shed.Add(1)
		span.AddEvent("shed: scoring not asked", trace.WithAttributes(attribute.Int("pushback.in_flight", cap(s.admit))))
	}
	if p.in.Assessment != nil {
		p.resp.Risk = p.in.Assessment
		return
	}
	s.count.FailureModeDecisions.Add(1)
	p.resp.FailureMode = p.policyTier.FailureMode
	p.resp.FailureCause = p.in.Cause
	p.resp.Risk = &scoringv1.RiskAssessment{UserId: p.req.GetUserId(), Time: p.req.GetTime()}
	span.SetAttributes(attribute.String("pushback.failure_mode", p.policyTier.FailureMode.String()), attribute.String("pushback.failure_cause", p.in.Cause.String()))
}

// judge has the guard judge the attempt in memory, under the user's lock,
// so this process orders and counts a user's attempts whatever the store
// does; the commit then stores the same state and the record. An attempt
// answered meanwhile (a retry that raced this call) is returned instead
// (ok true). Otherwise the entry counts one more commit to come, which
// committed ends.
func (s *Service) judge(ctx context.Context, e *guardEntry, p *pending) (a answer, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if a := e.answerOf(p.in.AttemptID, p.in.Now); a.id != (guard.ID{}) && p.req.GetAttemptId() != "" {
		return a, true
	}
	p.before = e.st.Clone()
	p.verdict = s.judged(ctx, &e.st, p.in)
	p.after = e.st.Clone()
	applyVerdict(p.resp, p.verdict)
	if p.req.GetAttemptId() != "" {
		e.remember(newAnswer(p.in.AttemptID, p.in.Now, p.req, p.resp))
	}
	e.pending++
	return answer{}, false
}

// store commits the judged decision within what is left of the budget,
// and answers: with the record stored, or, when the store could not take
// it, with the failure mode (and the decision stored after the answer).
func (s *Service) store(ctx context.Context, span trace.Span, e *guardEntry, p pending, start time.Time) (*decisionv1.DecideResponse, error) {
	// The commit gets at least a fifth of the budget even when scoring used
	// all of its share, but never runs past the budget plus a twentieth: a
	// scoring call that returned late must not carry the answer with it.
	commitDeadline := maxTime(start.Add(s.opts.Budget), time.Now().Add(s.opts.Budget/5))
	if hard := start.Add(s.opts.Budget + s.opts.Budget/20); commitDeadline.After(hard) {
		commitDeadline = hard
	}
	cctx, cancel := context.WithDeadline(ctx, commitDeadline)
	rec, stored, err := s.commitInTurn(cctx, e, p)
	cancel()
	if errors.Is(err, errAttemptReused) {
		return nil, apierr.AttemptReused("attempt_id", p.req.GetAttemptId())
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return s.notStored(ctx, span, e, p, err), nil
	}
	if stored != nil {
		// What the store held from elsewhere (another replica, or before a
		// restart), and a judgement made again on it, join memory.
		s.guards.update(p.key, p.in.Now, func(st *guard.State) { st.Merge(*stored, p.in.Now) })
	}
	resp := rec.GetResponse()
	if p.req.GetAttemptId() != "" && (resp.GetReplayed() || resp.GetOutcome() != p.resp.GetOutcome() || resp.GetNumberChallenge() != p.resp.GetNumberChallenge()) {
		// The answer stored is the one a retry gets: another replica
		// answered this attempt first, or its attempts made the commit
		// judge it again.
		e.mu.Lock()
		e.setAnswer(p.in.AttemptID, rec.GetRequest(), resp)
		e.mu.Unlock()
	}
	if resp.GetReplayed() {
		// A concurrent call with the same attempt id committed first.
		s.count.Replays.Add(1)
		return resp, nil
	}
	s.decided(ctx, span, p, rec)
	return resp, nil
}

// notStored answers a decision the store did not take in time (see
// unrecorded), remembers that answer for a retry, and stores the decision
// after the answer unless the store's circuit is open.
func (s *Service) notStored(ctx context.Context, span trace.Span, e *guardEntry, p pending, err error) *decisionv1.DecideResponse {
	resp := s.unrecorded(ctx, span, p, p.policyTier, err)
	if p.req.GetAttemptId() != "" {
		e.mu.Lock()
		e.setAnswer(p.in.AttemptID, nil, resp)
		e.mu.Unlock()
	}
	if !errors.Is(err, store.ErrUnavailable) {
		// The store ran late, or failed once: store the answer after it.
		// (A store whose circuit is open would only fail again.)
		late, actx := proto.CloneOf(resp), context.WithoutCancel(ctx)
		s.after.run(func() { s.writeLate(actx, p, late) })
	}
	return resp
}

// decided counts and traces a stored decision and, for a suppressed push,
// runs what follows it after the answer: the caller's deadline must not
// wait for scoring and notify, and neither call may die with the
// caller's context.
func (s *Service) decided(ctx context.Context, span trace.Span, p pending, rec *decisionv1.DecisionRecord) {
	resp := rec.GetResponse()
	s.count.Decisions.Add(1)
	s.tel.decided(ctx, resp)
	if rec.GetCooldownCleared() {
		s.count.CooldownsCleared.Add(1)
		s.log.InfoContext(ctx, "cooldown cleared by a phishing-resistant authentication", slog.String("decision_id", resp.GetDecisionId()))
	}
	if p.in.Shadow != nil {
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
		actx, req := context.WithoutCancel(ctx), p.req
		s.after.run(func() { s.afterDecision(actx, req, resp) })
	}
}

// keepTrace marks the decision's trace for export whatever head sampling
// chose when someone may come looking for it: the answer was not a plain
// ALLOW (a SOC alert or the user's complaint names its trace id), came
// from a failure mode, or the call failed.
func keepTrace(span trace.Span, resp *decisionv1.DecideResponse, err error) {
	switch {
	case err != nil:
		telemetry.Keep(span, telemetry.KeepError)
	case resp.GetFailureMode() != decisionv1.FailureMode_FAILURE_MODE_UNSPECIFIED:
		telemetry.Keep(span, telemetry.KeepFailureMode)
	case resp.GetOutcome() != decisionv1.Outcome_OUTCOME_ALLOW:
		telemetry.Keep(span, telemetry.KeepOutcome)
	}
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
	s.logStoreFailure(ctx, "store decision; answering with the failure mode", err)
	resp := p.resp
	if fo := core.FailureOutcome(tier.FailureMode); policy.Stricter(fo, resp.GetOutcome()) && !core.PhishingResistant(p.req.GetFactor()) {
		resp.Outcome = fo
	}
	if pushes(resp.GetOutcome()) && !core.PhishingResistant(p.req.GetFactor()) {
		switch {
		case !p.verdict.Counted:
			// A retry of an attempt already counted, whose answer this
			// process no longer holds and the store cannot give: never a
			// second push for one attempt.
			resp.Outcome = decisionv1.Outcome_OUTCOME_DENY
			resp.Reasons = append(resp.Reasons, "a retry of an attempt already counted, whose answer cannot be read: no second push")
		case s.opts.SharedStore:
			// Other replicas count this user's attempts in the store too;
			// without it this process cannot know how many pushes went out.
			resp.Outcome = decisionv1.Outcome_OUTCOME_REQUIRE_PHISHING_RESISTANT
			resp.Reasons = append(resp.Reasons, "the shared store that counts pushes across replicas is unavailable: no push is sent; a phishing-resistant factor still works")
		}
	}
	if resp.GetOutcome() == decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH && resp.GetNumberChallenge() == "" {
		resp.NumberChallenge = challenge()
	}
	resp.FailureMode = tier.FailureMode
	if resp.GetFailureCause() == decisionv1.FailureCause_FAILURE_CAUSE_UNSPECIFIED {
		resp.FailureCause = decisionv1.FailureCause_FAILURE_CAUSE_STORE_UNAVAILABLE
	}
	resp.Reasons = append(resp.Reasons, fmt.Sprintf("decision store unavailable: not recorded (the attempt still counts in this process); %s tier fails %s", tier.Name, core.FailureName(tier.FailureMode)))
	span.SetAttributes(attribute.String("pushback.decision_id", resp.GetDecisionId()), attribute.String("pushback.outcome", resp.GetOutcome().String()),
		attribute.String("pushback.failure_mode", tier.FailureMode.String()), attribute.String("pushback.policy_version", resp.GetPolicyVersion()))
	s.tel.decided(ctx, resp)
	return resp
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

// judged runs core.Judge in a span. A rule that fails to evaluate does not
// match; the failure is logged and counted.
func (s *Service) judged(ctx context.Context, st *guard.State, in core.Input) core.Verdict {
	_, span := s.tracer.Start(ctx, "decision.policy")
	defer span.End()
	v := core.Judge(st, in)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("pushback.outcome", v.Outcome.String()), attribute.StringSlice("pushback.rules", v.Matched),
			attribute.String("pushback.policy_version", in.Policy.Version), attribute.String("pushback.tier", in.Tier.Name),
			attribute.Int("pushback.score", int(in.Assessment.GetScore())))
		if v.Shadow != nil {
			span.SetAttributes(attribute.String("pushback.shadow_outcome", v.Shadow.Outcome.String()))
		}
	}
	if v.RuleError != nil {
		s.count.RuleErrors.Add(1)
		s.log.WarnContext(ctx, "policy rule failed to evaluate", slog.String("policy_version", in.Policy.Version), slog.Any("error", v.RuleError))
	}
	return v
}

// applyVerdict writes v into the answer.
func applyVerdict(resp *decisionv1.DecideResponse, v core.Verdict) {
	resp.Outcome = v.Outcome
	resp.MatchedRules = v.Matched
	resp.Reasons = v.Reasons
	resp.CooldownContext = v.Context
	resp.Cooldown = nil
	if v.Cooldown > 0 {
		resp.Cooldown = durationpb.New(v.Cooldown)
	}
	resp.NumberChallenge = ""
	if v.Outcome == decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH {
		resp.NumberChallenge = challenge()
	}
}

// legacyCooldown reads the per-user state written before the guard kept
// attempts: a cooldown alone.
func legacyCooldown(b []byte) guard.State {
	until, n := binary.Varint(b)
	if n <= 0 {
		return guard.State{}
	}
	level, m := binary.Uvarint(b[n:])
	if m <= 0 {
		return guard.State{}
	}
	since, _ := binary.Varint(b[n+m:])
	return guard.State{Cooldown: guard.Cooldown{Until: until, Level: int(level), Since: since}}
}

// decodeGuard reads a user's stored guard state, in either layout.
func decodeGuard(b []byte) guard.State {
	if st, err := guard.Unmarshal(b); err == nil {
		return st
	}
	return legacyCooldown(b)
}

// pending is a decision on its way to the store.
type pending struct {
	req  *decisionv1.DecideRequest
	resp *decisionv1.DecideResponse
	in   core.Input
	// verdict was judged on before, which became after.
	verdict       core.Verdict
	before, after guard.State
	tier          string
	groups        []string
	scoringError  string
	// rawUserID is the user id as sent, when it differs from req's.
	rawUserID string
	// memoryHolds is set when memory holds all the store does of the
	// user's guard state (see commitInTurn).
	memoryHolds bool
	// key is the user's guard key, guardKey its store key (the same bytes,
	// never changed: the store may hold them until its commit); policyTier
	// the tier of the application.
	key        string
	guardKey   []byte
	policyTier policy.Tier
}

// commit stores the decision, the attempt index, the user index and the
// user's guard state in one transaction. The stored guard state and the one
// in memory merge; when the store holds attempts memory did not (another
// replica's), the attempt is judged again on all of them, so replicas
// sharing a store order one user's attempts too. If a concurrent request
// with the same attempt id won the race, its record is returned instead,
// marked replayed. stored is the guard state written.
func (s *Service) commit(ctx context.Context, p pending) (*decisionv1.DecisionRecord, *guard.State, error) {
	var out *decisionv1.DecisionRecord
	var stored *guard.State
	err := s.opts.Store.Update(ctx, func(tx store.Txn) error {
		out, stored = nil, nil
		rec, err := s.storedAttempt(tx, p)
		if err != nil || rec != nil {
			out = rec
			return err
		}
		held, err := s.heldState(tx, p)
		if err != nil {
			return err
		}
		rec, st := s.judgedWith(p, held)
		if err := s.write(tx, p, rec, st); err != nil {
			return err
		}
		out, stored = rec, &st
		return nil
	})
	return out, stored, err
}

// storedAttempt returns the record of the attempt's id, when one is
// stored (marked replayed), or errAttemptReused when that record is for
// a different request or long past its push.
func (s *Service) storedAttempt(tx store.Txn, p pending) (*decisionv1.DecisionRecord, error) {
	req := p.req
	if req.GetAttemptId() == "" {
		return nil, nil
	}
	id, err := tx.Get(attemptKey(req))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	b, err := tx.Get(decisionKey(string(id)))
	if err != nil {
		return nil, err
	}
	rec := &decisionv1.DecisionRecord{}
	if err := proto.Unmarshal(b, rec); err != nil {
		return nil, err
	}
	if !sameAttempt(rec.GetRequest(), req) {
		return nil, errAttemptReused
	}
	if p.in.Now-rec.GetDecidedAt().AsTime().UnixMilli() > ReplayWindow.Milliseconds() {
		// Long after its push expired: a replayed ALLOW would be a push
		// nobody counted.
		return nil, errAttemptReused
	}
	rec.Response.Replayed = true
	return rec, nil
}

// heldState is the user's guard state the store holds, unless memory
// holds all of it (see commitInTurn).
func (s *Service) heldState(tx store.Txn, p pending) (guard.State, error) {
	if p.memoryHolds {
		return guard.State{}, nil
	}
	b, err := tx.Get(p.guardKey)
	if errors.Is(err, store.ErrNotFound) {
		return guard.State{}, nil
	}
	if err != nil {
		return guard.State{}, err
	}
	return decodeGuard(b), nil
}

// judgedWith merges the held state into the one judged in memory and
// returns the record to store with the merged state. When the store held
// attempts or a cooldown memory had not seen, the attempt is judged again
// on everything known, and the record holds that answer.
func (s *Service) judgedWith(p pending, held guard.State) (*decisionv1.DecisionRecord, guard.State) {
	v, st := p.verdict, p.after.Clone()
	rejudged := !covers(p.after, held, p.in.Now)
	if rejudged {
		s.count.GuardConflicts.Add(1)
		st = held.Clone()
		st.Merge(p.before, p.in.Now)
		v = core.Judge(&st, p.in)
	}
	st.Merge(held, p.in.Now)
	// The answer as judged in memory, unless the store's state made the
	// commit judge it again.
	r := p.resp
	if rejudged {
		r = proto.CloneOf(p.resp)
		applyVerdict(r, v)
		if p.resp.GetOutcome() == r.GetOutcome() {
			r.NumberChallenge = p.resp.GetNumberChallenge()
		}
	}
	return s.record(p, r, v), st
}

// record is the audit record of the answer r, judged as v.
func (s *Service) record(p pending, r *decisionv1.DecideResponse, v core.Verdict) *decisionv1.DecisionRecord {
	rec := &decisionv1.DecisionRecord{DecisionId: r.GetDecisionId(), Request: p.req, Response: r, Tier: p.tier, Groups: p.groups,
		ScoringError: p.scoringError, CooldownCleared: v.Cleared, RawUserId: p.rawUserID, DecidedAt: timestamppb.New(s.now())}
	if v.Shadow != nil {
		rec.ShadowOutcome = v.Shadow.Outcome
		rec.ShadowPolicyVersion = p.in.Shadow.Version
		rec.ShadowMatchedRules = slices.Clone(v.Shadow.Matched)
		rec.ShadowReasons = slices.Clone(v.Shadow.Reasons)
		rec.ShadowDiffers = v.Shadow.Outcome != r.GetOutcome()
	}
	return rec
}

// write stores rec, its indexes and the user's guard state st in tx.
func (s *Service) write(tx store.Txn, p pending, rec *decisionv1.DecisionRecord, st guard.State) error {
	req := p.req
	ttl := guard.Horizon + p.in.Policy.Cooldown.Max
	if st.Active(p.in.Now) {
		ttl += time.Duration(st.Cooldown.Until-p.in.Now) * time.Millisecond
	}
	if err := tx.Set(p.guardKey, st.Marshal(), ttl); err != nil {
		return err
	}
	b, err := proto.Marshal(rec)
	if err != nil {
		return err
	}
	id := rec.GetDecisionId()
	if err := tx.Set(decisionKey(id), b, s.opts.Retention); err != nil {
		return err
	}
	// Both indexes hold the id; the store only reads the value.
	idValue := []byte(id)
	if err := tx.Set(userIndexKey(req.GetTenant(), req.GetUserId(), rec.GetDecidedAt().AsTime(), id), idValue, s.opts.Retention); err != nil {
		return err
	}
	if req.GetAttemptId() != "" {
		return tx.Set(attemptKey(req), idValue, s.opts.Retention)
	}
	return nil
}

// writeLate stores, after the answer, a decision whose commit missed its
// deadline: the answer given and the guard state, so that a store that only
// ran late (a flood, a busy machine) loses no decision. An attempt another
// replica stored meanwhile is left as it is.
func (s *Service) writeLate(ctx context.Context, p pending, resp *decisionv1.DecideResponse) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.NotifyTimeout)
	defer cancel()
	rec := s.record(p, resp, p.verdict)
	err := s.opts.Store.Update(ctx, func(tx store.Txn) error {
		if p.req.GetAttemptId() != "" {
			if _, err := tx.Get(attemptKey(p.req)); err == nil {
				return nil
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		st := p.after.Clone()
		if b, err := tx.Get(p.guardKey); err == nil {
			st.Merge(decodeGuard(b), p.in.Now)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return s.write(tx, p, rec, st)
	})
	if err != nil {
		s.count.LateWriteFailures.Add(1)
		s.logStoreFailure(ctx, "store a decision after its answer", err)
		return
	}
	s.count.LateWrites.Add(1)
}

// logStoreFailure logs a store failure at most once a second: a flood or an
// outage fails every call, and one line says as much as thousands.
func (s *Service) logStoreFailure(ctx context.Context, what string, err error) {
	now := time.Now().UnixNano()
	last := s.storeLogged.Load()
	if now-last < int64(time.Second) || !s.storeLogged.CompareAndSwap(last, now) {
		return
	}
	s.log.ErrorContext(ctx, what, slog.Any("error", err), slog.Int64("store_failures", s.count.StoreFailures.Load()),
		slog.Int64("late_write_failures", s.count.LateWriteFailures.Load()))
}

// commitInTurn runs commit when the user's earlier commits in this
// process are done (or fails when ctx ends first).
func (s *Service) commitInTurn(ctx context.Context, e *guardEntry, p pending) (*decisionv1.DecisionRecord, *guard.State, error) {
	select {
	case e.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	defer func() { <-e.turn }()
	// Only this process writes an exclusive store: once memory has merged
	// what the store held for the user, the store holds nothing memory
	// lacks, and the commit writes without reading the guard state back.
	p.memoryHolds = !s.opts.SharedStore && e.synced.Load()
	rec, stored, err := s.commit(ctx, p)
	if err == nil && !s.opts.SharedStore {
		e.synced.Store(true)
	}
	return rec, stored, err
}

// replay answers a retry from the answer given to its attempt.
func (s *Service) replay(req *decisionv1.DecideRequest, a answer) (*decisionv1.DecideResponse, error) {
	if a.attempt != attemptOf(req) {
		return nil, apierr.AttemptReused("attempt_id", req.GetAttemptId())
	}
	r := &decisionv1.DecideResponse{}
	if err := proto.Unmarshal(a.resp, r); err != nil {
		return nil, apierr.Internal()
	}
	s.count.Replays.Add(1)
	r.Replayed = true
	return r, nil
}

// pushes reports whether the answer lets a push be sent.
func pushes(o decisionv1.Outcome) bool {
	return o == decisionv1.Outcome_OUTCOME_ALLOW || o == decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH
}

// covers reports whether mem already holds everything in held that still
// counts at now: its attempts (those memory could keep), a cooldown no
// later and no later clearing.
func covers(mem, held guard.State, now int64) bool {
	full := len(mem.Attempts) >= guard.MaxAttempts
	for _, a := range held.Attempts {
		if a.At <= now-guard.Horizon.Milliseconds() || full && a.At < mem.Attempts[0].At {
			continue
		}
		if !mem.Has(a.ID) {
			return false
		}
	}
	return held.Cooldown.Until <= mem.Cooldown.Until && held.Cooldown.Level <= mem.Cooldown.Level && held.ClearedAt <= mem.ClearedAt
}

// errAttemptReused is what commit returns for an attempt id already
// decided for a different request.
var errAttemptReused = errors.New("attempt id reused for a different request")

// sameAttempt reports whether a retried request is the attempt that was
// decided: the same application, factor, session and client. Returning the
// stored answer for anything else would let a reused id skip the policy.
func sameAttempt(stored, retry *decisionv1.DecideRequest) bool {
	return attemptOf(stored) == attemptOf(retry)
}

// attempt is what makes two requests the same attempt.
type attempt struct {
	app, session, ip, device string
	factor                   eventv1.Factor
}

func attemptOf(r *decisionv1.DecideRequest) attempt {
	return attempt{app: r.GetAppId(), session: r.GetSessionId(), ip: r.GetClient().GetIp(), device: r.GetClient().GetDeviceId(), factor: r.GetFactor()}
}

// CooldownRule is the name reported among the matched rules when a cooldown
// decided.
const CooldownRule = core.CooldownRule

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

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
