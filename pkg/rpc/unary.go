package rpc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// unaryTable is the channel's own table of unary methods. A unary call
// through the channel runs on one of a few long-lived workers, which keep
// the stack a handler grew to (a goroutine per call grew it anew every time,
// which the Decide profile showed), instead of a goroutine of its own.
type unaryTable struct {
	mu      sync.RWMutex
	methods map[string]unaryMethod
	work    chan func()
	start   sync.Once
	// inflight counts the calls whose handlers run, so that a graceful
	// stop waits for them as grpc.Server's does for its own.
	inflight calls
}

// calls counts calls under way; unlike a WaitGroup, new calls may start
// while a stop waits.
type calls struct {
	mu   sync.Mutex
	n    int
	idle *sync.Cond
}

func (c *calls) add(d int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.idle == nil {
		c.idle = sync.NewCond(&c.mu)
	}
	if c.n += d; c.n == 0 {
		c.idle.Broadcast()
	}
}

// wait returns once no call is under way.
func (c *calls) wait() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.n > 0 {
		c.idle.Wait()
	}
}

type unaryMethod struct {
	impl    any
	handler func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error)
	// uri is what per-RPC credentials are asked for: "inproc:" and the
	// method, made once.
	uri string
}

// unaryWorkers is how many workers run in-process unary calls; a call
// that finds none free gets a goroutine of its own.
const unaryWorkers = 64

func (t *unaryTable) register(desc *grpc.ServiceDesc, impl any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.methods == nil {
		t.methods = map[string]unaryMethod{}
	}
	for _, m := range desc.Methods {
		name := "/" + desc.ServiceName + "/" + m.MethodName
		t.methods[name] = unaryMethod{impl: impl, handler: m.Handler, uri: "inproc:" + name}
	}
}

func (t *unaryTable) lookup(method string) (unaryMethod, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	m, ok := t.methods[method]
	return m, ok
}

// run runs call on a free worker, or on a goroutine of its own.
func (t *unaryTable) run(call func()) {
	t.inflight.add(1)
	t.start.Do(func() {
		t.work = make(chan func())
		for range unaryWorkers {
			go func() {
				for f := range t.work {
					t.do(f)
				}
			}()
		}
	})
	select {
	case t.work <- call:
	default:
		go t.do(call)
	}
}

func (t *unaryTable) do(call func()) {
	defer t.inflight.add(-1)
	call()
}

// unaryConn sends unary calls through the channel's table and streams
// through streams.
type unaryConn struct {
	c       *Channel
	client  stats.Handler
	streams grpc.ClientConnInterface
}

// inprocAddr is the address of both ends of an in-process call.
type inprocAddr struct{}

func (inprocAddr) Network() string  { return inprocNetwork }
func (inprocAddr) String() string   { return "in-process" }
func (inprocAddr) AuthType() string { return inprocNetwork }

var inprocPeer = peer.Peer{Addr: inprocAddr{}, AuthInfo: inprocAddr{}}

// serverStream is the ServerTransportStream of an in-process unary call:
// it collects what the handler sets with grpc.SetHeader and SetTrailer.
type serverStream struct {
	method   string
	mu       sync.Mutex
	header   metadata.MD
	trailer  metadata.MD
	finished bool
}

func (s *serverStream) Method() string { return s.method }

func (s *serverStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return errors.New("rpc: headers already sent")
	}
	s.header = metadata.Join(s.header, md)
	return nil
}

func (s *serverStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }

func (s *serverStream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return errors.New("rpc: trailers already sent")
	}
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}

func (s *serverStream) finish() (header, trailer metadata.MD) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finished = true
	return s.header, s.trailer
}

// detached keeps the caller's deadline and cancellation and none of its
// values: the handler sees what a network call's handler would.
type detached struct{ context.Context }

func (detached) Value(any) any { return nil }

type unaryResult struct {
	resp            any
	err             error
	header, trailer metadata.MD
}

// resultChans holds empty result channels of finished calls.
var resultChans = sync.Pool{New: func() any { return make(chan unaryResult, 1) }}

