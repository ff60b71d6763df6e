// Package component is the contract between a service and the process that
// runs it: what a service needs from the process (Deps) and what it gives
// back for the process to serve, run and stop (Parts). A service builds
// its Parts from its own Config; the process only orders and runs them.
package component

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/telemetry"
	"github.com/pushbackhq/pushback/pkg/userid"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// Deps are what the process hands every service it runs.
type Deps struct {
	Store store.Store
	// SharedStore is set when other replicas share the store.
	SharedStore bool
	// DataDir is a directory the service may keep files in.
	DataDir  string
	Logger   *slog.Logger
	Tracer   trace.Tracer
	Meter    metric.Meter
	Redactor *telemetry.Redactor
	UserIDs  *userid.Rules
	// Peer is a connection to the named service, in this process or in
	// another: the service calling it cannot tell which. It is nil, with
	// no error, when the process neither runs the service nor knows its
	// address.
	Peer func(name string) (grpc.ClientConnInterface, error)
}

// Route is one HTTP endpoint a service serves.
type Route struct {
	// Pattern is the http.ServeMux pattern.
	Pattern string
	// Name names the endpoint in the guard's logs and metrics (Pattern
	// when empty).
	Name string
	// Role may call the endpoint; empty when the handler authenticates
	// its callers itself (a signed link) or serves what anyone may read.
	Role    auth.Role
	Handler http.Handler
}

// Parts are what a service gives the process to serve and run.
type Parts struct {
	// Register adds the service's gRPC services to a server.
	Register []func(grpc.ServiceRegistrar)
	// Routes are its HTTP endpoints.
	Routes []Route
	// Workers run until their context ends.
	Workers []func(context.Context) error
	// Drain, at shutdown while peers can still be reached, lets work that
	// follows answers already given finish, within the deadline.
	Drain []func(context.Context) error
	// Quiet, at shutdown before the server stops, ends the long waits of
	// streams and their clients so that the graceful stop is not held.
	Quiet []func()
	// Closers release what the service holds, after the server stopped.
	Closers []func(context.Context) error
}

// Add appends o's parts to p's, keeping their order.
func (p *Parts) Add(o Parts) {
	p.Register = append(p.Register, o.Register...)
	p.Routes = append(p.Routes, o.Routes...)
	p.Workers = append(p.Workers, o.Workers...)
	p.Drain = append(p.Drain, o.Drain...)
	p.Quiet = append(p.Quiet, o.Quiet...)
	p.Closers = append(p.Closers, o.Closers...)
}

// The services' names: what a process runs (--services), what Peer takes.
const (
	Intake   = "intake"
	Scoring  = "scoring"
	Decision = "decision"
	Notify   = "notify"
)

// With returns d for the named service: its logs carry the service's name.
func (d Deps) With(service string) Deps {
	d.Logger = d.Logger.With("service", service)
	return d
}
