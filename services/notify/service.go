// Package notify queues notifications in a durable outbox and delivers them
// through channels (signed webhooks, Slack, email, a push provider, Security
// Event Tokens, the log) with retries, exponential backoff with jitter, a
// dead-letter status and idempotency keys. SOC alerts about one user are
// folded into one incident that is updated while the attack goes on, and
// human-facing channels are rate limited, so notify never becomes a source
// of fatigue itself.
package notify

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pushbackhq/pushback/connectors/respond"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/ids"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/telemetry"
	"github.com/pushbackhq/pushback/pkg/validate"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Options configures the service.
type Options struct {
	Store    store.Store
	Channels []Channel
	Logger   *slog.Logger
	Tracer   trace.Tracer
	// Meter records the service's metrics (none when nil).
	Meter metric.Meter
	// Redactor hashes user ids in spans and in alerts written to the log
	// (a per-process random key when nil).
	Redactor *telemetry.Redactor
	// MaxAttempts before a delivery is dead-lettered (default 8).
	MaxAttempts int
	// BaseBackoff is the first retry delay (default 1s); it doubles per
	// attempt up to MaxBackoff (default 5m), with "equal" jitter (a wait
	// uniform between half and all of the delay).
	BaseBackoff, MaxBackoff time.Duration
	// DeliveryTimeout bounds each outbound call (default 5s).
	DeliveryTimeout time.Duration
	// PollInterval is how often the outbox is scanned (default 1s).
	PollInterval time.Duration
	// Retention of delivered and dead deliveries (default 30 days).
	Retention time.Duration
	// IncidentWindow: SOC alerts about one user closer together than this
	// belong to one incident (default 30m; negative disables incidents).
	IncidentWindow time.Duration
	// UpdateInterval is the least time between two alerts of one incident
	// on one channel (default 5m): later denials update the pending one.
	UpdateInterval time.Duration
	// NoticeDelay is how long the user's notice waits after an incident
	// opens, so that it counts the burst rather than its first push
	// (default 2m).
	NoticeDelay time.Duration
	// RateLimits bound SOC alerts and user notices per channel name;
	// channels not named use DefaultRateLimit (default 30 a minute, burst
	// 10). Pushes and security events are never rate limited: one waits for
	// a login, the other ends an attacker's session.
	RateLimits       map[string]RateLimit
	DefaultRateLimit RateLimit
	// ReportLinks, when set, puts a signed one-click "this was not me" link
	// into user notices.
	ReportLinks *ReportLinks
	// Brake is how many response actions that log people out may go out a
	// minute in one tenant (default 20); past it they are held for an
	// operator (ReleaseActions) and an alert says so.
	Brake int
	Now   func() time.Time
}

// Service implements notifyv1.NotificationServiceServer and runs the
// delivery worker.
type Service struct {
	notifyv1.UnimplementedNotificationServiceServer
	opts    Options
	log     *slog.Logger
	kick    chan struct{}
	limiter *limiter
	tel     *instruments

	// mu guards the fair-share turns of this process: served holds the
	// turn each queue was last served at, turn the last one given out.
	mu     sync.Mutex
	served map[queueKey]uint64
	turn   uint64
}

