// Package scoring keeps per-user push and location state and turns a push
// attempt into an explainable RiskAssessment: a score 0-100 and the signals,
// each with its weight and evidence, that produced it.
package scoring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/validate"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// MaxObserveBatch caps the events of one Observe call.
const MaxObserveBatch = 1000

// Options configures the service.
type Options struct {
	Store  store.Store
	Config Config
	Logger *slog.Logger
	// Now is the clock (time.Now when nil).
	Now    func() time.Time
	Tracer trace.Tracer
}

// Service implements scoringv1.ScoringServiceServer.
type Service struct {
	scoringv1.UnimplementedScoringServiceServer
	store  store.Store
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	tracer trace.Tracer
	hub    *hub
}

// New returns the scoring service.
func New(opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Config.Windows == nil {
		opts.Config = DefaultConfig()
	}
	if opts.Tracer == nil {
		opts.Tracer = trace.NewNoopTracerProvider().Tracer("scoring")
	}
	return &Service{store: opts.Store, cfg: opts.Config, log: opts.Logger, now: opts.Now, tracer: opts.Tracer, hub: newHub(16)}
}

// Register adds the service to a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) { scoringv1.RegisterScoringServiceServer(r, s) }

func userKey(tenant, user string) []byte {
	return fmt.Appendf(nil, "scoring/user/%s/%s", tenant, user)
}

// Assess implements the RPC.
func (s *Service) Assess(ctx context.Context, req *scoringv1.AssessRequest) (*scoringv1.AssessResponse, error) {
	a := req.GetAttempt()
	var v apierr.Violations
	if a == nil {
		v.Add("attempt", "is required")
		return nil, v.Err()
	}
	validate.ID(&v, "attempt.user_id", a.GetUserId(), true)
	validate.ID(&v, "attempt.tenant", a.GetTenant(), false)
	validate.ID(&v, "attempt.attempt_id", a.GetAttemptId(), false)
	validate.ID(&v, "attempt.app_id", a.GetAppId(), false)
	validate.Enum(&v, "attempt.factor", int32(a.GetFactor()), eventv1.Factor_name, false)
	validate.Time(&v, "attempt.time", a.GetTime())
	validate.Client(&v, "attempt.client", a.GetClient())
	if err := v.Err(); err != nil {
		return nil, err
	}
	now := validate.TimeOr(a.GetTime(), s.now())
	ctx, span := s.tracer.Start(ctx, "scoring.assess")
	defer span.End()

	var ra *scoringv1.RiskAssessment
	key := userKey(a.GetTenant(), a.GetUserId())
	if !req.GetRecord() {
		st, err := s.load(ctx, key)
		if err != nil {
			return nil, err
		}
		ra = s.cfg.Assess(a.GetUserId(), st, now)
	} else {
		obs := Observation{ID: attemptID(a.GetAttemptId()), Kind: ObsAttempt, At: now, Client: clientInfo(a.GetClient())}
		err := s.store.Update(ctx, func(tx store.Txn) error {
			st, err := decodeState(tx.Get(key))
			if err != nil {
				return err
			}
			s.cfg.Apply(st, obs)
			ra = s.cfg.Assess(a.GetUserId(), st, now)
			return s.save(tx, key, st)
		})
		if err != nil {
			s.log.ErrorContext(ctx, "record attempt", slog.Any("error", err))
			return nil, apierr.StoreUnavailable()
		}
		s.hub.publish(a.GetUserId(), ra)
	}
	span.SetAttributes(attribute.Int("pushback.score", int(ra.GetScore())), attribute.StringSlice("pushback.signals", codes(ra)))
	return &scoringv1.AssessResponse{Assessment: ra}, nil
}

func attemptID(id string) string {
	if id == "" {
		return ""
	}
	return "attempt:" + id
}