// Invoke implements grpc.ClientConnInterface.
func (u unaryConn) Invoke(ctx context.Context, method string, req, reply any, opts ...grpc.CallOption) error {
	var headerTo, trailerTo []*metadata.MD
	var peerTo []*peer.Peer
	m, found := u.c.unary.lookup(method)
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.PerRPCCredsCallOption:
			uri := m.uri
			if !found {
				uri = "inproc:" + method
			}
			md, err := o.Creds.GetRequestMetadata(ctx, uri)
			if err != nil {
				return status.Error(codes.Unauthenticated, err.Error())
			}
			for k, v := range md {
				ctx = metadata.AppendToOutgoingContext(ctx, k, v)
			}
		case grpc.HeaderCallOption:
			headerTo = append(headerTo, o.HeaderAddr)
		case grpc.TrailerCallOption:
			trailerTo = append(trailerTo, o.TrailerAddr)
		case grpc.PeerCallOption:
			peerTo = append(peerTo, o.PeerAddr)
		}
	}
	for _, p := range peerTo {
		*p = inprocPeer
	}
	in, ok := req.(proto.Message)
	if !ok || in == nil {
		return status.Error(codes.Internal, "rpc: request is not a protobuf message")
	}
	// The handler gets a copy of its own, made here: a caller that gives
	// up (its deadline) may reuse its request while the handler reads.
	in = proto.Clone(in)
	if !found {
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	begin := time.Now()
	ctx = u.client.TagRPC(ctx, &stats.RPCTagInfo{FullMethodName: method})
	u.client.HandleRPC(ctx, &stats.Begin{Client: true, BeginTime: begin})

	out := resultChans.Get().(chan unaryResult)
	md, _ := metadata.FromOutgoingContext(ctx)
	sctx := peer.NewContext(metadata.NewIncomingContext(detached{ctx}, md), &inprocPeer)
	u.c.unary.run(func() { out <- u.c.serve(sctx, method, m, in) })

	var err error
	select {
	case r := <-out:
		// The handler's one send has been received: out is empty and no
		// one else holds it. (A call that gave up leaves it to the handler.)
		resultChans.Put(out)
		for _, h := range headerTo {
			*h = r.header
		}
		for _, t := range trailerTo {
			*t = r.trailer
		}
		err = asStatus(r.err)
		if err == nil {
			resp, ok := r.resp.(proto.Message)
			if !ok || resp == nil {
				err = status.Error(codes.Internal, "handler returned neither error nor response message")
			} else {
				proto.Reset(reply.(proto.Message))
				proto.Merge(reply.(proto.Message), resp)
			}
		}
	case <-ctx.Done():
		err = status.FromContextError(ctx.Err()).Err()
	}
	u.client.HandleRPC(ctx, &stats.End{Client: true, BeginTime: begin, EndTime: time.Now(), Error: err})
	return err
}

// serve runs one unary call on the server side: its stats, interceptors
// and handler, with a copy of the request.
func (c *Channel) serve(ctx context.Context, method string, m unaryMethod, req proto.Message) (r unaryResult) {
	st := &serverStream{method: method}
	ctx = grpc.NewContextWithServerTransportStream(ctx, st)
	begin := time.Now()
	ctx = c.server.TagRPC(ctx, &stats.RPCTagInfo{FullMethodName: method})
	c.server.HandleRPC(ctx, &stats.Begin{BeginTime: begin})
	defer func() {
		if p := recover(); p != nil {
			// The recovery interceptor normally turns a panic into an
			// answer; this catches one in the handler's decoding.
			r = unaryResult{err: status.Error(codes.Internal, fmt.Sprint("rpc: panic: ", p))}
		}
		r.header, r.trailer = st.finish()
		c.server.HandleRPC(ctx, &stats.End{BeginTime: begin, EndTime: time.Now(), Error: r.err})
	}()
	dec := func(v any) error {
		dst, ok := v.(proto.Message)
		if !ok {
			return status.Error(codes.Internal, "rpc: request is not a protobuf message")
		}
		proto.Merge(dst, req)
		return nil
	}
	r.resp, r.err = m.handler(m.impl, ctx, dec, c.unaryInterceptor)
	return r
}

// NewStream implements grpc.ClientConnInterface.
func (u unaryConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return u.streams.NewStream(ctx, desc, method, opts...)
}