// New returns the notification service.
func New(opts Options) (*Service, error) {
	if opts.Store == nil {
		return nil, errors.New("notify: store is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Redactor == nil {
		opts.Redactor = telemetry.NewRedactor(nil, false)
	}
	// SOC alerts always have somewhere to go: the log when no channel
	// carries them.
	if !slices.ContainsFunc(opts.Channels, func(c Channel) bool { return c.Accepts(notifyv1.Kind_KIND_SOC_ALERT) }) {
		opts.Channels = append(slices.Clone(opts.Channels), LogChannel{Logger: opts.Logger, Redactor: opts.Redactor})
	}
	if opts.Tracer == nil {
		opts.Tracer = noop.NewTracerProvider().Tracer("notify")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.BaseBackoff, time.Second)
	def(&opts.MaxBackoff, 5*time.Minute)
	def(&opts.DeliveryTimeout, 5*time.Second)
	def(&opts.PollInterval, time.Second)
	def(&opts.Retention, 30*24*time.Hour)
	def(&opts.UpdateInterval, 5*time.Minute)
	def(&opts.NoticeDelay, 2*time.Minute)
	if opts.IncidentWindow == 0 {
		opts.IncidentWindow = 30 * time.Minute
	}
	if opts.DefaultRateLimit == (RateLimit{}) {
		opts.DefaultRateLimit = RateLimit{Every: 2 * time.Second, Burst: 10}
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 8
	}
	if opts.Brake <= 0 {
		opts.Brake = 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	seen := map[string]bool{}
	for _, c := range opts.Channels {
		if seen[c.Name()] {
			return nil, fmt.Errorf("notify: two channels are named %q", c.Name())
		}
		seen[c.Name()] = true
	}
	return &Service{opts: opts, log: opts.Logger, kick: make(chan struct{}, 1),
		limiter: newLimiter(opts.Store, opts.RateLimits, opts.DefaultRateLimit),
		tel:     newInstruments(opts.Meter, opts.Store, opts.Channels, opts.Redactor),
		served:  map[queueKey]uint64{}}, nil
}

// Register adds the service to a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) { notifyv1.RegisterNotificationServiceServer(r, s) }

// Key layout (all under "notify/"):
//
//	notify/delivery/{id}                       Delivery
//	notify/due/{kind}/{tenant}/{ms:020d}/{id}  due entry of a pending delivery (queue.go)
//	notify/key/{idempotency key}               delivery ids, comma separated
//	notify/incident/{tenant}/{user}            open incident (JSON), path-escaped parts
//	notify/rate/{channel}                      token bucket of a rate-limited channel
func deliveryKey(id string) []byte { return []byte("notify/delivery/" + id) }

func idemKey(k string) []byte { return []byte("notify/key/" + k) }

// Notify implements the RPC: one delivery per channel that accepts the kind,
// written durably before the reply.
func (s *Service) Notify(ctx context.Context, req *notifyv1.NotifyRequest) (*notifyv1.NotifyResponse, error) {
	if err := validate.Request(ctx, req); err != nil {
		return nil, err
	}
	var v apierr.Violations
	// An address as net/mail reads it ("Name <a@example.com>" too), which
	// the contract's email rule does not accept.
	if e := req.GetUserEmail(); e != "" {
		if _, err := mail.ParseAddress(e); err != nil || len(e) > validate.MaxIDBytes {
			v.Add("user_email", "is not an email address")
		}
	}
	validateSecurityEvent(&v, req)
	validateActions(&v, req)
	if err := v.Err(); err != nil {
		return nil, err
	}
	ctx, span := s.opts.Tracer.Start(ctx, "notify.enqueue", trace.WithAttributes(attribute.String("pushback.kind", req.GetKind().String())))
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(attribute.String("pushback.decision_id", req.GetDecisionId()), s.opts.Redactor.UserAttr(req.GetUserId()))
	}
	now := s.opts.Now()
	resp := &notifyv1.NotifyResponse{}
	err := s.opts.Store.Update(ctx, func(tx store.Txn) error {
		resp.Reset()
		if b, err := tx.Get(idemKey(req.GetIdempotencyKey())); err == nil {
			resp.Duplicate = true
			if len(b) > 0 {
				resp.DeliveryIds = strings.Split(string(b), ",")
			}
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if req.GetKind() == notifyv1.Kind_KIND_SOC_ALERT && req.GetUserId() != "" && s.opts.IncidentWindow > 0 ||
			len(req.GetResponseActions()) > 0 {
			if err := s.enqueueIncident(tx, req, now, resp); err != nil {
				return err
			}
		} else {
			for _, ch := range s.accepting(req) {
				d, err := s.enqueue(tx, ch, req, nil, now, now, rankOf(req))
				if err != nil {
					return err
				}
				resp.DeliveryIds = append(resp.DeliveryIds, d.GetDeliveryId())
			}
		}
		return tx.Set(idemKey(req.GetIdempotencyKey()), []byte(strings.Join(resp.DeliveryIds, ",")), s.opts.Retention)
	})
	if err != nil {
		s.log.ErrorContext(ctx, "enqueue notification", slog.Any("error", err))
		return nil, apierr.StoreUnavailable()
	}
	span.SetAttributes(attribute.Int("pushback.deliveries", len(resp.GetDeliveryIds())), attribute.Bool("pushback.coalesced", resp.GetCoalesced()))
	if !resp.Duplicate && len(resp.DeliveryIds) > 0 {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return resp, nil
}

// Recipient is implemented by channels that can carry a kind only to some
// users (email needs an address): a channel that does not want a
// notification gets no delivery for it.
type Recipient interface {
	Wants(n *notifyv1.NotifyRequest) bool
}

// accepting lists the channels that carry n.
func (s *Service) accepting(n *notifyv1.NotifyRequest) []Channel {
	var out []Channel
	for _, ch := range s.opts.Channels {
		if !ch.Accepts(n.GetKind()) {
			continue
		}
		if r, ok := ch.(Recipient); ok && !r.Wants(n) {
			continue
		}
		out = append(out, ch)
	}
	return out
}

// enqueue writes one pending delivery due at due, ranked r in its queue.
func (s *Service) enqueue(tx store.Txn, ch Channel, n *notifyv1.NotifyRequest, inc *notifyv1.Incident, now, due time.Time, r rank) (*notifyv1.Delivery, error) {
	d := &notifyv1.Delivery{
		DeliveryId:      ids.New(now),
		Channel:         ch.Name(),
		Status:          notifyv1.Status_STATUS_PENDING,
		NextAttemptTime: timestamppb.New(due),
		CreateTime:      timestamppb.New(now),
		Notification:    n,
		Incident:        inc,
	}
	if err := putDelivery(tx, d, 0); err != nil {
		return nil, err
	}
	return d, tx.Set(dueKey(d), dueValue(r, d.GetDeliveryId(), d.GetChannel()), 0)
}

func putDelivery(tx store.Txn, d *notifyv1.Delivery, ttl time.Duration) error {
	b, err := proto.Marshal(d)
	if err != nil {
		return err
	}
	return tx.Set(deliveryKey(d.GetDeliveryId()), b, ttl)
}

func getDelivery(tx store.Reader, id string) (*notifyv1.Delivery, error) {
	b, err := tx.Get(deliveryKey(id))
	if err != nil {
		return nil, err
	}
	d := &notifyv1.Delivery{}
	return d, unmarshalDelivery(b, d)
}

func unmarshalDelivery(b []byte, d *notifyv1.Delivery) error { return proto.Unmarshal(b, d) }

func validateSecurityEvent(v *apierr.Violations, req *notifyv1.NotifyRequest) {
	se := req.GetSecurityEvent()
	if req.GetKind() != notifyv1.Kind_KIND_SECURITY_EVENT {
		if se != nil {
			v.Add("security_event", "is only for KIND_SECURITY_EVENT")
		}
		return
	}
	if se.GetType() == notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_UNSPECIFIED {
		v.Add("security_event.type", "is required")
	}
	if req.GetUserId() == "" && req.GetUserEmail() == "" {
		v.Add("user_id", "is required for a security event (or user_email)")
	}
	checkSecurityEvent(v, "security_event", se)
}

// checkSecurityEvent adds what a security event of its type lacks: the
// claims CAEP requires of it.
func checkSecurityEvent(v *apierr.Violations, field string, se *notifyv1.SecurityEvent) {
	switch se.GetType() {
	case notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_ASSURANCE_LEVEL_CHANGE:
		if se.GetNamespace() == "" || se.GetCurrentLevel() == "" {
			v.Add(field+".current_level", "namespace and current_level are required for assurance-level-change")
		}
	case notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_CREDENTIAL_CHANGE:
		if se.GetCredentialType() == "" {
			v.Add(field+".credential_type", "is required for credential-change")
		}
		if se.GetChangeType() == "" {
			v.Add(field+".change_type", "is required for credential-change")
		}
	case notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_RISK_LEVEL_CHANGE:
		if !validRiskLevel(se.GetCurrentLevel()) {
			v.Add(field+".current_level", "must be LOW, MEDIUM or HIGH for risk-level-change")
		}
		if se.GetPreviousLevel() != "" && !validRiskLevel(se.GetPreviousLevel()) {
			v.Add(field+".previous_level", "must be LOW, MEDIUM or HIGH for risk-level-change")
		}
	}
}

// ListDeliveries implements the RPC: oldest first, optionally by status.
func (s *Service) ListDeliveries(ctx context.Context, req *notifyv1.ListDeliveriesRequest) (*notifyv1.ListDeliveriesResponse, error) {
	if err := validate.Request(ctx, req); err != nil {
		return nil, err
	}
	var v apierr.Violations
	var after []byte
	if tok := req.GetPageToken(); tok != "" {
		b, ok := store.ParseCursor(tok, []byte("notify/delivery/"))
		if !ok {
			v.Add("page_token", "is not a token from an earlier response")
		}
		after = b
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = 100
	}
	resp := &notifyv1.ListDeliveriesResponse{}
	const batch = 256
	for {
		items, err := s.opts.Store.Scan(ctx, store.ScanOptions{Prefix: []byte("notify/delivery/"), After: after, Limit: batch})
		if err != nil {
			s.log.ErrorContext(ctx, "list deliveries", slog.Any("error", err))
			return nil, apierr.StoreUnavailable()
		}
		for _, it := range items {
			d := &notifyv1.Delivery{}
			if err := proto.Unmarshal(it.Value, d); err != nil {
				continue
			}
			after = it.Key
			if req.GetStatus() != notifyv1.Status_STATUS_UNSPECIFIED && d.GetStatus() != req.GetStatus() {
				continue
			}
			if len(resp.Deliveries) == size {
				resp.NextPageToken = store.Cursor(deliveryKey(resp.Deliveries[size-1].GetDeliveryId()))
				return resp, nil
			}
			resp.Deliveries = append(resp.Deliveries, d)
		}
		if len(items) < batch {
			return resp, nil
		}
	}
}

// Run delivers due notifications until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	for {
		if err := s.DeliverDue(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "deliver due notifications", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.kick:
		}
	}
}

// deliverParallel is how many attempts run at once: a receiver that hangs
// until its timeout holds up one of them, not the pushes behind it.
const deliverParallel = 8

// deliverBatch is how many attempts start between two looks at the queue:
// a push or a victim's first alert queued meanwhile waits for at most one
// batch, not for a whole backlog.
const deliverBatch = 2 * deliverParallel

// DeliverDue attempts the deliveries whose time has come, in the order of
// the queue (see plan): several at once, each claimed first so that none
// is sent twice. A rate-limited channel without a token is skipped without
// touching its deliveries, which keep their place. It returns when nothing
// more can be attempted now, or with the first error.
func (s *Service) DeliverDue(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := s.opts.Now()
		entries, more, err := scanDue(ctx, s.opts.Store, now)
		if err != nil {
			return err
		}
		started, err := s.deliverInTurn(ctx, s.plan(entries), now)
		if err != nil || started == 0 || started < deliverBatch && !more {
			return err
		}
	}
}