// Observe implements the RPC.
func (s *Service) Observe(ctx context.Context, req *scoringv1.ObserveRequest) (*scoringv1.ObserveResponse, error) {
	if n := len(req.GetEvents()); n > MaxObserveBatch {
		return nil, apierr.TooLarge("events", n, MaxObserveBatch)
	}
	var v apierr.Violations
	for i, e := range req.GetEvents() {
		validate.Event(&v, fmt.Sprintf("events[%d]", i), e)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	resp := &scoringv1.ObserveResponse{}
	for _, e := range req.GetEvents() {
		kind, ok := observationKind(e.GetType())
		if !ok {
			resp.Skipped++
			continue
		}
		obs := Observation{ID: "event:" + e.GetEventId(), Kind: kind, At: e.GetTime().AsTime(), Client: clientInfo(e.GetClient()),
			PhishingResistant: e.GetFactor() == eventv1.Factor_FACTOR_WEBAUTHN || e.GetFactor() == eventv1.Factor_FACTOR_SMART_CARD}
		key := userKey(e.GetTenant(), e.GetUserId())
		var applied bool
		var ra *scoringv1.RiskAssessment
		err := s.store.Update(ctx, func(tx store.Txn) error {
			st, err := decodeState(tx.Get(key))
			if err != nil {
				return err
			}
			applied = s.cfg.Apply(st, obs)
			if !applied {
				return nil
			}
			ra = s.cfg.Assess(e.GetUserId(), st, time.UnixMilli(st.UpdatedAt))
			return s.save(tx, key, st)
		})
		if err != nil {
			s.log.ErrorContext(ctx, "observe event", slog.Any("error", err))
			return nil, apierr.StoreUnavailable()
		}
		if applied {
			resp.Applied++
			s.hub.publish(e.GetUserId(), ra)
		} else {
			resp.Skipped++
		}
	}
	return resp, nil
}

// GetRisk implements the RPC.
func (s *Service) GetRisk(ctx context.Context, req *scoringv1.GetRiskRequest) (*scoringv1.GetRiskResponse, error) {
	var v apierr.Violations
	validate.ID(&v, "user_id", req.GetUserId(), true)
	validate.Time(&v, "time", req.GetTime())
	if err := v.Err(); err != nil {
		return nil, err
	}
	validate.ID(&v, "tenant", req.GetTenant(), false)
	if err := v.Err(); err != nil {
		return nil, err
	}
	st, err := s.load(ctx, userKey(req.GetTenant(), req.GetUserId()))
	if err != nil {
		return nil, err
	}
	now := validate.TimeOr(req.GetTime(), s.now())
	return &scoringv1.GetRiskResponse{Assessment: s.cfg.Assess(req.GetUserId(), st, now)}, nil
}

// WatchRisk implements the RPC: the current risk first, then every change.
// A subscriber that falls behind loses intermediate updates and receives the
// newest assessment marked resync, never blocking scoring.
func (s *Service) WatchRisk(req *scoringv1.WatchRiskRequest, stream grpc.ServerStreamingServer[scoringv1.WatchRiskResponse]) error {
	var v apierr.Violations
	validate.ID(&v, "user_id", req.GetUserId(), true)
	if err := v.Err(); err != nil {
		return err
	}
	ctx := stream.Context()
	sub := s.hub.subscribe(req.GetUserId())
	defer s.hub.unsubscribe(sub)
	st, err := s.load(ctx, userKey(req.GetTenant(), req.GetUserId()))
	if err != nil {
		return err
	}
	if err := stream.Send(&scoringv1.WatchRiskResponse{Assessment: s.cfg.Assess(req.GetUserId(), st, s.now())}); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.notify:
			ra, resync := sub.take()
			if ra == nil {
				continue
			}
			if err := stream.Send(&scoringv1.WatchRiskResponse{Assessment: ra, Resync: resync}); err != nil {
				return err
			}
		}
	}
}

func (s *Service) load(ctx context.Context, key []byte) (*UserState, error) {
	b, err := s.store.Get(ctx, key)
	st, err := decodeState(b, err)
	if err != nil {
		s.log.ErrorContext(ctx, "load user state", slog.Any("error", err))
		return nil, apierr.StoreUnavailable()
	}
	return st, nil
}

func (s *Service) save(tx store.Txn, key []byte, st *UserState) error {
	b, err := st.MarshalBinary()
	if err != nil {
		return err
	}
	return tx.Set(key, b, s.cfg.IdleTTL)
}

// decodeState turns a store read into a state; a missing key is a new user.
func decodeState(b []byte, err error) (*UserState, error) {
	st := &UserState{}
	if errors.Is(err, store.ErrNotFound) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := st.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return st, nil
}

func observationKind(t eventv1.EventType) (ObservationKind, bool) {
	switch t {
	case eventv1.EventType_EVENT_TYPE_PUSH_SENT:
		return ObsPushSent, true
	case eventv1.EventType_EVENT_TYPE_PUSH_APPROVED:
		return ObsPushApproved, true
	case eventv1.EventType_EVENT_TYPE_PUSH_DENIED:
		return ObsPushDenied, true
	case eventv1.EventType_EVENT_TYPE_PUSH_TIMED_OUT:
		return ObsPushTimedOut, true
	case eventv1.EventType_EVENT_TYPE_PUSH_SUPPRESSED:
		return ObsPushSuppressed, true
	case eventv1.EventType_EVENT_TYPE_PUSH_REQUESTED:
		return ObsAttempt, true
	case eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED:
		return ObsFraudReported, true
	case eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED:
		return ObsLoginSucceeded, true
	case eventv1.EventType_EVENT_TYPE_LOGIN_FAILED:
		return ObsLoginFailed, true
	case eventv1.EventType_EVENT_TYPE_NUMBER_CHALLENGE_FAILED:
		return ObsNumberChallengeFailed, true
	case eventv1.EventType_EVENT_TYPE_FACTOR_ENROLLED:
		return ObsFactorEnrolled, true
	}
	return 0, false
}

func clientInfo(c *eventv1.Client) ClientInfo {
	if c == nil {
		return ClientInfo{}
	}
	ci := ClientInfo{IP: c.GetIp(), DeviceID: c.GetDeviceId(), ASN: c.GetAsn()}
	if g := c.GetGeo(); g != nil {
		ci.Country, ci.City = g.GetCountry(), g.GetCity()
		ci.Lat, ci.Lon, ci.AccuracyKm = g.GetLatitude(), g.GetLongitude(), g.GetAccuracyKm()
		ci.HasGeo = !(ci.Lat == 0 && ci.Lon == 0)
	}
	return ci
}

func codes(ra *scoringv1.RiskAssessment) []string {
	out := make([]string, 0, len(ra.GetSignals()))
	for _, s := range ra.GetSignals() {
		out = append(out, s.GetCode())
	}
	return out
}

// clone keeps a published assessment immutable for every subscriber.
func clone(ra *scoringv1.RiskAssessment) *scoringv1.RiskAssessment {
	return proto.Clone(ra).(*scoringv1.RiskAssessment)
}
