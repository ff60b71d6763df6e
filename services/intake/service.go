// Package intake receives identity-provider events, validates them, drops
// duplicates by event id, stores them durably before acknowledging, and
// forwards them to scoring through a durable forwarding queue.
package intake

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/ids"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/telemetry"
	"github.com/pushbackhq/pushback/pkg/userid"
	"github.com/pushbackhq/pushback/pkg/validate"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// MaxBatch caps the events of one Ingest call or stream message.
const MaxBatch = 1000

// Observer is the part of the scoring service intake forwards to.
type Observer interface {
	Observe(ctx context.Context, in *scoringv1.ObserveRequest, opts ...grpc.CallOption) (*scoringv1.ObserveResponse, error)
}

// Options configures the service.
type Options struct {
	Store    store.Store
	Observer Observer
	Logger   *slog.Logger
	Tracer   trace.Tracer
	// Meter records the service's metrics (none when nil).
	Meter metric.Meter
	// Redactor hashes user ids in spans (a per-process random key when nil).
	Redactor *telemetry.Redactor
	// Now is the clock of the ingest lag (time.Now when nil).
	Now func() time.Time
	// DedupWindow is how long an event id is remembered (default 7 days).
	DedupWindow time.Duration
	// Retention of stored events (default 90 days).
	Retention time.Duration
	// ForwardTimeout bounds each forwarding call (default 5s).
	ForwardTimeout time.Duration
	// PollInterval of the forwarding retry loop (default 2s).
	PollInterval time.Duration
	// UserIDs canonicalises every event's user id before it is stored (the
	// default fold rule when nil); the spelling received is kept in the
	// event's raw_user_id.
	UserIDs *userid.Rules
}

// Service implements intakev1.IntakeServiceServer.
type Service struct {
	intakev1.UnimplementedIntakeServiceServer
	opts Options
	log  *slog.Logger
	tel  *instruments
	kick chan struct{}
}

// New returns the intake service.
func New(opts Options) (*Service, error) {
	if opts.Store == nil {
		return nil, errors.New("intake: store is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Tracer == nil {
		opts.Tracer = noop.NewTracerProvider().Tracer("intake")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.DedupWindow, 7*24*time.Hour)
	def(&opts.Retention, 90*24*time.Hour)
	def(&opts.ForwardTimeout, 5*time.Second)
	def(&opts.PollInterval, 2*time.Second)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Redactor == nil {
		opts.Redactor = telemetry.NewRedactor(nil, false)
	}
	return &Service{opts: opts, log: opts.Logger, tel: newInstruments(opts.Meter), kick: make(chan struct{}, 1)}, nil
}

// Register adds the service to a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) { intakev1.RegisterIntakeServiceServer(r, s) }

// Key layout (all under "intake/"):
//
//	intake/seen/{tenant}/{event id}                 event key (de-duplication)
//	intake/event/{tenant}/{user}/{ms:020d}/{event id} AuthEvent
//	intake/pending/{batch id}                        event keys of a stored batch not yet forwarded to scoring
//	intake/forward/{event key}                       pending forward of one event (earlier layout, still drained)
//
// One pending record per stored batch, not one mark per event: the record
// is written with the events and deleted once scoring has them, two writes
// per batch where per-event marks cost two per event. It has its own prefix
// so that a replica still running the earlier layout, which reads every
// key under intake/forward/ as an event key, never sees (and drops) one.
func seenKey(e *eventv1.AuthEvent) []byte {
	return fmt.Appendf(nil, "intake/seen/%s/%s", store.KeyPart(e.GetTenant()), e.GetEventId())
}

func userEventPrefix(tenant, user string) []byte {
	return fmt.Appendf(nil, "intake/event/%s/%s/", store.KeyPart(tenant), store.KeyPart(user))
}

func eventKey(e *eventv1.AuthEvent) []byte {
	return fmt.Appendf(userEventPrefix(e.GetTenant(), e.GetUserId()), "%020d/%s", e.GetTime().AsTime().UnixMilli(), e.GetEventId())
}

const (
	pendingPrefix = "intake/pending/"
	// legacyMarkPrefix holds per-event marks of the earlier layout.
	legacyMarkPrefix = "intake/forward/"
)

// encodeKeys and decodeKeys are the value of a forwarding record: each event
// key preceded by its length as a uvarint.
func encodeKeys(keys [][]byte) []byte {
	n := 0
	for _, k := range keys {
		n += binary.MaxVarintLen32 + len(k)
	}
	b := make([]byte, 0, n)
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
	}
	return b
}