// plan orders entries by the fair-share turns of this process, and forgets
// the turns of queues with nothing due (an idle tenant comes back at the
// front).
func (s *Service) plan(entries []dueEntry) []dueEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	live := make(map[queueKey]uint64, len(s.served))
	for _, e := range entries {
		if t, ok := s.served[e.queue()]; ok {
			live[e.queue()] = t
		}
	}
	s.served = live
	return plan(entries, s.served, s.turn)
}

// serve gives q the next turn.
func (s *Service) serve(q queueKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.turn++
	s.served[q] = s.turn
}

// deliverInTurn claims the entries in order, up to deliverBatch, and
// attempts each claimed one in parallel. Claims and rate-limit tokens are
// taken one after another, so the order decides who gets a channel's next
// token.
func (s *Service) deliverInTurn(ctx context.Context, order []dueEntry, now time.Time) (int, error) {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		firstErr = cmp.Or(firstErr, err)
		mu.Unlock()
	}
	slots := make(chan struct{}, deliverParallel)
	started := 0
	for _, e := range order {
		if started == deliverBatch || ctx.Err() != nil {
			break
		}
		if rateLimited(e.kind) && s.channel(e.channel) != nil && s.limiter.empty(ctx, e.channel, now) {
			continue // no token: the entry keeps its place for the next round
		}
		c, err := s.claim(ctx, e)
		if err != nil {
			fail(err)
			break // a store that fails one claim fails the next: the next round tries again
		}
		if c == nil {
			continue
		}
		if ok, err := s.takeToken(ctx, c); err != nil || !ok {
			if err != nil {
				fail(err)
			}
			continue
		}
		s.serve(queueKey{c.d.GetChannel(), store.KeyPart(c.d.GetNotification().GetTenant())})
		started++
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := s.deliver(ctx, c); err != nil {
				fail(err)
			}
		})
	}
	wg.Wait()
	return started, firstErr
}

