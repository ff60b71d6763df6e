// Package telemetry sets up OpenTelemetry tracing for a Pushback process from
// the standard OTEL_* environment variables.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// Providers are the telemetry providers of one process.
type Providers struct {
	Tracers    *sdktrace.TracerProvider
	Propagator propagation.TextMapPropagator
}

// Options configures Setup.
type Options struct {
	// ServiceName is the default service.name (OTEL_SERVICE_NAME overrides it).
	ServiceName string
	// Getenv reads the environment (os.Getenv when nil).
	Getenv func(string) string
	// Exporter, when set, replaces the exporter chosen from the environment (tests).
	Exporter sdktrace.SpanExporter
}

// Setup builds the providers. OTEL_TRACES_EXPORTER chooses the exporter:
// "otlp" (OTEL_EXPORTER_OTLP_PROTOCOL grpc or http/protobuf), "console" or
// "none" (the default). Sampling follows OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG (default parentbased_always_on). Trace ids are
// produced whatever the exporter, so responses always carry one.
func Setup(ctx context.Context, opts Options) (*Providers, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(opts.ServiceName)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	if name := getenv("OTEL_SERVICE_NAME"); name != "" {
		res, _ = resource.Merge(res, resource.NewSchemaless(semconv.ServiceName(name)))
	}
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	exp := opts.Exporter
	if exp == nil {
		exp, err = exporterFromEnv(ctx, getenv)
		if err != nil {
			return nil, err
		}
	}
	if exp != nil {
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exp))
	}
	return &Providers{
		Tracers:    sdktrace.NewTracerProvider(tpOpts...),
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}, nil
}

func exporterFromEnv(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	switch kind := strings.TrimSpace(strings.ToLower(getenv("OTEL_TRACES_EXPORTER"))); kind {
	case "", "none":
		return nil, nil
	case "console":
		return stdouttrace.New(stdouttrace.WithWriter(os.Stderr))
	case "otlp":
		switch proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"); {
		case proto == "" && getenv("OTEL_EXPORTER_OTLP_PROTOCOL") == "http/protobuf", proto == "http/protobuf":
			return otlptracehttp.New(ctx)
		default:
			return otlptracegrpc.New(ctx)
		}
	default:
		return nil, fmt.Errorf("telemetry: OTEL_TRACES_EXPORTER=%q is not one of otlp, console, none", kind)
	}
}

// Shutdown flushes and stops the providers.
func (p *Providers) Shutdown(ctx context.Context) error {
	if p == nil || p.Tracers == nil {
		return nil
	}
	return errors.Join(p.Tracers.ForceFlush(ctx), p.Tracers.Shutdown(ctx))
}