func decodeKeys(b []byte) ([][]byte, error) {
	var keys [][]byte
	for len(b) > 0 {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return nil, errors.New("intake: corrupt forwarding record")
		}
		keys = append(keys, b[w:w+int(n)])
		b = b[w+int(n):]
	}
	return keys, nil
}

var _ validate.SelfChecked = (*Service)(nil)

// ChecksItself implements validate.SelfChecked: Store checks every batch,
// whoever hands it over, and counts the events it refuses.
func (s *Service) ChecksItself(fullMethod string) bool {
	return fullMethod == intakev1.IntakeService_Ingest_FullMethodName || fullMethod == intakev1.IntakeService_IngestStream_FullMethodName
}

// Validate checks a batch and returns an InvalidArgument naming every bad field.
// It holds the batch to the rules IngestRequest states, by hand: the
// pollers call Store in-process, where no interceptor checks the batch,
// and it stops at the size limit and at 20 bad fields, before the work of
// checking every event.
func Validate(events []*eventv1.AuthEvent) error {
	if len(events) > MaxBatch {
		return apierr.TooLarge("events", len(events), MaxBatch)
	}
	var v apierr.Violations
	for i, e := range events {
		validate.Event(&v, fmt.Sprintf("events[%d]", i), e)
		if v.Len() >= 20 {
			break
		}
	}
	return v.Err()
}

// Result of storing a batch.
type Result struct {
	Accepted, Duplicates int
}

// Store validates and durably stores a batch (all or nothing), then
// forwards the new events to scoring. It is what every adapter calls.
func (s *Service) Store(ctx context.Context, events []*eventv1.AuthEvent) (Result, error) {
	err := Validate(events)
	if err == nil {
		events, err = s.canonicalUsers(events)
	}
	if err != nil {
		for _, e := range events {
			s.tel.count(ctx, resultRejected, e)
		}
		return Result{}, err
	}
	ctx, span := s.opts.Tracer.Start(ctx, "intake.store", trace.WithAttributes(attribute.Int("pushback.events", len(events))))
	defer span.End()
	if len(events) == 1 && span.IsRecording() {
		span.SetAttributes(s.opts.Redactor.UserAttr(events[0].GetUserId()),
			attribute.String("pushback.event_type", events[0].GetType().String()))
	}
	var res Result
	var fresh [][]byte
	var freshEvents, dups []*eventv1.AuthEvent
	forwardKey := []byte(pendingPrefix + ids.New(s.opts.Now()))
	err = s.opts.Store.Update(ctx, func(tx store.Txn) error {
		res, fresh, freshEvents, dups = Result{}, fresh[:0], freshEvents[:0], dups[:0]
		inBatch := map[string]bool{}
		for _, e := range events {
			sk := seenKey(e)
			if inBatch[string(sk)] {
				res.Duplicates++
				dups = append(dups, e)
				continue
			}
			inBatch[string(sk)] = true
			if _, err := tx.Get(sk); err == nil {
				res.Duplicates++
				dups = append(dups, e)
				continue
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			ek := eventKey(e)
			b, err := proto.Marshal(e)
			if err != nil {
				return err
			}
			if err := tx.Set(ek, b, s.opts.Retention); err != nil {
				return err
			}
			if err := tx.Set(sk, ek, s.opts.DedupWindow); err != nil {
				return err
			}
			res.Accepted++
			fresh = append(fresh, ek)
			freshEvents = append(freshEvents, e)
		}
		if s.opts.Observer != nil && len(fresh) > 0 {
			return tx.Set(forwardKey, encodeKeys(fresh), 0)
		}
		return nil
	})
	if err != nil {
		s.log.ErrorContext(ctx, "store events", slog.Any("error", err))
		return Result{}, apierr.StoreUnavailable()
	}
	span.SetAttributes(attribute.Int("pushback.accepted", res.Accepted), attribute.Int("pushback.duplicates", res.Duplicates))
	now := s.opts.Now()
	for _, e := range freshEvents {
		s.tel.stored(ctx, e, now)
	}
	for _, e := range dups {
		s.tel.count(ctx, resultDuplicate, e)
	}
	if len(freshEvents) > 0 && s.opts.Observer != nil {
		if err := s.forward(ctx, forwardKey, freshEvents); err != nil {
			// Stored and queued: the forwarding loop retries.
			s.log.WarnContext(ctx, "forward to scoring; will retry", slog.Any("error", err))
			select {
			case s.kick <- struct{}{}:
			default:
			}
		}
	}
	return res, nil
}

// forward hands events to scoring, each call of at most MaxBatch events
// under its own ForwardTimeout, then deletes the record that listed them.
func (s *Service) forward(ctx context.Context, record []byte, events []*eventv1.AuthEvent) error {
	ctx = context.WithoutCancel(ctx)
	// A retry from the forwarding loop starts its own trace.
	ctx, span := s.opts.Tracer.Start(ctx, "intake.forward", trace.WithAttributes(attribute.Int("pushback.events", len(events))))
	defer span.End()
	for start := 0; start < len(events); start += MaxBatch {
		chunk := events[start:min(start+MaxBatch, len(events))]
		fctx, cancel := context.WithTimeout(ctx, s.opts.ForwardTimeout)
		_, err := s.opts.Observer.Observe(fctx, &scoringv1.ObserveRequest{Events: chunk})
		cancel()
		if err != nil {
			return err
		}
	}
	dctx, cancel := context.WithTimeout(ctx, s.opts.ForwardTimeout)
	defer cancel()
	return s.opts.Store.Update(dctx, func(tx store.Txn) error { return tx.Delete(record) })
}

// Run retries pending forwards until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	if s.opts.Observer == nil {
		return nil
	}
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.kick:
		}
		if err := s.ForwardPending(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "forward pending events", slog.Any("error", err))
		}
	}
}

