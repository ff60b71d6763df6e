// Package mesh is the only code that knows which services run where: it
// builds each service this process runs from its own Config (its Init),
// reaches the others as peers (in memory when they run here, over the
// network when not), serves everything on one gRPC server and one HTTP
// server, and runs until the context ends, then shuts down gracefully.
package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/component"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/telemetry"
	"github.com/pushbackhq/pushback/pkg/validate"
	"github.com/pushbackhq/pushback/services/console"
	"github.com/pushbackhq/pushback/services/decision"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Options are what a caller (the binary, a test) adds to the Config.
type Options struct {
	Logger *slog.Logger
	// SpanExporter replaces the exporter chosen from OTEL_* (tests).
	SpanExporter sdktrace.SpanExporter
	// Getenv reads the environment (os.Getenv when nil).
	Getenv func(string) string
	// Ready, when set, is called with the bound addresses once serving.
	Ready func(grpcAddr, httpAddr string)
	// DecisionCounters, when set, receives the decision service's counts.
	DecisionCounters *decision.Counters
	// MetricReader, when set, reads the metrics beside /metrics (tests).
	MetricReader sdkmetric.Reader
}

// closer stack: resources are released in reverse order of acquisition.
type closers []func(context.Context) error

func (c *closers) add(f func(context.Context) error) { *c = append(*c, f) }

func (c closers) close(ctx context.Context) error {
	var errs []error
	for i := len(c) - 1; i >= 0; i-- {
		errs = append(errs, c[i](ctx))
	}
	return errors.Join(errs...)
}

// Run serves until ctx ends, then shuts down: health NOT_SERVING, HTTP and
// gRPC drained with a deadline, workers stopped, store closed, telemetry
// flushed.
func Run(ctx context.Context, cfg Config, opts Options) (err error) {
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Every log record made inside a span carries its trace and span ids.
	log = slog.New(telemetry.LogHandler(log.Handler()))
	var cl closers
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		if cerr := cl.close(sctx); cerr != nil {
			log.Error("shutdown", slog.Any("error", cerr))
			err = errors.Join(err, cerr)
		}
	}()

	tel, err := setupTelemetry(ctx, cfg, opts, log)
	if err != nil {
		return err
	}
	cl.add(tel.Shutdown)
	deps, err := newDeps(ctx, cfg, log, tel, &cl)
	if err != nil {
		return err
	}

	counters := opts.DecisionCounters
	if counters == nil {
		counters = &decision.Counters{}
	}
	// Every call of every service passes the guard (docs/security.md).
	guard, err := newGuard(cfg, log, deps.Meter, counters)
	if err != nil {
		return err
	}
	srv, peers, err := newServer(cfg, log, tel, guard, &cl)
	if err != nil {
		return err
	}
	// Services call their peers as trusted code; the HTTP routes call
	// them with what outside callers sent (see rpc.ClientOptions.Trusted).
	deps.Peer = peers.reach(true)
	parts, err := initServices(cfg, deps, counters, &cl)
	if err != nil {
		return err
	}
	register(srv, parts)
	edge := deps
	edge.Peer = peers.reach(false)

	ls, err := listen(cfg, edge, parts.Routes, guard, srv, tel)
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(ls.grpc) })
	if ls.httpSrv != nil {
		g.Go(func() error {
			if err := ls.httpSrv.Serve(ls.http); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	wctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	wg, _ := errgroup.WithContext(wctx)
	for _, w := range parts.Workers {
		wg.Go(func() error { return w(wctx) })
	}
	for _, s := range cfg.Services {
		srv.Health.SetServingStatus(serviceName(s), healthpb.HealthCheckResponse_SERVING)
	}
	srv.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	grpcAddr, httpAddr := ls.addrs()
	log.Info("pushback serving", slog.Any("services", cfg.Services), slog.String("grpc_addr", grpcAddr), slog.String("http_addr", httpAddr), slog.String("data_dir", cfg.DataDir))
	if opts.Ready != nil {
		opts.Ready(grpcAddr, httpAddr)
	}

	<-gctx.Done()
	log.Info("shutting down")
	stop(ctx, cfg.ShutdownTimeout, log, srv, ls.httpSrv, parts)
	stopWorkers()
	werr := wg.Wait()
	serr := g.Wait()
	if errors.Is(serr, grpc.ErrServerStopped) {
		serr = nil
	}
	if ctx.Err() != nil && serr == nil {
		return werr
	}
	return errors.Join(serr, werr)
}

// setupTelemetry starts the trace and metric providers from OTEL_*.
func setupTelemetry(ctx context.Context, cfg Config, opts Options, log *slog.Logger) (*telemetry.Providers, error) {
	tel, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "pushback", Getenv: opts.Getenv, Exporter: opts.SpanExporter, MetricReader: opts.MetricReader,
		KeepOutcomes: cfg.TelemetryKeepOutcomes})
	if err != nil {
		return nil, err
	}
	if cfg.TelemetryRawIDs {
		log.Warn("telemetry-raw-ids is on: user ids and IPs are recorded in clear in spans and logs")
	}
	return tel, nil
}

