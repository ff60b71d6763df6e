// Package mesh is the only code that knows which services run where: it
// wires the four services into one process (peers reached in memory through
// the same gRPC server) or into any subset with remote peers, and runs them
// until the context ends, then shuts down gracefully.
package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	defaultpolicy "github.com/pushbackhq/pushback/deploy/policy"
	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/telemetry"
	"github.com/pushbackhq/pushback/pkg/validate"
	"github.com/pushbackhq/pushback/services/decision"
	"github.com/pushbackhq/pushback/services/decision/policy"
	"github.com/pushbackhq/pushback/services/intake"
	"github.com/pushbackhq/pushback/services/notify"
	"github.com/pushbackhq/pushback/services/scoring"
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

// LoadPolicy reads a policy file, or the built-in default when path is empty.
func LoadPolicy(path string) (*policy.Policy, error) {
	if path == "" {
		return policy.Parse(bytes.NewReader(defaultpolicy.Default))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := policy.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return p, nil
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

	tel, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "pushback", Getenv: opts.Getenv, Exporter: opts.SpanExporter, MetricReader: opts.MetricReader})
	if err != nil {
		return err
	}
	cl.add(tel.Shutdown)
	tracer := tel.Tracers.Tracer("github.com/pushbackhq/pushback")
	meter := tel.Meters.Meter("github.com/pushbackhq/pushback")
	redactor := telemetry.NewRedactor([]byte(cfg.TelemetryHashKey), cfg.TelemetryRawIDs)
	if cfg.TelemetryRawIDs {
		log.Warn("telemetry-raw-ids is on: user ids and IPs are recorded in clear in spans and logs")
	}
	rt := rpc.Telemetry{Tracers: tel.Tracers, Meters: tel.Meters, Propagator: tel.Propagator}
	userIDs, err := cfg.UserIDs.Rules()
	if err != nil {
		return err
	}

	st, err := openStore(ctx, cfg, log, meter)
	if err != nil {
		return err
	}
	cl.add(func(context.Context) error { return st.Close() })
	st = telemetry.TraceStore(st, tracer, cfg.StoreKind)

	decCounters := opts.DecisionCounters
	if decCounters == nil {
		decCounters = &decision.Counters{}
	}
	// Every call of every service passes the guard (docs/security.md).
	guard, err := newGuard(cfg, log, meter, decCounters)
	if err != nil {
		return err
	}
	var serverCreds, clientCreds, inprocCreds credentials.TransportCredentials
	if cfg.MutualTLS() {
		if serverCreds, clientCreds, inprocCreds, err = rpc.MutualTLS(cfg.TLSCert, cfg.TLSKey, cfg.TLSCA); err != nil {
			return err
		}
		serverCreds = rpc.LogHandshakeFailures(serverCreds, log)
	}
	srv := rpc.NewServer(rpc.ServerOptions{Logger: log, Telemetry: rt, Creds: serverCreds,
		Unary: []grpc.UnaryServerInterceptor{guard.UnaryServerInterceptor(), validate.UnaryServerInterceptor()}, Stream: []grpc.StreamServerInterceptor{guard.StreamServerInterceptor(), validate.StreamServerInterceptor()}})
	inproc := rpc.NewInProcess()
	// Each peer is a small pool of connections, in memory or over the
	// network: one HTTP/2 connection serialises its calls through one
	// writer and one reader goroutine per side.
	const connsPerPeer = 4
	conns := map[string]*rpc.Pool{}
	peer := func(name, addr string) (grpc.ClientConnInterface, error) {
		if c, ok := conns[name]; ok {
			return c, nil
		}
		var list []*grpc.ClientConn
		for i := 0; i < connsPerPeer; i++ {
			var c *grpc.ClientConn
			var err error
			// In memory the mesh presents its own credential; over the
			// network its certificate, and a gateway's outside credential.
			if cfg.Runs(name) {
				c, err = inproc.Dial(rpc.ClientOptions{Telemetry: rt, PerRPC: guard.MeshCredentials(), Creds: inprocCreds})
			} else {
				c, err = rpc.Dial(addr, rpc.ClientOptions{Telemetry: rt, Unary: gatewayCredentials(cfg, name), Creds: clientCreds})
			}
			if err != nil {
				return nil, fmt.Errorf("%s peer: %w", name, err)
			}
			list = append(list, c)
		}
		p := rpc.NewPool(list...)
		conns[name] = p
		cl.add(func(context.Context) error { return p.Close() })
		return p, nil
	}

	var workers []func(context.Context) error
	// drain, before the server stops, lets decision finish what follows its
	// answers while its peers can still be reached.
	drain := func(context.Context) error { return nil }
	// quiet, at shutdown before the server stops, ends the long waits of
	// the risk feed on both sides: decision's responder and scoring's
	// answers to it.
	var quiet []func()
	if cfg.Runs(Scoring) {
		sc, err := scoring.Open(scoring.Options{Store: st, Logger: log.With("service", Scoring), Tracer: tracer, GeoIPDB: cfg.GeoIPDB, Meter: meter, Redactor: redactor, UserIDs: userIDs})
		if err != nil {
			return err
		}
		cl.add(func(context.Context) error { return sc.Close() })
		sc.Register(srv)
		quiet = append(quiet, sc.StopWaiting)
	}
	var nw *notifyWiring
	if cfg.Runs(Notify) {
		var channels []notify.Channel
		if cfg.AlertWebhook != "" {
			secret, err := notify.DecodeSecret(cfg.AlertSecret)
			if err != nil {
				return fmt.Errorf("alert-webhook-secret: %w", err)
			}
			channels = append(channels, &notify.Webhook{URL: cfg.AlertWebhook, Secret: secret, Client: outboundClient()})
		}
		if nw, err = newNotifyWiring(cfg); err != nil {
			return err
		}
		channels = append(channels, nw.channels...)
		acts, err := cfg.Connectors.Channels(userIDs.Aliases())
		if err != nil {
			return err
		}
		channels = append(channels, acts...)
		n, err := notify.New(notify.Options{Store: st, Channels: channels, Logger: log.With("service", Notify), Tracer: tracer, ReportLinks: nw.links, Meter: meter, Redactor: redactor,
			Brake: cfg.Notify.Brake})
		if err != nil {
			return err
		}
		n.Register(srv)
		workers = append(workers, n.Run)
	}
	if cfg.Runs(Decision) {
		pol, err := LoadPolicy(cfg.PolicyFile)
		if err != nil {
			return err
		}
		var shadow *policy.Policy
		if cfg.ShadowPolicy != "" {
			if shadow, err = LoadPolicy(cfg.ShadowPolicy); err != nil {
				return fmt.Errorf("shadow-policy: %w", err)
			}
		}
		sc, err := peer(Scoring, cfg.ScoringAddr)
		if err != nil {
			return err
		}
		nc, err := peer(Notify, cfg.NotifyAddr)
		if err != nil {
			return err
		}
		d, err := decision.New(decision.Options{
			Store: st, Scorer: scoringv1.NewScoringServiceClient(sc), Notifier: notifyv1.NewNotificationServiceClient(nc),
			Policy: pol, Logger: log.With("service", Decision), Tracer: tracer, Budget: cfg.DecideBudget,
			ShadowPolicy: shadow, Counters: decCounters, Meter: meter, Redactor: redactor, UserIDs: userIDs,
			ClockSkew: cfg.Decision.ClockSkew, MaxInFlight: cfg.Decision.MaxInFlight, SharedStore: cfg.StoreKind == "redis",
			Feed: scoringv1.NewScoringServiceClient(sc), RespondDryRun: cfg.Decision.RespondDryRun,
		})
		if err != nil {
			return err
		}
		d.Register(srv)
		drain = d.Drain
		log.Info("policy loaded", slog.String("policy_version", pol.Version), slog.Int("rules", len(pol.Rules)))
		if shadow != nil {
			log.Info("shadow policy loaded", slog.String("policy_version", shadow.Version), slog.Int("rules", len(shadow.Rules)))
		}
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		cl.add(func(context.Context) error { signal.Stop(hup); return nil })
		rl := decision.NewReloader(d, decision.ReloaderOptions{PolicyFile: cfg.PolicyFile, ShadowFile: cfg.ShadowPolicy, Poll: cfg.PolicyPoll, Logger: log.With("service", Decision)})
		workers = append(workers, func(ctx context.Context) error { return rl.Run(ctx, hup) })
		rctx, stopResponder := context.WithCancel(context.Background())
		responded := make(chan struct{})
		quiet = append(quiet, func() { stopResponder(); <-responded })
		workers = append(workers, func(ctx context.Context) error {
			defer close(responded)
			stop := context.AfterFunc(ctx, stopResponder)
			defer stop()
			return d.RunResponder(rctx)
		})
	}
	if cfg.Runs(Intake) {
		sc, err := peer(Scoring, cfg.ScoringAddr)
		if err != nil {
			return err
		}
		in, err := intake.New(intake.Options{Store: st, Observer: scoringv1.NewScoringServiceClient(sc), Logger: log.With("service", Intake), Tracer: tracer, Meter: meter, Redactor: redactor, UserIDs: userIDs})
		if err != nil {
			return err
		}
		in.Register(srv)
		workers = append(workers, in.Run)
		ps, err := pollers(cfg, st, in, log, meter)
		if err != nil {
			return err
		}
		workers = append(workers, ps...)
	}

	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("grpc listen: %w", err)
	}
	var httpSrv *http.Server
	var httpLis net.Listener
	if cfg.HTTPAddr != "" {
		mux := http.NewServeMux()
		if cfg.Runs(Decision) || cfg.DecisionAddr != "" {
			dc, err := peer(Decision, cfg.DecisionAddr)
			if err != nil {
				return err
			}
			mux.Handle("/v1/decide", guard.HTTP(decideRoute, auth.Hook, decision.HTTPHandler(decisionv1.NewDecisionServiceClient(dc))))
		}
		if cfg.Runs(Intake) || cfg.IntakeAddr != "" {
			ic, err := peer(Intake, cfg.IntakeAddr)
			if err != nil {
				return err
			}
			mux.Handle("/v1/ingest", guard.HTTP("/v1/ingest", auth.LogShipper, intake.NativeHandler(intakev1.NewIntakeServiceClient(ic), cfg.Auth.IntakeToken)))
			mux.Handle(intake.AdapterPrefix, guard.HTTP(intake.AdapterPrefix+"{format}", auth.LogShipper,
				intake.AdapterHandler(intakev1.NewIntakeServiceClient(ic), intake.AdapterOptions{Token: cfg.Auth.IntakeToken, Logger: log.With("service", Intake)})))
		}
		if cfg.Runs(Scoring) || cfg.ScoringAddr != "" {
			sc, err := peer(Scoring, cfg.ScoringAddr)
			if err != nil {
				return err
			}
			// Risk readers follow a tenant's risk changes as Server-Sent Events.
			mux.Handle(scoring.FeedPath, guard.HTTP(scoring.FeedPath, auth.RiskReader, scoring.FeedHandler(scoringv1.NewScoringServiceClient(sc))))
		}
		if err := notifyRoutes(mux, cfg, nw, peer, log); err != nil {
			return err
		}
		// The RPCs operators and scripts call, as JSON over HTTP (rest.go).
		if err := restRoutes(mux, srv.Server, guard); err != nil {
			return err
		}
		mux.Handle("/metrics", tel.MetricsHandler())
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
			resp, err := srv.Health.Check(r.Context(), &healthpb.HealthCheckRequest{})
			if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write([]byte("ready\n"))
		})
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
		if httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			_ = lis.Close()
			return fmt.Errorf("http listen: %w", err)
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(lis) })
	g.Go(func() error { return srv.Serve(inproc.Listener()) })
	if httpSrv != nil {
		g.Go(func() error {
			if err := httpSrv.Serve(httpLis); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	wctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	wg, _ := errgroup.WithContext(wctx)
	for _, w := range workers {
		wg.Go(func() error { return w(wctx) })
	}
	for _, s := range cfg.Services {
		srv.Health.SetServingStatus(serviceName(s), healthpb.HealthCheckResponse_SERVING)
	}
	srv.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	httpAddr := ""
	if httpLis != nil {
		httpAddr = httpLis.Addr().String()
	}
	log.Info("pushback serving", slog.Any("services", cfg.Services), slog.String("grpc_addr", lis.Addr().String()), slog.String("http_addr", httpAddr), slog.String("data_dir", cfg.DataDir))
	if opts.Ready != nil {
		opts.Ready(lis.Addr().String(), httpAddr)
	}

	<-gctx.Done()
	log.Info("shutting down")
	srv.Health.Shutdown()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if httpSrv != nil {
		_ = httpSrv.Shutdown(sctx)
	}
	if err := drain(sctx); err != nil {
		log.Warn("follow-ups of suppressed pushes still running at shutdown", slog.Any("error", err))
	}
	for _, q := range quiet {
		q()
	}
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-sctx.Done():
		srv.Stop()
	}
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
		r, err := store.OpenRedis(ctx, store.RedisOptions{Addrs: cfg.RedisAddrs, Password: cfg.RedisPassword, KeyPrefix: cfg.RedisPrefix})
		if err != nil {
			return nil, err
		}
		st = r
	} else {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		b, err := store.OpenBadger(store.BadgerOptions{Dir: cfg.DataDir, SyncWrites: cfg.SyncWrites, Logger: log})
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