// ForwardPending forwards every stored event scoring has not yet
// acknowledged, one record at a time: each record is deleted as soon as
// scoring has its events, so a slow pass still makes progress. Events that
// expired or cannot be read are skipped (and logged). Records younger than
// ForwardTimeout are left to the call that stored them.
func (s *Service) ForwardPending(ctx context.Context) error {
	for _, prefix := range []string{pendingPrefix, legacyMarkPrefix} {
		for {
			items, err := s.opts.Store.Scan(ctx, store.ScanOptions{Prefix: []byte(prefix), Limit: 16})
			if err != nil || len(items) == 0 {
				if err != nil {
					return err
				}
				break
			}
			fresh := false
			for _, it := range items {
				if prefix == pendingPrefix && s.inFlight(it.Key) {
					// Records are in time order: this one and those after it
					// were stored moments ago, and the call that stored them
					// is forwarding them now. Sending them too would count
					// their events twice.
					fresh = true
					break
				}
				err := s.forwardRecord(ctx, it)
				if status.Code(err) == codes.InvalidArgument {
					// Scoring will never take these events (a rule tightened
					// since they were stored): retrying would block every
					// record behind this one. They stay stored in intake.
					s.log.ErrorContext(ctx, "scoring refuses the events of a pending record; dropping it from the queue",
						slog.String("key", string(it.Key)), slog.Any("error", err))
					err = s.opts.Store.Update(ctx, func(tx store.Txn) error { return tx.Delete(it.Key) })
				}
				if err != nil {
					return err
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if fresh {
				break
			}
		}
	}
	return nil
}

// inFlight reports whether a pending record is young enough that the call
// that stored it may still be forwarding it (within ForwardTimeout).
func (s *Service) inFlight(key []byte) bool {
	at, ok := ids.Time(string(key[len(pendingPrefix):]))
	return ok && s.opts.Now().Sub(at) < s.opts.ForwardTimeout
}

// forwardRecord forwards the events one pending record (or one legacy
// mark) lists and deletes it.
func (s *Service) forwardRecord(ctx context.Context, it store.Item) error {
	keys := [][]byte{it.Key[len(legacyMarkPrefix):]}
	if bytes.HasPrefix(it.Key, []byte(pendingPrefix)) {
		var err error
		if keys, err = decodeKeys(it.Value); err != nil {
			// A record that cannot be read would block the queue forever.
			s.log.ErrorContext(ctx, "drop unreadable forwarding record", slog.String("key", string(it.Key)), slog.Any("error", err))
			keys = nil
		}
	}
	events := make([]*eventv1.AuthEvent, 0, len(keys))
	for _, ek := range keys {
		b, err := s.opts.Store.Get(ctx, ek)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		e := &eventv1.AuthEvent{}
		if err := proto.Unmarshal(b, e); err != nil {
			s.log.ErrorContext(ctx, "skip unreadable stored event", slog.String("key", string(ek)), slog.Any("error", err))
			continue
		}
		events = append(events, e)
	}
	return s.forward(ctx, it.Key, events)
}

// Ingest implements the RPC.
func (s *Service) Ingest(ctx context.Context, req *intakev1.IngestRequest) (*intakev1.IngestResponse, error) {
	res, err := s.Store(ctx, req.GetEvents())
	if err != nil {
		return nil, err
	}
	return &intakev1.IngestResponse{Accepted: int32(res.Accepted), Duplicates: int32(res.Duplicates)}, nil
}

// IngestStream implements the RPC: each message is one all-or-nothing batch,
// stored before the next is read. An invalid batch ends the stream with
// InvalidArgument; earlier batches stay stored.
func (s *Service) IngestStream(stream grpc.ClientStreamingServer[intakev1.IngestStreamRequest, intakev1.IngestStreamResponse]) error {
	resp := &intakev1.IngestStreamResponse{}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(resp)
		}
		if err != nil {
			return err
		}
		res, err := s.Store(stream.Context(), msg.GetEvents())
		if err != nil {
			return err
		}
		resp.Batches++
		resp.Accepted += int64(res.Accepted)
		resp.Duplicates += int64(res.Duplicates)
	}
}

