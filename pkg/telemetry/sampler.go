package telemetry

import (
	"fmt"
	"strconv"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// DefaultSampler is the sampler used when OTEL_TRACES_SAMPLER is not set:
// a DefaultRatio of the traces that start here, and whatever an incoming
// traceparent asks for. Tracing every Decide cost more than a tenth of the
// throughput when measured (docs/operators.md); an unsampled decision is
// still found by its decision id (pushback explain) and its trace id is in
// the logs. OTEL_TRACES_SAMPLER=parentbased_always_on traces every one.
const DefaultSampler = "parentbased_traceidratio"

// DefaultRatio is the share of DefaultSampler when OTEL_TRACES_SAMPLER_ARG
// is not set either.
const DefaultRatio = 0.1

// samplerFromEnv reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
// through getenv (the SDK reads only the process environment), and
// OTEL_SDK_DISABLED, which records no span at all while still giving every
// request a trace id.
func samplerFromEnv(getenv func(string) string) (sdktrace.Sampler, error) {
	if disabled(getenv) {
		return sdktrace.NeverSample(), nil
	}
	name := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")))
	arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG"))
	ratio := 1.0
	if name == "" {
		name, ratio = DefaultSampler, DefaultRatio
	}
	if arg != "" && strings.HasSuffix(name, "traceidratio") {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("telemetry: OTEL_TRACES_SAMPLER_ARG=%q is not a ratio between 0 and 1", arg)
		}
		ratio = r
	}
	switch name {
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	case "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	}
	return nil, fmt.Errorf("telemetry: OTEL_TRACES_SAMPLER=%q is not one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio", name)
}

// disabled reports OTEL_SDK_DISABLED=true.
func disabled(getenv func(string) string) bool {
	return strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true")
}
