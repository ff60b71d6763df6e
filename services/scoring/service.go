// Package scoring is the scoring service: it keeps per-user push and
// location state and per-source spray state in the store and turns a push
// attempt into an explainable RiskAssessment (a score 0-100 and the
// signals, each with its weight and evidence, that produced it) with the
// pure engine of package engine.
package scoring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/geo"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/telemetry"
	"github.com/pushbackhq/pushback/pkg/userid"
	"github.com/pushbackhq/pushback/pkg/validate"
	"github.com/pushbackhq/pushback/services/scoring/engine"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Options configures the service.
type Options struct {
	Store  store.Store
	Config engine.Config
	Logger *slog.Logger
	// Now is the clock (time.Now when nil).
	Now    func() time.Time
	Tracer trace.Tracer
	// Meter records the service's metrics (none when nil).
	Meter metric.Meter
	// Redactor hashes user ids, IPs and device ids in spans (a per-process
	// random key when nil).
	Redactor *telemetry.Redactor
	// GeoIPDB names MaxMind-format databases (comma separated, for example
	// a City and an ASN database) that fill the location and network of
	// events that arrive without them. Empty disables enrichment.
	GeoIPDB string
	// GeoIP is an already open database; it wins over GeoIPDB and stays
	// owned by the caller.
	GeoIP *geo.DB
	// MaxFutureSkew is how far ahead of the clock an event or attempt time
	// may lie (default 5m); a later time is taken as the clock plus this.
	// A user's state never moves ahead of it: one event dated years ahead
	// would otherwise make every real push look years old, and blind
	// scoring to that user.
	MaxFutureSkew time.Duration
	// SharedStore is set when other processes write the store too
	// (replicas on Redis). Otherwise the service keeps its sources' recent
	// users in memory (see sourceCache).
	SharedStore bool
	// UserIDs canonicalises user ids (the default fold rule when nil).
	// Decide and intake send canonical ids already; scoring applies the
	// rule again (it is idempotent, and cheap for an id already canonical)
	// so that a caller that did not (an older intake mid-upgrade, a reader
	// asking for "Bob") still meets the one state of the user.
	UserIDs *userid.Rules
}

// Service implements scoringv1.ScoringServiceServer.
type Service struct {
	scoringv1.UnimplementedScoringServiceServer
	users  *userid.Rules
	store  store.Store
	cfg    engine.Config
	log    *slog.Logger
	now    func() time.Time
	skew   time.Duration
	tracer trace.Tracer
	tel    *instruments
	hub    *hub
	feed   *feed
	geo    *geo.DB
	ownGeo bool
	// sources keeps the sources' recent users in memory when no other
	// process writes the store (nil otherwise).
	sources *sourceCache
	// failed counts the attempts that could not be assessed; failLogged is
	// when that was last logged (unix ns): a flood or an outage fails
	// thousands, and one line a second says as much.
	failed, failLogged atomic.Int64
}

// notAhead returns t, or the clock plus the allowed skew when t is later.
func (s *Service) notAhead(t time.Time) time.Time {
	if limit := s.now().Add(s.skew); t.After(limit) {
		return limit
	}
	return t
}

// Open returns the scoring service, opening the GeoIP databases named by
// opts.GeoIPDB; a database that cannot be opened is an error.
func Open(opts Options) (*Service, error) {
	var db *geo.DB
	if opts.GeoIP == nil && opts.GeoIPDB != "" {
		var err error
		if db, err = geo.Open(opts.GeoIPDB); err != nil {
			return nil, err
		}
		opts.GeoIP = db
	}
	s := New(opts)
	s.ownGeo = db != nil
	return s, nil
}

// Close releases the GeoIP databases the service opened.
func (s *Service) Close() error {
	if s.ownGeo && s.geo != nil {
		return s.geo.Close()
	}
	return nil
}