// ListEvents implements the RPC.
func (s *Service) ListEvents(ctx context.Context, req *intakev1.ListEventsRequest) (*intakev1.ListEventsResponse, error) {
	if err := validate.Request(ctx, req); err != nil {
		return nil, err
	}
	var v apierr.Violations
	user := s.opts.UserIDs.Check(&v, "user_id", req.GetTenant(), req.GetUserId())
	prefix := userEventPrefix(req.GetTenant(), user)
	var after []byte
	if tok := req.GetPageToken(); tok != "" {
		b, ok := store.ParseCursor(tok, prefix)
		if !ok {
			v.Add("page_token", "is not a token from an earlier response for this user")
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
	if after == nil && req.GetStartTime() != nil {
		after = fmt.Appendf(append([]byte(nil), prefix...), "%020d", req.GetStartTime().AsTime().UnixMilli())
	}
	endMs := int64(1<<63 - 1)
	if req.GetEndTime() != nil {
		endMs = req.GetEndTime().AsTime().UnixMilli()
	}
	items, err := s.opts.Store.Scan(ctx, store.ScanOptions{Prefix: prefix, After: after, Limit: size + 1})
	if err != nil {
		s.log.ErrorContext(ctx, "list events", slog.Any("error", err))
		return nil, apierr.StoreUnavailable()
	}
	resp := &intakev1.ListEventsResponse{}
	for i, it := range items {
		var ms int64
		if _, err := fmt.Sscanf(string(it.Key[len(prefix):]), "%020d/", &ms); err == nil && ms >= endMs {
			break
		}
		if i == size {
			resp.NextPageToken = store.Cursor(items[i-1].Key)
			break
		}
		e := &eventv1.AuthEvent{}
		if err := proto.Unmarshal(it.Value, e); err != nil {
			return nil, apierr.Internal()
		}
		resp.Events = append(resp.Events, e)
	}
	return resp, nil
}
