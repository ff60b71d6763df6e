// Package telemetry sets up OpenTelemetry tracing and metrics for a Pushback
// process from the standard OTEL_* environment variables, exposes metrics in
// the Prometheus format, adds trace ids to logs and hashes user ids so that
// raw identities stay out of telemetry.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

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
	Meters     *sdkmetric.MeterProvider
	Propagator propagation.TextMapPropagator
	registry   *prometheus.Registry
}

// Options configures Setup.
type Options struct {
	// ServiceName is the default service.name (OTEL_SERVICE_NAME overrides it).
	ServiceName string
	// Getenv reads the environment (os.Getenv when nil).
	Getenv func(string) string
	// Exporter, when set, replaces the exporter chosen from the environment (tests).
	Exporter sdktrace.SpanExporter
	// MetricReader, when set, is added beside the Prometheus reader (tests).
	MetricReader sdkmetric.Reader
	// KeepOutcomes exports every trace a span marks with Keep (a decision
	// that suppressed a push, used a failure mode or failed) or that has a
	// span in error, whatever the sampler chose; the others follow the
	// sampler. It records every span to do so (see keepProcessor).
	KeepOutcomes bool
	// KeepLimits bound what KeepOutcomes holds (DefaultKeepLimits for
	// each limit not set).
	KeepLimits KeepLimits
}

// Setup builds the providers. OTEL_TRACES_EXPORTER chooses the exporter:
// "otlp" (OTEL_EXPORTER_OTLP_PROTOCOL grpc or http/protobuf), "console" or
// "none" (the default). Sampling follows OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG (default DefaultSampler). OTEL_SDK_DISABLED=true
// records and exports no span and pushes no metric (the Prometheus
// endpoint stays). With KeepOutcomes, traces marked by Keep are exported
// whatever the sampler chose. Trace ids are produced whatever the exporter or
// sampler, so responses always carry one.
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
	sampler, err := samplerFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	exp := opts.Exporter
	if exp == nil && !disabled(getenv) {
		exp, err = exporterFromEnv(ctx, getenv)
		if err != nil {
			return nil, err
		}
	}
	reg := prometheus.NewRegistry()
	promExp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	mpOpts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(promExp)}
	if opts.MetricReader != nil {
		mpOpts = append(mpOpts, sdkmetric.WithReader(opts.MetricReader))
	}
	if !disabled(getenv) {
		r, err := metricReaderFromEnv(ctx, getenv)
		if err != nil {
			return nil, err
		}
		if r != nil {
			mpOpts = append(mpOpts, sdkmetric.WithReader(r))
		}
	}
	meters := sdkmetric.NewMeterProvider(mpOpts...)
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	switch {
	case exp != nil && opts.KeepOutcomes && !disabled(getenv):
		keep := newKeepProcessor(sdktrace.NewBatchSpanProcessor(exp), opts.KeepLimits, meters.Meter("github.com/pushbackhq/pushback/pkg/telemetry"))
		tpOpts = append(tpOpts, sdktrace.WithSampler(recordAll{sampler}), sdktrace.WithSpanProcessor(keep))
	case exp != nil:
		tpOpts = append(tpOpts, sdktrace.WithSampler(sampler), sdktrace.WithBatcher(exp))
	default:
		// Nothing is exported: record only what the sampler chose.
		tpOpts = append(tpOpts, sdktrace.WithSampler(sampler))
	}
	return &Providers{
		Tracers:    sdktrace.NewTracerProvider(tpOpts...),
		Meters:     meters,
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		registry:   reg,
	}, nil
}

// metricReaderFromEnv adds an OTLP push reader when OTEL_METRICS_EXPORTER=otlp.
func metricReaderFromEnv(ctx context.Context, getenv func(string) string) (sdkmetric.Reader, error) {
	switch kind := strings.TrimSpace(strings.ToLower(getenv("OTEL_METRICS_EXPORTER"))); kind {
	case "", "none", "prometheus":
		return nil, nil
	case "otlp":
		var exp sdkmetric.Exporter
		var err error
		proto := getenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
		if proto == "" {
			proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
		}
		if proto == "http/protobuf" {
			exp, err = otlpmetrichttp.New(ctx)
		} else {
			exp, err = otlpmetricgrpc.New(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp metrics: %w", err)
		}
		return sdkmetric.NewPeriodicReader(exp), nil
	default:
		return nil, fmt.Errorf("telemetry: OTEL_METRICS_EXPORTER=%q is not one of otlp, prometheus, none", kind)
	}
}

// MetricsHandler serves the metrics in the Prometheus text format.
func (p *Providers) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{})
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
	err := errors.Join(p.Tracers.ForceFlush(ctx), p.Tracers.Shutdown(ctx))
	if p.Meters != nil {
		err = errors.Join(err, p.Meters.Shutdown(ctx))
	}
	return err
}