// newDeps opens the store and makes what every service shares but its
// peers (Run adds Peer once the server exists).
func newDeps(ctx context.Context, cfg Config, log *slog.Logger, tel *telemetry.Providers, cl *closers) (component.Deps, error) {
	d := component.Deps{Logger: log, Tracer: tel.Tracers.Tracer("github.com/pushbackhq/pushback"), Meter: tel.Meters.Meter("github.com/pushbackhq/pushback"),
		Redactor: telemetry.NewRedactor([]byte(cfg.TelemetryHashKey), cfg.TelemetryRawIDs), SharedStore: cfg.StoreKind == "redis", DataDir: cfg.DataDir}
	var err error
	if d.UserIDs, err = cfg.UserIDs.Rules(); err != nil {
		return d, err
	}
	st, err := openStore(ctx, cfg, log, d.Meter)
	if err != nil {
		return d, err
	}
	cl.add(func(context.Context) error { return st.Close() })
	d.Store = telemetry.TraceStore(st, d.Tracer, cfg.StoreKind)
	return d, nil
}

// register adds every service this process runs to r: the one place
// where services meet a server.
func register(r grpc.ServiceRegistrar, parts component.Parts) {
	for _, reg := range parts.Register {
		reg(r)
	}
}

// peers reaches the services this process calls: one it runs through the
// server's in-process channel (the same interceptors and handlers, no
// HTTP/2 round trip), a remote one through a small pool of connections,
// because one HTTP/2 connection serialises its calls through one writer
// and one reader goroutine per side.
type peers struct {
	cfg         Config
	srv         *rpc.Server
	rt          rpc.Telemetry
	guard       *auth.Guard
	clientCreds credentials.TransportCredentials
	conns       map[string]grpc.ClientConnInterface
	cl          *closers
}

const connsPerPeer = 4

// reach returns the function that gives a service's connection, nil when
// the service is neither run here nor given an address. trusted marks the
// in-process calls of the services themselves, not those the HTTP routes
// make for outside callers.
func (p *peers) reach(trusted bool) func(name string) (grpc.ClientConnInterface, error) {
	return func(name string) (grpc.ClientConnInterface, error) {
		addr := p.cfg.peerAddr(name)
		if !p.cfg.Runs(name) && addr == "" {
			return nil, nil
		}
		return p.peer(name, addr, trusted)
	}
}

// peer returns the connection to the named service: in memory when it
// runs in this process, else at addr.
func (p *peers) peer(name, addr string, trusted bool) (grpc.ClientConnInterface, error) {
	if p.cfg.Runs(name) {
		key := fmt.Sprint(name, "/trusted=", trusted)
		if c, ok := p.conns[key]; ok {
			return c, nil
		}
		// In memory the mesh presents its own credential.
		c := p.srv.Channel.Client(rpc.ClientOptions{Telemetry: p.rt, PerRPC: p.guard.MeshCredentials(), Trusted: trusted})
		p.conns[key] = c
		return c, nil
	}
	if c, ok := p.conns[name]; ok {
		return c, nil
	}
	var list []*grpc.ClientConn
	for i := 0; i < connsPerPeer; i++ {
		// Over the network the mesh presents its certificate, and a
		// gateway its outside credential.
		c, err := rpc.Dial(addr, rpc.ClientOptions{Telemetry: p.rt, Unary: gatewayCredentials(p.cfg, name), Creds: p.clientCreds})
		if err != nil {
			return nil, fmt.Errorf("%s peer: %w", name, err)
		}
		list = append(list, c)
	}
	pool := rpc.NewPool(list...)
	p.conns[name] = pool
	p.cl.add(func(context.Context) error { return pool.Close() })
	return pool, nil
}