// takeToken spends a rate-limit token for a claimed delivery of a limited
// kind. Without one (another replica took the last) the delivery goes back
// to its place unattempted and ok is false.
func (s *Service) takeToken(ctx context.Context, c *claimed) (ok bool, err error) {
	if s.channel(c.d.GetChannel()) == nil || !rateLimited(c.d.GetNotification().GetKind()) {
		return true, nil
	}
	wait, err := s.limiter.take(ctx, c.d.GetChannel(), s.opts.Now())
	if err != nil {
		// The limit is a courtesy to people: a store that cannot keep
		// the bucket must not hold up this or any later delivery.
		s.log.WarnContext(ctx, "rate limit unavailable; delivering without it", slog.String("channel", c.d.GetChannel()), slog.Any("error", err))
		return true, nil
	}
	if wait > 0 {
		return false, s.release(ctx, c)
	}
	return true, nil
}

func (s *Service) channel(name string) Channel {
	for _, c := range s.opts.Channels {
		if c.Name() == name {
			return c
		}
	}
	return nil
}

// claimed is a delivery this process holds a lease on.
type claimed struct {
	// d is the delivery as claimed; its NextAttemptTime is the lease.
	d *notifyv1.Delivery
	// lease is the due entry of the lease.
	lease []byte
	// was is the due time before the claim: a released delivery goes back
	// there, keeping its place in the queue.
	was *timestamppb.Timestamp
	// rank is the delivery's rank when claimed.
	rank rank
}

