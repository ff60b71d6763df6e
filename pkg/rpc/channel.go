package rpc

import (
	"context"
	"errors"
	"io"

	"github.com/fullstorydev/grpchan"
	"github.com/fullstorydev/grpchan/inprocgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// Channel is how a service reaches a peer that runs in the same process: a
// call goes straight to the handler registered on the server, through the
// same server interceptors (recovery, authentication, the caller's
// interceptors), the same OpenTelemetry stats handlers on both sides and the
// same per-RPC credentials as over the network, without HTTP/2 framing or
// serialisation (messages are cloned, so neither side shares memory with the
// other). Deadlines and cancellation cross as they do over the network: the
// handler runs on its own goroutine under a context derived from the
// caller's.
//
// What the network adds and the channel does not: the message size limits
// (a peer in the process is trusted code) and the codec's refusal of
// strings that are not UTF-8 (the outside caller's request was refused at
// the edge already).
//
// Unary calls run on the channel's own workers (see unaryTable); streams go
// through grpchan's inprocgrpc.
type Channel struct {
	ch               *inprocgrpc.Channel
	unary            unaryTable
	unaryInterceptor grpc.UnaryServerInterceptor
	server           stats.Handler
}

func newChannel(opts ServerOptions, unary []grpc.UnaryServerInterceptor, stream []grpc.StreamServerInterceptor) *Channel {
	server := otelgrpc.NewServerHandler(opts.Telemetry.otelOptions()...)
	ch := new(inprocgrpc.Channel).
		WithServerUnaryInterceptor(chainUnary(unary)).
		WithServerStreamInterceptor(chainStream(stream)).
		WithServerStatsHandler(server)
	return &Channel{ch: ch, unaryInterceptor: chainUnary(unary), server: server}
}

// RegisterService implements grpc.ServiceRegistrar.
func (c *Channel) RegisterService(desc *grpc.ServiceDesc, impl any) {
	c.ch.RegisterService(desc, impl)
	c.unary.register(desc, impl)
}

// Client returns a connection to the services registered on the channel,
// with the client side of opts: its stats handler, per-RPC credentials and
// unary interceptors. Transport credentials do not apply: nothing leaves
// the process.
func (c *Channel) Client(opts ClientOptions) grpc.ClientConnInterface {
	// Each client has its own copy of the channel, so that its client stats
	// handler is its own; the handler table (made when the server
	// registered health) and the server interceptors are shared.
	client := otelgrpc.NewClientHandler(opts.Telemetry.otelOptions()...)
	cp := *c.ch
	ch := cp.WithClientStatsHandler(client)
	var conn grpc.ClientConnInterface = unaryConn{c: c, client: client, streams: statusConn{ch}}
	unary := opts.Unary
	// A trusted client marks its calls; any other clears the mark, whatever
	// its caller put in the metadata.
	mark := func(ctx context.Context) context.Context {
		md, _ := metadata.FromOutgoingContext(ctx)
		md = md.Copy()
		md.Delete(trustedHeader)
		if opts.Trusted {
			md.Set(trustedHeader, "1")
		}
		return metadata.NewOutgoingContext(ctx, md)
	}
	unary = append([]grpc.UnaryClientInterceptor{func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, o ...grpc.CallOption) error {
		return invoker(mark(ctx), method, req, reply, cc, o...)
	}}, unary...)
	conn = grpchan.InterceptClientConnStream(conn, func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, o ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(mark(ctx), desc, cc, method, o...)
	})
	if opts.PerRPC != nil {
		creds := grpc.PerRPCCredentials(opts.PerRPC)
		unary = append([]grpc.UnaryClientInterceptor{func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, o ...grpc.CallOption) error {
			return invoker(ctx, method, req, reply, cc, append(o, creds)...)
		}}, unary...)
		conn = grpchan.InterceptClientConnStream(conn, func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, o ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(ctx, desc, cc, method, append(o, creds)...)
		})
	}
	return grpchan.InterceptClientConnUnary(conn, unary...)
}

// trustedHeader carries ClientOptions.Trusted to the server side of the
// channel.
const trustedHeader = "x-pushback-trusted-peer"

// FromTrustedPeer reports whether the call in ctx came through the
// in-process channel from a client marked Trusted: a service of this
// process. A call from the network is never one, whatever it sends.
func FromTrustedPeer(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil || p.Addr.Network() != inprocNetwork {
		return false
	}
	return len(metadata.ValueFromIncomingContext(ctx, trustedHeader)) > 0
}

// inprocNetwork is the network of the channel's peer address.
const inprocNetwork = "inproc"

// statusConn turns what a handler returned into what a network caller
// receives: a gRPC status (a plain error is Unknown, a context error its
// code), never the handler's own error value.
type statusConn struct{ ch *inprocgrpc.Channel }

func (s statusConn) Invoke(ctx context.Context, method string, req, reply any, opts ...grpc.CallOption) error {
	return asStatus(s.ch.Invoke(ctx, method, req, reply, opts...))
}

func (s statusConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := s.ch.NewStream(ctx, desc, method, opts...)
	if err != nil {
		return nil, asStatus(err)
	}
	return statusStream{cs}, nil
}

type statusStream struct{ grpc.ClientStream }

func (s statusStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if errors.Is(err, io.EOF) {
		return err
	}
	return asStatus(err)
}

func (s statusStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if errors.Is(err, io.EOF) {
		return err
	}
	return asStatus(err)
}

func asStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

// chainUnary runs interceptors in order, the first outermost, as
// grpc.ChainUnaryInterceptor does.
func chainUnary(in []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if len(in) == 0 {
			return handler(ctx, req)
		}
		// The first is called directly: a closure for it would be one more
		// allocation per call.
		return in[0](ctx, req, info, nextUnary(in, 1, info, handler))
	}
}

func nextUnary(in []grpc.UnaryServerInterceptor, i int, info *grpc.UnaryServerInfo, final grpc.UnaryHandler) grpc.UnaryHandler {
	if i == len(in) {
		return final
	}
	return func(ctx context.Context, req any) (any, error) {
		return in[i](ctx, req, info, nextUnary(in, i+1, info, final))
	}
}

func chainStream(in []grpc.StreamServerInterceptor) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return nextStream(in, 0, info, handler)(srv, ss)
	}
}

func nextStream(in []grpc.StreamServerInterceptor, i int, info *grpc.StreamServerInfo, final grpc.StreamHandler) grpc.StreamHandler {
	if i == len(in) {
		return final
	}
	return func(srv any, ss grpc.ServerStream) error {
		return in[i](srv, ss, info, nextStream(in, i+1, info, final))
	}
}