// newServer makes the gRPC server every call passes the guard on, and the
// peers this process dials.
func newServer(cfg Config, log *slog.Logger, tel *telemetry.Providers, guard *auth.Guard, cl *closers) (*rpc.Server, *peers, error) {
	p := &peers{cfg: cfg, rt: rpc.Telemetry{Tracers: tel.Tracers, Meters: tel.Meters, Propagator: tel.Propagator},
		guard: guard, conns: map[string]grpc.ClientConnInterface{}, cl: cl}
	var serverCreds credentials.TransportCredentials
	if cfg.MutualTLS() {
		var err error
		if serverCreds, p.clientCreds, _, err = rpc.MutualTLS(cfg.TLSCert, cfg.TLSKey, cfg.TLSCA); err != nil {
			return nil, nil, err
		}
		serverCreds = rpc.LogHandshakeFailures(serverCreds, log)
	}
	p.srv = rpc.NewServer(rpc.ServerOptions{Logger: log, Telemetry: p.rt, Creds: serverCreds,
		Unary: []grpc.UnaryServerInterceptor{guard.UnaryServerInterceptor(), validate.UnaryServerInterceptor(rpc.FromTrustedPeer)}, Stream: []grpc.StreamServerInterceptor{guard.StreamServerInterceptor(), validate.StreamServerInterceptor(rpc.FromTrustedPeer)}})
	return p.srv, p, nil
}

// listeners are where this process serves: gRPC always, HTTP when an
// address is set.
type listeners struct {
	grpc, http net.Listener
	httpSrv    *http.Server
}

// listen binds the listeners and builds the HTTP server.
func listen(cfg Config, d component.Deps, routes []component.Route, guard *auth.Guard, srv *rpc.Server, tel *telemetry.Providers) (listeners, error) {
	var ls listeners
	var err error
	if ls.grpc, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return ls, fmt.Errorf("grpc listen: %w", err)
	}
	if cfg.HTTPAddr == "" {
		return ls, nil
	}
	if ls.httpSrv, err = newHTTPServer(cfg, d, routes, guard, srv, tel); err != nil {
		_ = ls.grpc.Close()
		return ls, err
	}
	if ls.http, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		_ = ls.grpc.Close()
		return ls, fmt.Errorf("http listen: %w", err)
	}
	return ls, nil
}

// addrs are the bound addresses ("" for HTTP when it is off).
func (ls listeners) addrs() (grpcAddr, httpAddr string) {
	if ls.http != nil {
		httpAddr = ls.http.Addr().String()
	}
	return ls.grpc.Addr().String(), httpAddr
}

// The probes on the HTTP port, for the kubelet: alive while the process
// serves; ready while gRPC health says SERVING (not during start-up or
// shutdown).
const (
	LivenessPath  = "/healthz"
	ReadinessPath = "/readyz"
)

