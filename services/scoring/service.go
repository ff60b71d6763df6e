// Package scoring keeps per-user push and location state and turns a push
// attempt into an explainable RiskAssessment: a score 0-100 and the signals,
// each with its weight and evidence, that produced it.
package scoring

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
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
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Options configures the service.
type Options struct {
	Store  store.Store
	Config Config
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
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	skew   time.Duration
	tracer trace.Tracer
	tel    *instruments
	hub    *hub
	feed   *feed
	geo    *geo.DB
	ownGeo bool
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
		opts.Config = DefaultConfig()
	}
	if opts.Tracer == nil {
		opts.Tracer = noop.NewTracerProvider().Tracer("scoring")
	}
	svc := &Service{users: opts.UserIDs, store: opts.Store, cfg: opts.Config, log: opts.Logger, now: opts.Now, skew: opts.MaxFutureSkew, tracer: opts.Tracer, hub: newHub(), feed: newFeed(), geo: opts.GeoIP,
		tel: newInstruments(opts.Meter, opts.Redactor)}
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
	return fmt.Appendf(nil, "scoring/user/%s/%s", store.KeyPart(tenant), store.KeyPart(user))
}

// sourceKeys are the spray state keys of a client: its IP and its ASN.
func sourceKeys(tenant string, ci ClientInfo) (ip, asn []byte) {
	if ci.IP != "" {
		ip = fmt.Appendf(nil, "scoring/source/%s/ip/%s", store.KeyPart(tenant), ci.IP)
	}
	if ci.ASN != 0 {
		asn = fmt.Appendf(nil, "scoring/source/%s/asn/%d", store.KeyPart(tenant), ci.ASN)
	}
	return ip, asn
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

	obs := Observation{ID: attemptID(a.GetAttemptId()), Kind: ObsAttempt, At: now, Client: s.clientInfo(a.GetClient())}
	var ra *scoringv1.RiskAssessment
	var err error
	// A phishing-resistant factor sends no push: it is assessed, never
	// counted as one (an attacker's burst must not turn the user's own way
	// in into the burst's next push).
	if req.GetRecord() && !phishingResistant(a.GetFactor()) {
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
func (s *Service) record(ctx context.Context, tenant, user string, obs Observation, event func() *eventv1.AuthEvent) (*scoringv1.RiskAssessment, bool, error) {
	key := userKey(tenant, user)
	var ra *scoringv1.RiskAssessment
	var applied bool
	err := s.store.Update(ctx, func(tx store.Txn) error {
		st, err := s.decodeState(tx.Get(key))
		if err != nil {
			return err
		}
		if ra, applied, err = s.apply(ctx, tx, tenant, user, st, obs, nil); err != nil || !applied {
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
	if applied {
		s.hub.publish(tenant, user, ra)
		if len(ra.GetSignals()) > 0 {
			s.feed.kick()
		}
	}
	return ra, applied, nil
}

// apply folds obs into st inside tx. Spray counts are read with a plain
// scan, outside the transaction's conflict tracking: every push of one
// source would otherwise conflict with every other (one ASN carries many
// users). Each user's mark on a source is its own key, so the transaction
// only touches keys of this user.
//
// marks, when set, holds the source marks this transaction wrote (pushes
// and vouches) but the store's scan cannot see yet (a batch of several
// events).
func (s *Service) apply(ctx context.Context, tx store.Txn, tenant, user string, st *UserState, obs Observation, marks map[string][]SourceUser) (*scoringv1.RiskAssessment, bool, error) {
	var spray []SprayCount
	var err error
	role := SprayIgnored
	if !s.cfg.duplicate(st, obs) {
		role = s.cfg.SprayRole(st, obs)
	}
	switch role {
	case SprayCounted, SprayDormant:
		if spray, err = s.noteSources(ctx, tx, tenant, user, obs, role == SprayDormant, marks); err != nil {
			return nil, false, err
		}
	case SprayVouches:
		if err := s.vouchSources(tx, tenant, user, obs, marks); err != nil {
			return nil, false, err
		}
	}
	ra, applied := s.cfg.Record(user, st, obs, spray)
	return ra, applied, nil
}

// observeChunk is how many events one Observe transaction folds in: one
// commit per chunk instead of one per event, small enough that a conflict
// with a concurrent decision retries little work.
const observeChunk = 100

type observed struct {
	tenant, user string
	obs          Observation
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
		err := s.store.Update(ctx, func(tx store.Txn) error {
			changes = changes[:0]
			states := map[string]*UserState{}
			marks := map[string][]SourceUser{}
			var dirty []string
			for _, it := range chunk {
				key := string(userKey(it.tenant, it.user))
				st, ok := states[key]
				if !ok {
					var err error
					if st, err = s.decodeState(tx.Get([]byte(key))); err != nil {
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

// sourceUserKey is one user's mark on a source: source key + "/" + user hash.
func sourceUserKey(source []byte, user string) []byte {
	return fmt.Appendf(append(append([]byte(nil), source...), '/'), "%016x", hashID(user))
}

// loadSource reads the users a source recently pushed to. It reads at
// most enough marks to decide the threshold with a margin (marks expire
// soon after the window), so a busy source costs a bounded read and its
// count of distinct users is a lower bound past that point.
func (s *Service) loadSource(ctx context.Context, source []byte) (*SourceState, error) {
	prefix := append(append([]byte(nil), source...), '/')
	sp := s.cfg.Spray
	limit := min(2*max(sp.IPThreshold, sp.ASNThreshold)+8, max(sp.MaxUsers, 1))
	items, err := s.store.Scan(ctx, store.ScanOptions{Prefix: prefix, Limit: limit})
	if err != nil {
		return nil, err
	}
	src := &SourceState{Users: make([]SourceUser, 0, len(items))}
	for _, it := range items {
		h, err := strconv.ParseUint(string(it.Key[len(prefix):]), 16, 64)
		if err != nil {
			continue
		}
		at, flags, ok := decodeMark(it.Value)
		if !ok {
			continue
		}
		src.Users = append(src.Users, SourceUser{User: h, At: at, Vouched: flags&markVouched != 0, Dormant: flags&markDormant != 0})
	}
	slices.SortFunc(src.Users, func(a, b SourceUser) int { return cmp.Compare(a.At, b.At) })
	return src, nil
}

// markTTL keeps a user's mark on a source a little longer than the window.
func markTTL(sp SprayConfig) time.Duration { return sp.Window + sp.Window/10 + time.Second }

// encodeMark writes a user's mark on a source: the time of the last push
// and the flags (markVouched, markDormant).
func encodeMark(at int64, flags byte) []byte {
	return append(binary.AppendVarint(nil, at), flags)
}

func decodeMark(b []byte) (int64, byte, bool) {
	at, n := binary.Varint(b)
	if n <= 0 || len(b) != n+1 {
		return 0, 0, false
	}
	return at, b[n], true
}

// noteSources marks user on the client's IP and ASN (dormant: the user has
// no history) and returns the count of each in the window (see
// Config.SourceUsers), this user included.
func (s *Service) noteSources(ctx context.Context, tx store.Txn, tenant, user string, obs Observation, dormant bool, marks map[string][]SourceUser) ([]SprayCount, error) {
	sp := s.cfg.Spray
	if sp.Window <= 0 || (sp.IPThreshold <= 0 && sp.ASNThreshold <= 0) {
		return nil, nil
	}
	ipKey, asnKey := sourceKeys(tenant, obs.Client)
	var out []SprayCount
	for _, k := range [][]byte{ipKey, asnKey} {
		if k == nil {
			continue
		}
		src, err := s.loadSource(ctx, k)
		if err != nil {
			return nil, err
		}
		if len(marks[string(k)]) > 0 {
			// What this transaction wrote is newer than what the scan read.
			for _, m := range marks[string(k)] {
				if i := slices.IndexFunc(src.Users, func(u SourceUser) bool { return u.User == m.User }); i >= 0 {
					src.Users[i] = m
				} else {
					src.Users = append(src.Users, m)
				}
			}
			slices.SortFunc(src.Users, func(a, b SourceUser) int { return cmp.Compare(a.At, b.At) })
		}
		sc := s.cfg.NoteSource(src, user, obs.At, dormant)
		mk := sourceUserKey(k, user)
		at, vouched := obs.At.UnixMilli(), false
		if b, err := tx.Get(mk); err == nil {
			if prevAt, prevFlags, ok := decodeMark(b); ok {
				at, vouched = max(at, prevAt), prevFlags&markVouched != 0
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if err := tx.Set(mk, encodeMark(at, markFlags(vouched, dormant)), markTTL(sp)); err != nil {
			return nil, err
		}
		wrote(marks, k, SourceUser{User: hashID(user), At: at, Vouched: vouched, Dormant: dormant})
		out = append(out, s.sprayCount(obs.Client, k, ipKey, sc))
	}
	return out, nil
}

// wrote records in marks (when set) the mark this transaction wrote for a
// user on source k, so the later events of a batch count with it: a class
// of new hires in one IdP log export pushes and approves in one batch.
func wrote(marks map[string][]SourceUser, k []byte, m SourceUser) {
	if marks == nil {
		return
	}
	list := marks[string(k)]
	if i := slices.IndexFunc(list, func(u SourceUser) bool { return u.User == m.User }); i >= 0 {
		list[i] = m
		return
	}
	marks[string(k)] = append(list, m)
}

// vouchSources marks that user succeeded from the client's IP and ASN (a
// success SprayRole accepts as the user's own), so the user no longer
// counts toward their spray. Users without a mark on the source (the usual
// case) cost one read each and no write.
func (s *Service) vouchSources(tx store.Txn, tenant, user string, obs Observation, marks map[string][]SourceUser) error {
	if s.cfg.Spray.Window <= 0 {
		return nil
	}
	ipKey, asnKey := sourceKeys(tenant, obs.Client)
	for _, k := range [][]byte{ipKey, asnKey} {
		if k == nil {
			continue
		}
		mk := sourceUserKey(k, user)
		b, err := tx.Get(mk)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		at, flags, ok := decodeMark(b)
		if !ok || flags&markVouched != 0 {
			continue
		}
		if err := tx.Set(mk, encodeMark(at, flags|markVouched), markTTL(s.cfg.Spray)); err != nil {
			return err
		}
		wrote(marks, k, SourceUser{User: hashID(user), At: at, Vouched: true, Dormant: flags&markDormant != 0})
	}
	return nil
}

// sprayCount names the source of sc: the client's IP when key is its IP
// key, its ASN otherwise.
func (s *Service) sprayCount(ci ClientInfo, key, ipKey []byte, sc SprayCount) SprayCount {
	if ipKey != nil && string(key) == string(ipKey) {
		sc.IP = ci.IP
	} else {
		sc.ASN = ci.ASN
	}
	return sc
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
		obs, ok := ObservationOf(e)
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

func (s *Service) load(ctx context.Context, key []byte) (*UserState, error) {
	b, err := s.store.Get(ctx, key)
	st, err := s.decodeState(b, err)
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

// decodeState turns a store read into a state; a missing key is a new user
// and so is one idle for longer than IdleTTL (the store's TTL drops it
// too, this covers stores that expire lazily).
//
// A stored state that cannot be decoded (corrupt, or written by a newer
// version before a rollback) is logged and replaced by a new one: failing
// instead would leave the user unprotected by every later decision (each
// would fall to its failure mode) and stall every Observe that includes
// the user.
func (s *Service) decodeState(b []byte, err error) (*UserState, error) {
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	st := &UserState{}
	if err == nil {
		if derr := st.UnmarshalBinary(b); derr != nil {
			s.log.Error("unreadable user state replaced by a new one", slog.Int("bytes", len(b)), slog.Any("error", derr))
			s.tel.resetState()
			return &UserState{}, nil
		}
	}
	if s.cfg.Expired(st, s.now()) {
		*st = UserState{}
	}
	return st, nil
}

// KindOf maps an event type to the observation scoring makes of it; false
// for types scoring does not use.
func KindOf(t eventv1.EventType) (ObservationKind, bool) {
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
	case eventv1.EventType_EVENT_TYPE_PRIMARY_AUTH_SUCCEEDED:
		return ObsPrimaryAuth, true
	}
	return 0, false
}

// ObservationOf converts an event into what the engine folds in; ok is
// false for a type scoring does not use. Clients are taken as the event
// carries them (the service adds GeoIP data on top).
func ObservationOf(e *eventv1.AuthEvent) (Observation, bool) {
	kind, ok := KindOf(e.GetType())
	if !ok {
		return Observation{}, false
	}
	return Observation{
		ID: "event:" + e.GetEventId(), Kind: kind, At: e.GetTime().AsTime(),
		Client: ClientInfoOf(e.GetClient()), Responder: ClientInfoOf(e.GetResponder()),
		PhishingResistant: phishingResistant(e.GetFactor()),
	}, true
}

// ClientInfoOf converts a contract client (nil is an unknown one).
func ClientInfoOf(c *eventv1.Client) ClientInfo {
	if c == nil {
		return ClientInfo{}
	}
	ci := ClientInfo{IP: canonicalIP(c.GetIp()), DeviceID: c.GetDeviceId(), ASN: c.GetAsn(), ASOrg: c.GetAsOrg(), Anonymizer: c.GetAnonymizer()}
	if g := c.GetGeo(); g != nil {
		ci.Country, ci.City = g.GetCountry(), g.GetCity()
		ci.Lat, ci.Lon, ci.AccuracyKm = g.GetLatitude(), g.GetLongitude(), g.GetAccuracyKm()
		ci.HasGeo = geo.Known(ci.Lat, ci.Lon)
	}
	return ci
}

// canonicalIP writes an address one way whatever way it came
// (::ffff:192.0.2.1 as 192.0.2.1, 2001:DB8::1 as 2001:db8::1), so that
// spray counting and the same-IP check see one source; text that is not an
// address is kept as it is.
func canonicalIP(ip string) string {
	if a, err := netip.ParseAddr(ip); err == nil {
		return a.Unmap().WithZone("").String()
	}
	return ip
}

// clientInfo converts c and fills, from the GeoIP database, what the event
// did not carry: location, country, city, ASN and AS organisation. What
// the event carries always wins; an IP the database does not know stays
// unknown.
func (s *Service) clientInfo(c *eventv1.Client) ClientInfo { return s.enrich(ClientInfoOf(c)) }

// enrich fills in what ci lacks from the GeoIP database.
func (s *Service) enrich(ci ClientInfo) ClientInfo {
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
func (s *Service) preview(ctx context.Context, tenant, user string, obs Observation) (*scoringv1.RiskAssessment, error) {
	b, err := s.store.Get(ctx, userKey(tenant, user))
	st, err := s.decodeState(b, err)
	if err != nil {
		return nil, err
	}
	var spray []SprayCount
	if role := s.cfg.SprayRole(st, obs); role == SprayCounted || role == SprayDormant {
		ipKey, asnKey := sourceKeys(tenant, obs.Client)
		for _, k := range [][]byte{ipKey, asnKey} {
			if k == nil {
				continue
			}
			src, err := s.loadSource(ctx, k)
			if err != nil {
				return nil, err
			}
			spray = append(spray, s.sprayCount(obs.Client, k, ipKey, s.cfg.SourceUsers(src, obs.At)))
		}
	}
	return s.cfg.Preview(user, st, obs, spray), nil
}

// phishingResistant reports whether f resists phishing (and sends no push).
func phishingResistant(f eventv1.Factor) bool {
	return f == eventv1.Factor_FACTOR_WEBAUTHN || f == eventv1.Factor_FACTOR_SMART_CARD
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