// deliver makes one attempt of a claimed delivery and records its result.
func (s *Service) deliver(ctx context.Context, c *claimed) error {
	d := c.d
	ctx, span := s.startDeliverSpan(ctx, d)
	defer span.End()
	result, deliverErr, done, err := s.attempt(ctx, c)
	if done {
		return err
	}
	// The attempt happened: record it even when shutdown has begun, or it
	// would be made again after the restart.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.DeliveryTimeout)
	defer cancel()
	if deliverErr != nil && ctx.Err() != nil {
		// Interrupted by shutdown, not refused by the receiver: due again at
		// once, and the attempt does not count.
		return s.release(rctx, c)
	}
	now := s.opts.Now()
	res, next := s.outcome(ctx, d, deliverErr, now)
	res.Result = result
	s.observeAttempt(ctx, span, d, res)
	return s.opts.Store.Update(rctx, func(tx store.Txn) error { return s.recordAttempt(tx, c, res, next, now) })
}

// startDeliverSpan starts the span of one delivery attempt, linked to the
// decision that caused it. Everything but a push follows a suppressed push
// or an attack seen in the logs, so its trace is exported whatever head
// sampling chose, as the decision's is.
func (s *Service) startDeliverSpan(ctx context.Context, d *notifyv1.Delivery) (context.Context, trace.Span) {
	n := d.GetNotification()
	ctx, span := s.opts.Tracer.Start(ctx, "notify.deliver", append(decisionLink(n), trace.WithAttributes(
		attribute.String("pushback.channel", d.GetChannel()), attribute.String("pushback.decision_id", n.GetDecisionId()),
		attribute.String("pushback.kind", n.GetKind().String()),
		s.opts.Redactor.UserAttr(n.GetUserId())))...)
	if n.GetKind() != notifyv1.Kind_KIND_PUSH {
		telemetry.Keep(span, telemetry.KeepOutcome)
	}
	return ctx, span
}