// newHTTPServer serves the routes of the services this process runs, the
// gateway routes of every service it reaches, the RPCs as JSON, metrics
// and probes.
func newHTTPServer(cfg Config, d component.Deps, routes []component.Route, guard *auth.Guard, srv *rpc.Server, tel *telemetry.Providers) (*http.Server, error) {
	gw, err := gatewayRoutes(cfg, d)
	if err != nil {
		return nil, err
	}
	routes = append(routes, gw...)
	// The help-desk console, where decision is reachable (services/console).
	cr, err := console.Routes(cfg.Console, d.With("console"), cfg.Auth.OperatorTokens)
	if err != nil {
		return nil, err
	}
	routes = append(routes, cr...)
	mux := http.NewServeMux()
	for _, r := range routes {
		h := r.Handler
		if r.Role != "" {
			name := r.Name
			if name == "" {
				name = r.Pattern
			}
			h = guard.HTTP(name, r.Role, h)
		}
		mux.Handle(r.Pattern, h)
	}
	// The RPCs operators and scripts call, as JSON over HTTP (rest.go).
	if err := restRoutes(mux, srv.Server, guard); err != nil {
		return nil, err
	}
	mux.Handle("/metrics", tel.MetricsHandler())
	mux.HandleFunc(LivenessPath, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc(ReadinessPath, func(w http.ResponseWriter, r *http.Request) {
		resp, err := srv.Health.Check(r.Context(), &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}, nil
}

// stop shuts the servers down in order, within timeout: health
// NOT_SERVING; HTTP drained; decision's follow-ups finished while its
// peers can still be reached; the risk feed's long waits ended on both
// sides; gRPC stopped gracefully, or at once at the deadline. The workers
// stop after it.
func stop(ctx context.Context, timeout time.Duration, log *slog.Logger, srv *rpc.Server, httpSrv *http.Server, parts component.Parts) {
	srv.Health.Shutdown()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if httpSrv != nil {
		_ = httpSrv.Shutdown(sctx)
	}
	for _, drain := range parts.Drain {
		if err := drain(sctx); err != nil {
			log.Warn("follow-ups of suppressed pushes still running at shutdown", slog.Any("error", err))
		}
	}
	for _, q := range parts.Quiet {
		q()
	}
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-sctx.Done():
		srv.Stop()
	}
}

func first(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}

func serviceName(s string) string {
	switch s {
	case Intake:
		return intakev1.IntakeService_ServiceDesc.ServiceName
	case Scoring:
		return scoringv1.ScoringService_ServiceDesc.ServiceName
	case Decision:
		return decisionv1.DecisionService_ServiceDesc.ServiceName
	case Notify:
		return notifyv1.NotificationService_ServiceDesc.ServiceName
	}
	return s
}

// openStore opens the configured engine behind a circuit breaker: a store
// that hangs (a stopped Redis, a disk that stops answering) costs a few
// calls their deadlines, then calls fail at once and every decision is
// answered by its tier's failure mode within its budget.
func openStore(ctx context.Context, cfg Config, log *slog.Logger, meter metric.Meter) (store.Store, error) {
	var st store.Store
	if cfg.StoreKind == "redis" {
		r, err := store.OpenRedis(ctx, store.RedisOptions{Addrs: cfg.RedisAddrs, Password: cfg.RedisPassword, KeyPrefix: cfg.RedisPrefix, Keyspaces: keyspaces(cfg)})
		if err != nil {
			return nil, err
		}
		st = r
	} else {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		b, err := store.OpenBadger(store.BadgerOptions{Dir: cfg.DataDir, SyncWrites: cfg.SyncWrites, Logger: log, Keyspaces: keyspaces(cfg)})
		if err != nil {
			return nil, err
		}
		st = b
	}
	br := store.WithBreaker(st, store.BreakerOptions{Name: cfg.StoreKind, Logger: log})
	breakerMetrics(meter, br)
	return br, nil
}

// breakerMetrics reports the store's circuit: an open circuit is the first
// thing to look for when decisions fall back to the failure mode.
func breakerMetrics(m metric.Meter, b *store.Breaker) {
	state, _ := m.Int64ObservableGauge("pushback.store.breaker.state",
		metric.WithDescription("The store's circuit: 0 closed (calls reach the store), 1 open (calls fail at once), 2 half-open (one probe call)."))
	failures, _ := m.Int64ObservableCounter("pushback.store.breaker.failures", metric.WithUnit("{call}"),
		metric.WithDescription("Store calls that failed or did not answer before their deadline."))
	rejected, _ := m.Int64ObservableCounter("pushback.store.breaker.rejected", metric.WithUnit("{call}"),
		metric.WithDescription("Store calls failed at once because the circuit was open."))
	opened, _ := m.Int64ObservableCounter("pushback.store.breaker.opened", metric.WithUnit("{open}"),
		metric.WithDescription("Times the store's circuit opened, failed probes included."))
	_, _ = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := b.Stats()
		o.ObserveInt64(state, int64(s.State))
		o.ObserveInt64(failures, s.Failures)
		o.ObserveInt64(rejected, s.Rejected)
		o.ObserveInt64(opened, s.Opened)
		return nil
	}, state, failures, rejected, opened)
}
