package rpc_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// behaving answers each request as its payload asks, so one table of
// calls can be played against both topologies.
type behaving struct {
	testpb.UnimplementedTestServiceServer
}

func (behaving) UnaryCall(ctx context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	switch string(in.GetPayload().GetBody()) {
	case "invalid":
		var v apierr.Violations
		v.Add("payload.body", "is not acceptable")
		return nil, v.Err()
	case "plain":
		return nil, errors.New("a plain error")
	case "panic":
		panic("boom")
	case "slow":
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	case "hang":
		// A handler that ignores its context: the caller's deadline still ends the call.
		time.Sleep(2 * time.Second)
		return &testpb.SimpleResponse{}, nil
	case "who":
		md, _ := metadata.FromIncomingContext(ctx)
		return &testpb.SimpleResponse{Username: strings.Join(md.Get("x-test-credential"), ",")}, nil
	case "mutate":
		// The handler owns its copy: changing it must not reach the caller's.
		in.Payload.Body = []byte("changed by the handler")
	}
	return &testpb.SimpleResponse{Payload: in.GetPayload()}, nil
}

func (behaving) StreamingOutputCall(in *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	for _, p := range in.GetResponseParameters() {
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
			return err
		}
	}
	if string(in.GetPayload().GetBody()) == "fail" {
		return status.Error(codes.ResourceExhausted, "no more")
	}
	return nil
}

type testCredential struct{}

func (testCredential) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"x-test-credential": "mesh"}, nil
}
func (testCredential) RequireTransportSecurity() bool { return false }

// refuseAnonymous plays the guard: a call without the credential is refused
// before the handler runs.
func refuseAnonymous(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if len(md.Get("x-test-credential")) == 0 {
		return nil, status.Error(codes.Unauthenticated, "no credential")
	}
	return handler(ctx, req)
}

// TestChannelAnswersAsTheNetworkDoes plays the same calls through the
// in-process channel and over loopback TCP to the same server, and requires
// the same answers: payloads, status codes, messages and details, deadlines,
// recovered panics, per-RPC credentials, a refusing interceptor and streams.
func TestChannelAnswersAsTheNetworkDoes(t *testing.T) {
	srv := rpc.NewServer(rpc.ServerOptions{Unary: []grpc.UnaryServerInterceptor{refuseAnonymous}})
	testpb.RegisterTestServiceServer(srv, behaving{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	opts := rpc.ClientOptions{PerRPC: testCredential{}}
	tcp, err := rpc.Dial(lis.Addr().String(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tcp.Close() })
	anonymous, err := rpc.Dial(lis.Addr().String(), rpc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = anonymous.Close() })
	topologies := []struct {
		name       string
		conn, anon grpc.ClientConnInterface
	}{
		{"tcp", tcp, anonymous},
		{"channel", srv.Channel.Client(opts), srv.Channel.Client(rpc.ClientOptions{})},
	}

	type answer struct {
		code    codes.Code
		message string
		details int
		resp    string
	}
	call := func(conn grpc.ClientConnInterface, body string, timeout time.Duration) answer {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte(body)}}
		resp, err := testpb.NewTestServiceClient(conn).UnaryCall(ctx, req)
		if string(req.GetPayload().GetBody()) != body {
			t.Errorf("%s: the caller's request changed to %q", body, req.GetPayload().GetBody())
		}
		st := status.Convert(err)
		a := answer{code: st.Code(), message: st.Message(), details: len(st.Details())}
		if resp != nil {
			a.resp = string(resp.GetPayload().GetBody()) + "|" + resp.GetUsername()
		}
		if a.code == codes.DeadlineExceeded {
			a.message = "" // the transports word the same deadline differently
		}
		return a
	}
	const generous = 20 * time.Second
	cases := []struct {
		body    string
		timeout time.Duration
		want    codes.Code
	}{
		{"ok", generous, codes.OK},
		{"who", generous, codes.OK},
		{"mutate", generous, codes.OK},
		{"invalid", generous, codes.InvalidArgument},
		{"plain", generous, codes.Unknown},
		{"panic", generous, codes.Internal},
		{"slow", 50 * time.Millisecond, codes.DeadlineExceeded},
		{"hang", 50 * time.Millisecond, codes.DeadlineExceeded},
	}
	answers := map[string][]answer{}
	for _, tp := range topologies {
		for _, c := range cases {
			a := call(tp.conn, c.body, c.timeout)
			if a.code != c.want {
				t.Errorf("%s %s: %v %q, want %v", tp.name, c.body, a.code, a.message, c.want)
			}
			answers[tp.name] = append(answers[tp.name], a)
		}
		// Without the credential the interceptor refuses, before the handler.
		answers[tp.name] = append(answers[tp.name], call(tp.anon, "ok", generous))
	}
	for i := range answers["tcp"] {
		if answers["tcp"][i] != answers["channel"][i] {
			t.Errorf("call %d: tcp %+v, channel %+v", i, answers["tcp"][i], answers["channel"][i])
		}
	}
	if got := answers["channel"][1].resp; got != "|mesh" {
		t.Errorf("the handler saw credential %q through the channel", got)
	}
	if got := answers["channel"][len(cases)]; got.code != codes.Unauthenticated {
		t.Errorf("an anonymous call through the channel: %+v, want Unauthenticated", got)
	}

	// A method nobody registered: Unimplemented on both.
	for _, tp := range topologies {
		_, err := testpb.NewUnimplementedServiceClient(tp.conn).UnimplementedCall(context.Background(), &testpb.Empty{})
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("%s: an unregistered method answered %v, want Unimplemented", tp.name, err)
		}
	}

	// A server stream: the same messages, then the same end.
	stream := func(conn grpc.ClientConnInterface, body string) (int, codes.Code) {
		ctx, cancel := context.WithTimeout(context.Background(), generous)
		defer cancel()
		s, err := testpb.NewTestServiceClient(conn).StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
			Payload:            &testpb.Payload{Body: []byte(body)},
			ResponseParameters: []*testpb.ResponseParameters{{Size: 3}, {Size: 5}},
		})
		if err != nil {
			return 0, status.Code(err)
		}
		n := 0
		for {
			m, err := s.Recv()
			if errors.Is(err, io.EOF) {
				return n, codes.OK
			}
			if err != nil {
				return n, status.Code(err)
			}
			n += len(m.GetPayload().GetBody())
		}
	}
	for _, body := range []string{"ok", "fail"} {
		tn, tc := stream(tcp, body)
		cn, cc := stream(topologies[1].conn, body)
		if tn != 8 || tn != cn || tc != cc {
			t.Errorf("stream %s: tcp %d bytes %v, channel %d bytes %v", body, tn, tc, cn, cc)
		}
	}
}