// attempt hands the delivery to its channel (or records what a dry run
// would have done) and returns what the channel reported and its error.
// When the brake holds the action back, or cannot be read, nothing was
// attempted: done is set and err is what deliver returns.
func (s *Service) attempt(ctx context.Context, c *claimed) (result string, deliverErr error, done bool, err error) {
	d, n := c.d, c.d.GetNotification()
	ch := s.channel(d.GetChannel())
	switch {
	case ch == nil:
		return "", fmt.Errorf("channel %q is no longer configured", d.GetChannel()), false, nil
	case isAction(n) && dryRun(n):
		// Recorded with what it would have done, not taken.
		result = "dry run: would " + actionOf(n) + " at " + d.GetChannel()
		if a, ok := ch.(*ActionChannel); ok {
			result += " for " + a.Target(n)
		}
		return result, nil, false, nil
	}
	if braked(n) {
		held, err := s.hold(ctx, c)
		if err != nil {
			// The brake is a safety boundary: without it, nothing goes.
			s.log.WarnContext(ctx, "brake unavailable; the action waits", slog.String("delivery_id", d.GetDeliveryId()), slog.Any("error", err))
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.DeliveryTimeout)
			defer cancel()
			return "", nil, true, s.release(rctx, c)
		}
		if held {
			return "", nil, true, nil
		}
	}
	dctx, cancel := context.WithTimeout(ctx, s.opts.DeliveryTimeout)
	defer cancel()
	if actor, ok := ch.(Actor); ok {
		result, deliverErr = actor.Act(dctx, s.outgoing(d))
		return result, deliverErr, false, nil
	}
	return "", ch.Deliver(dctx, s.outgoing(d)), false, nil
}

// outcome is the delivery's state after an attempt that ended with
// deliverErr: delivered, dead (out of attempts, or refused for good) or
// pending again after a backoff, due at next.
func (s *Service) outcome(ctx context.Context, d *notifyv1.Delivery, deliverErr error, now time.Time) (res *notifyv1.Delivery, next time.Time) {
	id := d.GetDeliveryId()
	res = &notifyv1.Delivery{Attempts: d.GetAttempts() + 1}
	switch {
	case deliverErr == nil:
		res.Status = notifyv1.Status_STATUS_DELIVERED
		res.DeliverTime = timestamppb.New(now)
	case int(res.GetAttempts()) >= s.opts.MaxAttempts || IsPermanent(deliverErr):
		res.Status = notifyv1.Status_STATUS_DEAD
		res.LastError = deliverErr.Error()
		s.log.ErrorContext(ctx, "delivery dead-lettered", slog.String("delivery_id", id), slog.String("channel", d.GetChannel()),
			slog.Int("attempt", int(res.GetAttempts())), slog.Any("error", deliverErr))
	default:
		wait := s.backoff(int(res.GetAttempts()))
		if ra := (*respond.RetryAfter)(nil); errors.As(deliverErr, &ra) {
			wait = max(wait, ra.Wait) // the receiver's rate limit
		}
		next = now.Add(wait)
		res.Status = notifyv1.Status_STATUS_PENDING
		res.LastError = deliverErr.Error()
		res.NextAttemptTime = timestamppb.New(next)
		s.log.WarnContext(ctx, "delivery failed; will retry", slog.String("delivery_id", id), slog.String("channel", d.GetChannel()),
			slog.Int("attempt", int(res.GetAttempts())), slog.Any("error", deliverErr))
	}
	return res, next
}

