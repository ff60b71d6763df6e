package telemetry

import (
	"context"
	"errors"

	"github.com/pushbackhq/pushback/pkg/store"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// TraceStore wraps st so that each Get, Update and Scan made inside a
// recorded trace gets a client span ("store.get", "store.update",
// "store.scan") naming the engine. Calls outside a recorded trace (the
// workers' polling) pass straight through, so they cost nothing and do not
// fill the trace backend with one-span traces.
func TraceStore(st store.Store, tracer trace.Tracer, engine string) store.Store {
	if tracer == nil {
		return st
	}
	sys := attribute.String("db.system.name", engine)
	return &tracedStore{Store: st, tracer: tracer,
		get:    []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(sys, attribute.String("db.operation.name", "get"))},
		update: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(sys, attribute.String("db.operation.name", "update"))},
		scan:   []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(sys, attribute.String("db.operation.name", "scan"))},
	}
}

type tracedStore struct {
	store.Store
	tracer            trace.Tracer
	get, update, scan []trace.SpanStartOption
}

func (s *tracedStore) Get(ctx context.Context, key []byte) ([]byte, error) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return s.Store.Get(ctx, key)
	}
	ctx, span := s.tracer.Start(ctx, "store.get", s.get...)
	b, err := s.Store.Get(ctx, key)
	end(span, err)
	return b, err
}

func (s *tracedStore) Update(ctx context.Context, fn func(tx store.Txn) error) error {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return s.Store.Update(ctx, fn)
	}
	ctx, span := s.tracer.Start(ctx, "store.update", s.update...)
	attempts := 0
	err := s.Store.Update(ctx, func(tx store.Txn) error { attempts++; return fn(tx) })
	if attempts > 1 {
		// Conflicting writers made the store run the transaction again.
		span.SetAttributes(attribute.Int("pushback.store.attempts", attempts))
	}
	end(span, err)
	return err
}

func (s *tracedStore) Scan(ctx context.Context, opts store.ScanOptions) ([]store.Item, error) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return s.Store.Scan(ctx, opts)
	}
	ctx, span := s.tracer.Start(ctx, "store.scan", s.scan...)
	items, err := s.Store.Scan(ctx, opts)
	span.SetAttributes(attribute.Int("pushback.store.items", len(items)))
	end(span, err)
	return items, err
}

// end closes a store span; a missing key is an answer, not an error. The
// error text is left out: a store error may quote a key, and keys hold
// user ids.
func end(span trace.Span, err error) {
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		span.SetStatus(codes.Error, "store error")
	}
	span.End()
}