// TestChannelClonesMessages: neither side of an in-process call shares a
// message with the other.
func TestChannelClonesMessages(t *testing.T) {
	srv := rpc.NewServer(rpc.ServerOptions{})
	testpb.RegisterTestServiceServer(srv, behaving{})
	c := testpb.NewTestServiceClient(srv.Channel.Client(rpc.ClientOptions{}))
	req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("mutate")}}
	orig := proto.Clone(req)
	resp, err := c.UnaryCall(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(req, orig) {
		t.Fatalf("the handler changed the caller's request: %v", req)
	}
	if string(resp.GetPayload().GetBody()) != "changed by the handler" {
		t.Fatalf("response %q", resp.GetPayload().GetBody())
	}
}

// TestOnlyTheProcessItselfIsTrusted: a call is from a trusted peer only
// when it came through the channel from a client marked Trusted; an
// outside caller who sends the marker over the network is not one, and
// neither is an in-process client that relays outside callers.
func TestOnlyTheProcessItselfIsTrusted(t *testing.T) {
	trusted := make(chan bool, 1)
	srv := rpc.NewServer(rpc.ServerOptions{Unary: []grpc.UnaryServerInterceptor{
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			trusted <- rpc.FromTrustedPeer(ctx)
			return handler(ctx, req)
		}}})
	testpb.RegisterTestServiceServer(srv, behaving{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	tcp, err := rpc.Dial(lis.Addr().String(), rpc.ClientOptions{Trusted: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tcp.Close() })
	forged := metadata.AppendToOutgoingContext(context.Background(), "x-pushback-trusted-peer", "1")
	for _, c := range []struct {
		name string
		conn grpc.ClientConnInterface
		ctx  context.Context
		want bool
	}{
		{"a trusted in-process client", srv.Channel.Client(rpc.ClientOptions{Trusted: true}), context.Background(), true},
		{"an in-process client for outside callers", srv.Channel.Client(rpc.ClientOptions{}), context.Background(), false},
		{"the same with the marker forged", srv.Channel.Client(rpc.ClientOptions{}), forged, false},
		{"a network caller marked trusted", tcp, context.Background(), false},
		{"a network caller with the marker forged", tcp, forged, false},
	} {
		if _, err := testpb.NewTestServiceClient(c.conn).UnaryCall(c.ctx, &testpb.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
		if got := <-trusted; got != c.want {
			t.Errorf("%s: trusted %v, want %v", c.name, got, c.want)
		}
	}
}

// slowEcho finishes its call after the caller gave up on it.
type slowEcho struct {
	testpb.UnimplementedTestServiceServer
	done chan struct{}
}

func (s slowEcho) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	time.Sleep(300 * time.Millisecond)
	close(s.done)
	return &testpb.SimpleResponse{}, nil
}

// TestGracefulStopWaitsForInProcessCalls: a handler whose caller stopped
// waiting (its deadline) still runs; a graceful stop waits for it, as for a
// network call, so that nothing it writes races the store's close.
func TestGracefulStopWaitsForInProcessCalls(t *testing.T) {
	srv := rpc.NewServer(rpc.ServerOptions{})
	h := slowEcho{done: make(chan struct{})}
	testpb.RegisterTestServiceServer(srv, h)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := testpb.NewTestServiceClient(srv.Channel.Client(rpc.ClientOptions{})).UnaryCall(ctx, &testpb.SimpleRequest{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("the call: %v, want DeadlineExceeded", err)
	}
	srv.GracefulStop()
	select {
	case <-h.done:
	default:
		t.Fatal("GracefulStop returned while an in-process handler was still running")
	}
}
