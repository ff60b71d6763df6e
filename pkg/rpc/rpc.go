// Package rpc builds the gRPC servers and client connections every Pushback
// process uses, so that in-process peers (the server's Channel) and remote
// peers go through the same interceptors, stats handlers, deadlines and
// status codes.
package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/pushbackhq/pushback/pkg/apierr"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/test/bufconn"
)

// MaxMessageBytes caps every request and response message.
const MaxMessageBytes = 4 << 20

// StreamWorkers is how many goroutines a server keeps to run calls. Most
// calls wait on a peer or the store, so there are more than cores.
const StreamWorkers = 256

// Telemetry is what the stats handlers report to.
type Telemetry struct {
	Tracers    trace.TracerProvider
	Meters     metric.MeterProvider
	Propagator propagation.TextMapPropagator
}

func (t Telemetry) otelOptions() []otelgrpc.Option {
	var opts []otelgrpc.Option
	if t.Tracers != nil {
		opts = append(opts, otelgrpc.WithTracerProvider(t.Tracers))
	}
	if t.Meters != nil {
		opts = append(opts, otelgrpc.WithMeterProvider(t.Meters))
	}
	if t.Propagator != nil {
		opts = append(opts, otelgrpc.WithPropagators(t.Propagator))
	}
	return opts
}

// ServerOptions configures NewServer.
type ServerOptions struct {
	Logger    *slog.Logger
	Telemetry Telemetry
	// Creds are transport credentials (mutual TLS); nil means plaintext.
	Creds credentials.TransportCredentials
	// Unary and Stream interceptors run after recovery.
	Unary  []grpc.UnaryServerInterceptor
	Stream []grpc.StreamServerInterceptor
}

// Server is a gRPC server with health and reflection registered, and the
// in-process channel to the same services.
type Server struct {
	*grpc.Server
	Health *health.Server
	// Channel reaches the services registered on the server from inside
	// the process (see Channel).
	Channel *Channel
}

// GracefulStop stops the server as grpc.Server's GracefulStop does, then
// waits for the in-process unary calls still under way: a handler a
// caller stopped waiting for may still be writing.
func (s *Server) GracefulStop() {
	s.Server.GracefulStop()
	s.Channel.unary.inflight.wait()
}

// RegisterService registers a service on the gRPC server and on the
// in-process channel.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s.Server.RegisterService(desc, impl)
	s.Channel.RegisterService(desc, impl)
}

// NewServer returns a server with OpenTelemetry stats handlers, panic
// recovery, message size limits, keepalive enforcement, health and
// reflection. A request that does not decode (a string that is not UTF-8)
// is answered InvalidArgument naming the field, not grpc-go's Internal.
func NewServer(opts ServerOptions) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The codec's refusals are answered last, after authentication: a
	// caller without credentials learns nothing about its request.
	codec := newRefusingCodec()
	unary := append([]grpc.UnaryServerInterceptor{recoverUnary(log)}, opts.Unary...)
	stream := append([]grpc.StreamServerInterceptor{recoverStream(log)}, opts.Stream...)
	ch := newChannel(opts, unary, stream)
	unary = append(unary[:len(unary):len(unary)], codec.unary)
	stream = append(stream[:len(stream):len(stream)], codec.stream)
	so := []grpc.ServerOption{
		grpc.ForceServerCodecV2(codec),
		grpc.StatsHandler(otelgrpc.NewServerHandler(opts.Telemetry.otelOptions()...)),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.MaxSendMsgSize(MaxMessageBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// Long-lived handler goroutines keep the stack a handler grew to:
		// a goroutine per call re-grew it every time (copystack was 7% of
		// a Decide profile). Calls beyond the pool get a goroutine each.
		grpc.NumStreamWorkers(StreamWorkers),
	}
	if opts.Creds != nil {
		so = append(so, grpc.Creds(opts.Creds))
	}
	s := grpc.NewServer(so...)
	h := health.NewServer()
	healthpb.RegisterHealthServer(s, h)
	// The channel's clients share its handler table from here on.
	healthpb.RegisterHealthServer(ch, h)
	reflection.Register(s)
	return &Server{Server: s, Health: h, Channel: ch}
}