// observeAttempt puts the attempt's outcome on its span and in the
// metrics, and logs a response action taken.
func (s *Service) observeAttempt(ctx context.Context, span trace.Span, d *notifyv1.Delivery, res *notifyv1.Delivery) {
	n := d.GetNotification()
	span.SetAttributes(attribute.String("pushback.status", res.GetStatus().String()), attribute.Int("pushback.attempt", int(res.GetAttempts())))
	s.tel.attempted(ctx, d.GetChannel(), res.GetStatus())
	if !isAction(n) {
		return
	}
	s.tel.action(ctx, d.GetChannel(), actionOf(n), actionResult(res.GetStatus(), dryRun(n)))
	if res.GetStatus() == notifyv1.Status_STATUS_DELIVERED {
		s.log.InfoContext(ctx, "response action taken", slog.String("delivery_id", d.GetDeliveryId()), slog.String("channel", d.GetChannel()),
			slog.String("action", actionOf(n)), slog.String("incident_id", d.GetIncident().GetIncidentId()), slog.String("result", res.GetResult()))
	}
}

// recordAttempt stores the outcome res of an attempt of the claimed
// delivery, due again at next when it is pending, and lets go of the lease.
func (s *Service) recordAttempt(tx store.Txn, c *claimed, res *notifyv1.Delivery, next, now time.Time) error {
	d, due, id := c.d, c.lease, c.d.GetDeliveryId()
	// Notify may have folded more denials into this delivery while it was
	// in flight: a retry carries the newest state, a delivered one keeps
	// what was sent and hands the rest to a follow-up.
	cur, err := getDelivery(tx, id)
	if errors.Is(err, store.ErrNotFound) {
		return tx.Delete(due)
	} else if err != nil {
		return err
	}
	if !bytes.Equal(due, dueKey(cur)) {
		// The lease ran out and another process claimed the delivery: its
		// record, not this one, decides what happens next.
		return nil
	}
	// A denial folded in meanwhile may have raised the rank.
	r := leaseRank(tx, due, c.rank)
	out := cur
	if res.GetStatus() == notifyv1.Status_STATUS_DELIVERED {
		out = proto.Clone(d).(*notifyv1.Delivery)
	}
	out.Status, out.Attempts, out.LastError, out.Result = res.GetStatus(), res.GetAttempts(), res.GetLastError(), res.GetResult()
	out.NextAttemptTime, out.DeliverTime = res.GetNextAttemptTime(), res.GetDeliverTime()
	ttl := time.Duration(0)
	if out.GetStatus() != notifyv1.Status_STATUS_PENDING {
		ttl = s.opts.Retention
	}
	if err := putDelivery(tx, out, ttl); err != nil {
		return err
	}
	if err := tx.Delete(due); err != nil {
		return err
	}
	if !next.IsZero() {
		if err := tx.Set(dueKey(out), dueValue(r, id, out.GetChannel()), 0); err != nil {
			return err
		}
	}
	if out.GetStatus() == notifyv1.Status_STATUS_DEAD && isAction(d.GetNotification()) {
		if err := s.actionFailed(tx, out, now); err != nil {
			return err
		}
	}
	if d.GetIncident() != nil && d.GetNotification().GetKind() == notifyv1.Kind_KIND_SOC_ALERT {
		return s.afterIncidentAttempt(tx, d, cur, out, now, r)
	}
	return nil
}

// leaseRank is the rank a lease entry holds now, or r when it cannot be
// read.
func leaseRank(tx store.Reader, lease []byte, r rank) rank {
	v, err := tx.Get(lease)
	if err != nil {
		return r
	}
	if e, ok := parseDue(lease, v); ok && !e.unread {
		return e.rank
	}
	return r
}

