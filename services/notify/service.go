// Package notify queues notifications in a durable outbox and delivers them
// through channels (webhooks, the log) with retries, exponential backoff with
// jitter, a dead-letter status and idempotency keys.
package notify

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"strings"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/ids"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/validate"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
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
	// MaxAttempts before a delivery is dead-lettered (default 8).
	MaxAttempts int
	// BaseBackoff is the first retry delay (default 1s); it doubles per
	// attempt up to MaxBackoff (default 5m), with full jitter.
	BaseBackoff, MaxBackoff time.Duration
	// DeliveryTimeout bounds each outbound call (default 5s).
	DeliveryTimeout time.Duration
	// PollInterval is how often the outbox is scanned (default 1s).
	PollInterval time.Duration
	// Retention of delivered and dead deliveries (default 30 days).
	Retention time.Duration
	Now       func() time.Time
}

// Service implements notifyv1.NotificationServiceServer and runs the
// delivery worker.
type Service struct {
	notifyv1.UnimplementedNotificationServiceServer
	opts Options
	log  *slog.Logger
	kick chan struct{}
}

// New returns the notification service.
func New(opts Options) (*Service, error) {
	if opts.Store == nil {
		return nil, errors.New("notify: store is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if len(opts.Channels) == 0 {
		opts.Channels = []Channel{LogChannel{Logger: opts.Logger}}
	}
	if opts.Tracer == nil {
		opts.Tracer = trace.NewNoopTracerProvider().Tracer("notify")
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
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 8
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{opts: opts, log: opts.Logger, kick: make(chan struct{}, 1)}, nil
}

// Register adds the service to a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) { notifyv1.RegisterNotificationServiceServer(r, s) }

// Key layout (all under "notify/"):
//
//	notify/delivery/{id}             Delivery
//	notify/due/{ms:020d}/{id}        id of a pending delivery due at ms
//	notify/key/{idempotency key}     delivery ids, comma separated
func deliveryKey(id string) []byte { return []byte("notify/delivery/" + id) }

func dueKey(at time.Time, id string) []byte {
	return fmt.Appendf(nil, "notify/due/%020d/%s", at.UnixMilli(), id)
}

func idemKey(k string) []byte { return []byte("notify/key/" + k) }

// Notify implements the RPC: one delivery per channel that accepts the kind,
// written durably before the reply.
func (s *Service) Notify(ctx context.Context, req *notifyv1.NotifyRequest) (*notifyv1.NotifyResponse, error) {
	var v apierr.Violations
	validate.Enum(&v, "kind", int32(req.GetKind()), notifyv1.Kind_name, true)
	validate.ID(&v, "idempotency_key", req.GetIdempotencyKey(), true)
	validate.ID(&v, "user_id", req.GetUserId(), false)
	validate.ID(&v, "decision_id", req.GetDecisionId(), false)
	validate.Text(&v, "title", req.GetTitle())
	if len(req.GetMessage()) > 16<<10 {
		v.Add("message", "longer than 16 KiB")
	}
	if len(req.GetAttributes()) > 64 {
		v.Add("attributes", "more than 64 attributes")
	}
	validate.Time(&v, "time", req.GetTime())
	if err := v.Err(); err != nil {
		return nil, err
	}
	ctx, span := s.opts.Tracer.Start(ctx, "notify.enqueue", trace.WithAttributes(attribute.String("pushback.kind", req.GetKind().String())))
	defer span.End()
	now := s.opts.Now()
	resp := &notifyv1.NotifyResponse{}
	err := s.opts.Store.Update(ctx, func(tx store.Txn) error {
		resp.DeliveryIds, resp.Duplicate = nil, false
		if b, err := tx.Get(idemKey(req.GetIdempotencyKey())); err == nil {
			resp.Duplicate = true
			if len(b) > 0 {
				resp.DeliveryIds = strings.Split(string(b), ",")
			}
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		for _, ch := range s.opts.Channels {
			if !ch.Accepts(req.GetKind()) {
				continue
			}
			d := &notifyv1.Delivery{
				DeliveryId:      ids.New(now),
				Channel:         ch.Name(),
				Status:          notifyv1.Status_STATUS_PENDING,
				NextAttemptTime: timestamppb.New(now),
				CreateTime:      timestamppb.New(now),
				Notification:    req,
			}
			b, err := proto.Marshal(d)
			if err != nil {
				return err
			}
			if err := tx.Set(deliveryKey(d.GetDeliveryId()), b, 0); err != nil {
				return err
			}
			if err := tx.Set(dueKey(now, d.GetDeliveryId()), []byte(d.GetDeliveryId()), 0); err != nil {
				return err
			}
			resp.DeliveryIds = append(resp.DeliveryIds, d.GetDeliveryId())
		}
		return tx.Set(idemKey(req.GetIdempotencyKey()), []byte(strings.Join(resp.DeliveryIds, ",")), s.opts.Retention)
	})
	if err != nil {
		s.log.ErrorContext(ctx, "enqueue notification", slog.Any("error", err))
		return nil, apierr.StoreUnavailable()
	}
	if !resp.Duplicate && len(resp.DeliveryIds) > 0 {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return resp, nil
}

// ListDeliveries implements the RPC: oldest first, optionally by status.
func (s *Service) ListDeliveries(ctx context.Context, req *notifyv1.ListDeliveriesRequest) (*notifyv1.ListDeliveriesResponse, error) {
	var v apierr.Violations
	validate.Enum(&v, "status", int32(req.GetStatus()), notifyv1.Status_name, false)
	if req.GetPageSize() < 0 || req.GetPageSize() > 1000 {
		v.Add("page_size", "must be between 0 and 1000")
	}
	var after []byte
	if tok := req.GetPageToken(); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || !strings.HasPrefix(string(b), "notify/delivery/") {
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
				resp.NextPageToken = base64.RawURLEncoding.EncodeToString(deliveryKey(resp.Deliveries[size-1].GetDeliveryId()))
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

// DeliverDue attempts every delivery whose time has come. It returns when
// none is due.
func (s *Service) DeliverDue(ctx context.Context) error {
	for {
		now := s.opts.Now()
		items, err := s.opts.Store.Scan(ctx, store.ScanOptions{Prefix: []byte("notify/due/"), Limit: 64})
		if err != nil {
			return err
		}
		due := 0
		for _, it := range items {
			var ms int64
			if _, err := fmt.Sscanf(string(it.Key), "notify/due/%020d/", &ms); err != nil || ms > now.UnixMilli() {
				break
			}
			due++
			if err := s.attempt(ctx, it.Key, string(it.Value)); err != nil {
				return err
			}
		}
		if due < 64 {
			return nil
		}
	}
}

func (s *Service) channel(name string) Channel {
	for _, c := range s.opts.Channels {
		if c.Name() == name {
			return c
		}
	}
	return nil
}

// attempt makes one delivery attempt and records its result.
func (s *Service) attempt(ctx context.Context, due []byte, id string) error {
	b, err := s.opts.Store.Get(ctx, deliveryKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return s.opts.Store.Update(ctx, func(tx store.Txn) error { return tx.Delete(due) })
	}
	if err != nil {
		return err
	}
	d := &notifyv1.Delivery{}
	if err := proto.Unmarshal(b, d); err != nil {
		return err
	}
	ctx, span := s.opts.Tracer.Start(ctx, "notify.deliver", trace.WithAttributes(
		attribute.String("pushback.channel", d.GetChannel()), attribute.String("pushback.decision_id", d.GetNotification().GetDecisionId())))
	defer span.End()
	var deliverErr error
	if ch := s.channel(d.GetChannel()); ch == nil {
		deliverErr = fmt.Errorf("channel %q is no longer configured", d.GetChannel())
	} else {
		dctx, cancel := context.WithTimeout(ctx, s.opts.DeliveryTimeout)
		deliverErr = ch.Deliver(dctx, d)
		cancel()
	}
	now := s.opts.Now()
	d.Attempts++
	var next []byte
	switch {
	case deliverErr == nil:
		d.Status = notifyv1.Status_STATUS_DELIVERED
		d.DeliverTime = timestamppb.New(now)
		d.NextAttemptTime = nil
		d.LastError = ""
	case int(d.GetAttempts()) >= s.opts.MaxAttempts:
		d.Status = notifyv1.Status_STATUS_DEAD
		d.LastError = deliverErr.Error()
		d.NextAttemptTime = nil
		s.log.ErrorContext(ctx, "delivery dead-lettered", slog.String("delivery_id", id), slog.String("channel", d.GetChannel()), slog.Any("error", deliverErr))
	default:
		at := now.Add(s.backoff(int(d.GetAttempts())))
		d.LastError = deliverErr.Error()
		d.NextAttemptTime = timestamppb.New(at)
		next = dueKey(at, id)
		s.log.WarnContext(ctx, "delivery failed; will retry", slog.String("delivery_id", id), slog.Int("attempt", int(d.GetAttempts())), slog.Any("error", deliverErr))
	}
	span.SetAttributes(attribute.String("pushback.status", d.GetStatus().String()), attribute.Int("pushback.attempt", int(d.GetAttempts())))
	nb, err := proto.Marshal(d)
	if err != nil {
		return err
	}
	return s.opts.Store.Update(ctx, func(tx store.Txn) error {
		ttl := time.Duration(0)
		if d.GetStatus() != notifyv1.Status_STATUS_PENDING {
			ttl = s.opts.Retention
		}
		if err := tx.Set(deliveryKey(id), nb, ttl); err != nil {
			return err
		}
		if err := tx.Delete(due); err != nil {
			return err
		}
		if next != nil {
			return tx.Set(next, []byte(id), 0)
		}
		return nil
	})
}

// backoff is exponential with full jitter: uniform in [base*2^(n-1)/2, base*2^(n-1)], capped.
func (s *Service) backoff(attempt int) time.Duration {
	d := float64(s.opts.BaseBackoff) * math.Pow(2, float64(attempt-1))
	if d > float64(s.opts.MaxBackoff) {
		d = float64(s.opts.MaxBackoff)
	}
	return time.Duration(d/2 + mrand.Float64()*d/2)
}