func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.ErrorContext(ctx, "panic in handler", slog.String("method", info.FullMethod),
					slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
				err = apierr.Internal()
			}
		}()
		return handler(ctx, req)
	}
}

func recoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				log.ErrorContext(ss.Context(), "panic in stream handler", slog.String("method", info.FullMethod),
					slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
				err = apierr.Internal()
			}
		}()
		return handler(srv, ss)
	}
}

// ClientOptions configures Dial.
type ClientOptions struct {
	Telemetry Telemetry
	// Creds are transport credentials (mutual TLS); nil means plaintext.
	Creds credentials.TransportCredentials
	// PerRPC adds credentials (a bearer token) to every call.
	PerRPC credentials.PerRPCCredentials
	// Unary interceptors, for example a default deadline.
	Unary []grpc.UnaryClientInterceptor
	// Trusted marks the calls of an in-process client as made by a
	// service of the process itself, with requests it built (not an
	// outside caller's, as the HTTP routes relay): FromTrustedPeer
	// reports them. It means nothing over the network.
	Trusted bool
}

func (o ClientOptions) dialOptions() []grpc.DialOption {
	creds := o.Creds
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	do := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(o.Telemetry.otelOptions()...)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
		grpc.WithChainUnaryInterceptor(o.Unary...),
	}
	if o.PerRPC != nil {
		do = append(do, grpc.WithPerRPCCredentials(o.PerRPC))
	}
	return do
}

// Dial connects to a remote peer. The connection is lazy: it never blocks.
func Dial(addr string, opts ClientOptions) (*grpc.ClientConn, error) {
	if addr == "" {
		return nil, errors.New("rpc: empty peer address")
	}
	conn, err := grpc.NewClient(addr, opts.dialOptions()...)
	if err != nil {
		return nil, fmt.Errorf("rpc: dial %s: %w", addr, err)
	}
	return conn, nil
}

// InProcess is an in-memory listener for tests and benchmarks: a Server
// served on it and clients dialled through it speak HTTP/2 as over TCP,
// without the network. The mesh reaches its in-process peers through the
// server's Channel instead, which skips HTTP/2 altogether.
type InProcess struct {
	lis *bufconn.Listener
}

// NewInProcess returns an in-memory listener.
func NewInProcess() *InProcess {
	return &InProcess{lis: bufconn.Listen(1 << 20)}
}

// Listener is what the server serves on.
func (p *InProcess) Listener() net.Listener { return p.lis }

// Dial returns a client connection to the in-process server.
func (p *InProcess) Dial(opts ClientOptions) (*grpc.ClientConn, error) {
	do := append(opts.dialOptions(), grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return p.lis.DialContext(ctx)
	}))
	// passthrough keeps the resolver from looking the name up.
	return grpc.NewClient("passthrough:///inprocess", do...)
}

// Loopback reports whether addr (host:port) is on this machine only.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Pool spreads calls over several connections round-robin. One HTTP/2
// connection has one writer and one reader goroutine per side, which
// serialise every call on it; a few connections let calls proceed in
// parallel (as the bench measured for the in-memory peer connection).
type Pool struct {
	conns []*grpc.ClientConn
	next  atomic.Uint64
}

// NewPool wraps conns (at least one).
func NewPool(conns ...*grpc.ClientConn) *Pool { return &Pool{conns: conns} }

func (p *Pool) pick() *grpc.ClientConn {
	return p.conns[p.next.Add(1)%uint64(len(p.conns))]
}

// Invoke implements grpc.ClientConnInterface.
func (p *Pool) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return p.pick().Invoke(ctx, method, args, reply, opts...)
}

// NewStream implements grpc.ClientConnInterface.
func (p *Pool) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return p.pick().NewStream(ctx, desc, method, opts...)
}

// Close closes every connection.
func (p *Pool) Close() error {
	var errs []error
	for _, c := range p.conns {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