// claim takes a due delivery for this process: in one transaction the due
// entry is replaced by a lease, due again only when this attempt cannot
// have finished (a crash), so that replicas sharing the store never send
// one delivery twice. It returns nil when another replica claimed it first,
// or when the entry is stale (the delivery is gone or no longer pending).
// An entry of the older layout leaves a lease of the current one.
func (s *Service) claim(ctx context.Context, e dueEntry) (*claimed, error) {
	leaseAt := timestamppb.New(s.opts.Now().Add(2*s.opts.DeliveryTimeout + 10*time.Second))
	var c *claimed
	err := s.opts.Store.Update(ctx, func(tx store.Txn) error {
		c = nil
		v, err := tx.Get(e.key)
		if errors.Is(err, store.ErrNotFound) {
			return nil // another replica has it
		} else if err != nil {
			return err
		}
		cur, err := getDelivery(tx, e.id)
		if errors.Is(err, store.ErrNotFound) {
			return tx.Delete(e.key)
		} else if err != nil {
			return err
		}
		// The delivery names its one due entry (NextAttemptTime); any other
		// is stale, and so is every entry of a finished delivery.
		if cur.GetStatus() != notifyv1.Status_STATUS_PENDING || !e.names(cur) {
			return tx.Delete(e.key)
		}
		r := rankOf(cur.GetNotification())
		if fresh, ok := parseDue(e.key, v); ok && !fresh.unread {
			r = fresh.rank // a denial folded in since the scan may have raised it
		}
		was := cur.GetNextAttemptTime()
		// Writing the delivery makes two claims of it conflict.
		cur.NextAttemptTime = leaseAt
		if err := putDelivery(tx, cur, 0); err != nil {
			return err
		}
		if err := tx.Delete(e.key); err != nil {
			return err
		}
		lease := dueKey(cur)
		if err := tx.Set(lease, dueValue(r, e.id, cur.GetChannel()), 0); err != nil {
			return err
		}
		c = &claimed{d: cur, lease: lease, was: was, rank: r}
		return nil
	})
	return c, err
}

// release puts a claimed delivery back where it was in the queue, without
// counting an attempt: it found no rate-limit token, or shutdown cut its
// send short.
func (s *Service) release(ctx context.Context, c *claimed) error {
	id := c.d.GetDeliveryId()
	return s.opts.Store.Update(ctx, func(tx store.Txn) error {
		cur, err := getDelivery(tx, id)
		if errors.Is(err, store.ErrNotFound) {
			return tx.Delete(c.lease)
		} else if err != nil {
			return err
		}
		if !bytes.Equal(c.lease, dueKey(cur)) {
			return nil // the lease ran out: another process has it
		}
		r := leaseRank(tx, c.lease, c.rank)
		cur.NextAttemptTime = c.was
		if err := putDelivery(tx, cur, 0); err != nil {
			return err
		}
		if err := tx.Delete(c.lease); err != nil {
			return err
		}
		return tx.Set(dueKey(cur), dueValue(r, id, cur.GetChannel()), 0)
	})
}

// backoff is exponential with "equal" jitter: uniform in [base*2^(n-1)/2, base*2^(n-1)], capped.
func (s *Service) backoff(attempt int) time.Duration {
	d := float64(s.opts.BaseBackoff) * math.Pow(2, float64(attempt-1))
	if d > float64(s.opts.MaxBackoff) {
		d = float64(s.opts.MaxBackoff)
	}
	return time.Duration(d/2 + mrand.Float64()*d/2)
}

// actionResult is the result label of a response action's attempt.
func actionResult(st notifyv1.Status, dry bool) string {
	switch {
	case dry:
		return "dry_run"
	case st == notifyv1.Status_STATUS_DELIVERED:
		return "taken"
	case st == notifyv1.Status_STATUS_DEAD:
		return "dead"
	}
	return "retry"
}