// New returns the scoring service. Prefer Open when GeoIPDB is set: New
// logs a database that cannot be opened and runs without enrichment.
func New(opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxFutureSkew <= 0 {
		opts.MaxFutureSkew = 5 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Config.Windows == nil {
		opts.Config = engine.DefaultConfig()
	}
	if opts.Tracer == nil {
		opts.Tracer = noop.NewTracerProvider().Tracer("scoring")
	}
	svc := &Service{users: opts.UserIDs, store: opts.Store, cfg: opts.Config, log: opts.Logger, now: opts.Now, skew: opts.MaxFutureSkew, tracer: opts.Tracer, hub: newHub(), feed: newFeed(), geo: opts.GeoIP,
		tel: newInstruments(opts.Meter, opts.Redactor)}
	if !opts.SharedStore && opts.Config.Spray.Window > 0 {
		svc.sources = newSourceCache(maxCachedSources, opts.Config.Spray)
	}
	if svc.geo == nil && opts.GeoIPDB != "" {
		db, err := geo.Open(opts.GeoIPDB)
		if err != nil {
			opts.Logger.Error("geoip database unavailable; events without geo stay unknown", slog.Any("error", err))
		} else {
			svc.geo, svc.ownGeo = db, true
		}
	}
	return svc
}

// Register adds the service to a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) { scoringv1.RegisterScoringServiceServer(r, s) }

func userKey(tenant, user string) []byte {
	return store.JoinKey("scoring/user", store.KeyPart(tenant), store.KeyPart(user))
}

// Assess implements the RPC.
func (s *Service) Assess(ctx context.Context, req *scoringv1.AssessRequest) (*scoringv1.AssessResponse, error) {
	if err := validate.Request(ctx, req); err != nil {
		return nil, err
	}
	a := req.GetAttempt()
	var v apierr.Violations
	user := s.users.Check(&v, "attempt.user_id", a.GetTenant(), a.GetUserId())
	if err := v.Err(); err != nil {
		return nil, err
	}
	now := s.notAhead(validate.TimeOr(a.GetTime(), s.now()))
	ctx, span := s.tracer.Start(ctx, "scoring.assess")
	defer span.End()

	obs := engine.Observation{ID: attemptID(a.GetAttemptId()), Kind: engine.ObsAttempt, At: now, Client: s.clientInfo(a.GetClient())}
	var ra *scoringv1.RiskAssessment
	var err error
	// A phishing-resistant factor sends no push: it is assessed, never
	// counted as one (an attacker's burst must not turn the user's own way
	// in into the burst's next push).
	if req.GetRecord() && !engine.PhishingResistant(a.GetFactor()) {
		ra, _, err = s.record(ctx, a.GetTenant(), user, obs, func() *eventv1.AuthEvent { return attemptEvent(a, user, now) })
	} else {
		ra, err = s.preview(ctx, a.GetTenant(), user, obs)
	}
	if err != nil {
		s.logFailure(ctx, "assess attempt", err)
		return nil, apierr.StoreUnavailable()
	}
	s.tel.assessed(ctx, ra)
	if span.IsRecording() {
		s.tel.annotate(span, user, ra)
	}
	return &scoringv1.AssessResponse{Assessment: ra}, nil
}

// record applies obs to the user's state and to the spray state of its
// source in one transaction and publishes the new assessment.
func (s *Service) record(ctx context.Context, tenant, user string, obs engine.Observation, event func() *eventv1.AuthEvent) (*scoringv1.RiskAssessment, bool, error) {
	key := userKey(tenant, user)
	var ra *scoringv1.RiskAssessment
	var applied bool
	var marks map[string][]engine.SourceUser
	err := s.store.Update(ctx, func(tx store.Txn) error {
		if s.sources != nil {
			// The marks this transaction writes, for the cache once it
			// has committed.
			marks = map[string][]engine.SourceUser{}
		}
		st, err := s.decodeState(tx.Get(key))
		if err != nil {
			return err
		}
		if ra, applied, err = s.apply(ctx, tx, tenant, user, st, obs, marks); err != nil || !applied {
			return err
		}
		if err := s.noteChange(tx, tenant, ra, scoringv1.Origin_ORIGIN_DECIDE, event); err != nil {
			return err
		}
		return s.save(tx, key, st)
	})
	if err != nil {
		return nil, false, err
	}
	s.sources.committed(marks)
	if applied {
		s.hub.publish(tenant, user, ra)
		if len(ra.GetSignals()) > 0 {
			s.feed.kick()
		}
	}
	return ra, applied, nil
}

// apply folds obs into st inside tx, with the spray state of its source
// kept in the store (see sources).
//
// marks, when set, holds the source marks this transaction wrote (pushes
// and vouches) but the store's scan cannot see yet (a batch of several
// events).
func (s *Service) apply(ctx context.Context, tx store.Txn, tenant, user string, st *engine.UserState, obs engine.Observation, marks map[string][]engine.SourceUser) (*scoringv1.RiskAssessment, bool, error) {
	return s.cfg.Observe(&sources{ctx: ctx, s: s, tx: tx, marks: marks}, tenant, user, st, obs)
}

// observeChunk is how many events one Observe transaction folds in: one
// commit per chunk instead of one per event, small enough that a conflict
// with a concurrent decision retries little work.
const observeChunk = 100

type observed struct {
	tenant, user string
	obs          engine.Observation
	// event is the ingested event, for the risk-change feed.
	event *eventv1.AuthEvent
}

// recordBatch applies events in order, one transaction per chunk, and
// returns how many were applied.
func (s *Service) recordBatch(ctx context.Context, items []observed) (int, error) {
	total := 0
	for start := 0; start < len(items); start += observeChunk {
		chunk := items[start:min(start+observeChunk, len(items))]
		type change struct {
			tenant, user string
			ra           *scoringv1.RiskAssessment
		}
		var changes []change
		var marks map[string][]engine.SourceUser
		err := s.store.Update(ctx, func(tx store.Txn) error {
			changes = changes[:0]
			states := map[string]*engine.UserState{}
			marks = map[string][]engine.SourceUser{}
			var dirty []string
			for _, it := range chunk {
				kb := userKey(it.tenant, it.user)
				key := string(kb)
				st, ok := states[key]
				if !ok {
					var err error
					if st, err = s.decodeState(tx.Get(kb)); err != nil {
						return err
					}
					states[key] = st
				}
				ra, applied, err := s.apply(ctx, tx, it.tenant, it.user, st, it.obs, marks)
				if err != nil {
					return err
				}
				if applied {
					if err := s.noteChange(tx, it.tenant, ra, scoringv1.Origin_ORIGIN_LOG, func() *eventv1.AuthEvent { return it.event }); err != nil {
						return err
					}
					if !slices.Contains(dirty, key) {
						dirty = append(dirty, key)
					}
					changes = append(changes, change{it.tenant, it.user, ra})
				}
			}
			for _, key := range dirty {
				if err := s.save(tx, []byte(key), states[key]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		s.sources.committed(marks)
		for _, c := range changes {
			s.hub.publish(c.tenant, c.user, c.ra)
		}
		if len(changes) > 0 {
			s.feed.kick()
		}
		total += len(changes)
	}
	return total, nil
}

func attemptID(id string) string {
	if id == "" {
		return ""
	}
	return "attempt:" + id
}

// Observe implements the RPC.
func (s *Service) Observe(ctx context.Context, req *scoringv1.ObserveRequest) (*scoringv1.ObserveResponse, error) {
	if err := validate.Request(ctx, req); err != nil {
		return nil, err
	}
	var v apierr.Violations
	users := make([]string, len(req.GetEvents()))
	for i, e := range req.GetEvents() {
		if users[i] = s.users.Canonical(e.GetTenant(), e.GetUserId()); users[i] != e.GetUserId() {
			users[i] = s.users.Check(&v, fmt.Sprintf("events[%d].user_id", i), e.GetTenant(), e.GetUserId())
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	resp := &scoringv1.ObserveResponse{}
	items := make([]observed, 0, len(req.GetEvents()))
	for i, e := range req.GetEvents() {
		obs, ok := engine.ObservationOf(e)
		if !ok {
			resp.Skipped++
			continue
		}
		obs.Client, obs.Responder = s.enrich(obs.Client), s.enrich(obs.Responder)
		obs.At = s.notAhead(obs.At)
		items = append(items, observed{tenant: e.GetTenant(), user: users[i], obs: obs, event: e})
	}
	applied, err := s.recordBatch(ctx, items)
	if err != nil {
		s.log.ErrorContext(ctx, "observe events", slog.Any("error", err))
		return nil, apierr.StoreUnavailable()
	}
	resp.Applied = int32(applied)
	resp.Skipped += int32(len(items) - applied)
	return resp, nil
}

// GetRisk implements the RPC.
func (s *Service) GetRisk(ctx context.Context, req *scoringv1.GetRiskRequest) (*scoringv1.GetRiskResponse, error) {
	if err := validate.Request(ctx, req); err != nil {
		return nil, err
	}
	var v apierr.Violations
	user := s.users.Check(&v, "user_id", req.GetTenant(), req.GetUserId())
	if err := v.Err(); err != nil {
		return nil, err
	}
	now := validate.TimeOr(req.GetTime(), s.now())
	st, err := s.load(ctx, userKey(req.GetTenant(), user))
	if err != nil {
		return nil, err
	}
	return &scoringv1.GetRiskResponse{Assessment: s.cfg.Assess(user, st, now)}, nil
}

// WatchRisk implements the RPC: the current risk first, then every change.
// A subscriber that falls behind loses intermediate updates and receives the
// newest assessment marked resync, never blocking scoring.
func (s *Service) WatchRisk(req *scoringv1.WatchRiskRequest, stream grpc.ServerStreamingServer[scoringv1.WatchRiskResponse]) error {
	ctx := stream.Context()
	if err := validate.Request(ctx, req); err != nil {
		return err
	}
	if req.GetUserId() == "" {
		return s.watchTenant(req, stream)
	}
	var v apierr.Violations
	if req.GetAfter() != "" || req.GetMinScore() != 0 || len(req.GetSignals()) > 0 {
		v.Add("user_id", "after, min_score and signals are for a tenant-wide watch: leave user_id empty")
		return v.Err()
	}
	user := s.users.Check(&v, "user_id", req.GetTenant(), req.GetUserId())
	if err := v.Err(); err != nil {
		return err
	}
	sub := s.hub.subscribe(req.GetTenant(), user)
	defer s.hub.unsubscribe(sub)
	st, err := s.load(ctx, userKey(req.GetTenant(), user))
	if err != nil {
		return err
	}
	if err := stream.Send(&scoringv1.WatchRiskResponse{Assessment: s.cfg.Assess(user, st, s.now())}); err != nil {
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

func (s *Service) load(ctx context.Context, key []byte) (*engine.UserState, error) {
	b, err := s.store.Get(ctx, key)
	st, err := s.decodeState(b, err)
	if err != nil {
		s.log.ErrorContext(ctx, "load user state", slog.Any("error", err))
		return nil, apierr.StoreUnavailable()
	}
	return st, nil
}

func (s *Service) save(tx store.Txn, key []byte, st *engine.UserState) error {
	b, err := st.MarshalBinary()
	if err != nil {
		return err
	}
	return tx.Set(key, b, s.cfg.IdleTTL)
}

// decodeState turns a store read into a state; a missing key is a new user
// and so is one idle for longer than IdleTTL (the store's TTL drops it
// too, this covers stores that expire lazily).
//
// A stored state that cannot be decoded (corrupt, or written by a newer
// version before a rollback) is logged and replaced by a new one: failing
// instead would leave the user unprotected by every later decision (each
// would fall to its failure mode) and stall every Observe that includes
// the user.
func (s *Service) decodeState(b []byte, err error) (*engine.UserState, error) {
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	st := &engine.UserState{}
	if err == nil {
		if derr := st.UnmarshalBinary(b); derr != nil {
			s.log.Error("unreadable user state replaced by a new one", slog.Int("bytes", len(b)), slog.Any("error", derr))
			s.tel.resetState()
			return &engine.UserState{}, nil
		}
	}
	if s.cfg.Expired(st, s.now()) {
		*st = engine.UserState{}
	}
	return st, nil
}

// clientInfo converts c and fills, from the GeoIP database, what the event
// did not carry: location, country, city, ASN and AS organisation. What
// the event carries always wins; an IP the database does not know stays
// unknown.
func (s *Service) clientInfo(c *eventv1.Client) engine.ClientInfo {
	return s.enrich(engine.ClientInfoOf(c))
}

// enrich fills in what ci lacks from the GeoIP database.
func (s *Service) enrich(ci engine.ClientInfo) engine.ClientInfo {
	if s.geo == nil || ci.IP == "" || (ci.HasGeo && ci.ASN != 0 && ci.Country != "") {
		return ci
	}
	ip, err := netip.ParseAddr(ci.IP)
	if err != nil {
		return ci
	}
	rec, found, err := s.geo.Lookup(ip)
	if err != nil {
		s.log.Warn("geoip lookup", slog.Any("error", err))
		return ci
	}
	if !found {
		return ci
	}
	if !ci.HasGeo && rec.HasLocation {
		ci.Lat, ci.Lon, ci.AccuracyKm, ci.HasGeo = rec.Lat, rec.Lon, rec.AccuracyKm, true
		if ci.City == "" {
			ci.City = rec.City
		}
	}
	if ci.Country == "" {
		ci.Country = rec.Country
	}
	if ci.ASN == 0 {
		ci.ASN = rec.ASN
		if ci.ASOrg == "" {
			ci.ASOrg = rec.ASOrg
		}
	}
	return ci
}

// clone keeps a published assessment immutable for every subscriber.
func clone(ra *scoringv1.RiskAssessment) *scoringv1.RiskAssessment {
	return proto.Clone(ra).(*scoringv1.RiskAssessment)
}

// preview assesses obs without recording it.
func (s *Service) preview(ctx context.Context, tenant, user string, obs engine.Observation) (*scoringv1.RiskAssessment, error) {
	b, err := s.store.Get(ctx, userKey(tenant, user))
	st, err := s.decodeState(b, err)
	if err != nil {
		return nil, err
	}
	return s.cfg.Inspect(&sources{ctx: ctx, s: s}, tenant, user, st, obs)
}

// logFailure counts a failed call and logs it at most once a second.
func (s *Service) logFailure(ctx context.Context, what string, err error) {
	n := s.failed.Add(1)
	now := time.Now().UnixNano()
	last := s.failLogged.Load()
	if now-last < int64(time.Second) || !s.failLogged.CompareAndSwap(last, now) {
		return
	}
	s.log.ErrorContext(ctx, what, slog.Any("error", err), slog.Int64("failures", n))
}
