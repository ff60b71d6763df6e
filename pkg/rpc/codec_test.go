package rpc_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// rawCodec sends and receives wire bytes as they are, so a test can send
// what no generated client would.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// str is a string field on the wire, whatever its bytes.
func str(num protowire.Number, s string) []byte {
	return protowire.AppendString(protowire.AppendTag(nil, num, protowire.BytesType), s)
}

func msg(num protowire.Number, b []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), b)
}

type echo struct {
	testpb.UnimplementedTestServiceServer
}

func (echo) UnaryCall(_ context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Username: in.GetResponseStatus().GetMessage()}, nil
}

func (echo) FullDuplexCall(stream testpb.TestService_FullDuplexCallServer) error {
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: in.GetPayload()}); err != nil {
			return err
		}
	}
}

func serve(t *testing.T) *grpc.ClientConn {
	t.Helper()
	srv := rpc.NewServer(rpc.ServerOptions{})
	testpb.RegisterTestServiceServer(srv, echo{})
	p := rpc.NewInProcess()
	go func() { _ = srv.Serve(p.Listener()) }()
	t.Cleanup(srv.Stop)
	c, err := p.Dial(rpc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestUndecodableRequestIsInvalidArgument: grpc-go answers a request it
// cannot decode with Internal; a Pushback server answers InvalidArgument
// naming the field, unary and streaming alike.
func TestUndecodableRequestIsInvalidArgument(t *testing.T) {
	conn := serve(t)
	ctx := context.Background()
	raw := grpc.ForceCodecV2(rawCodec{})
	tests := []struct {
		name, method string
		body         []byte
		field        string
	}{
		{"top-level string", "/grpc.health.v1.Health/Check", str(1, "svc\xff"), "service"},
		{"nested string", "/grpc.testing.TestService/UnaryCall", msg(7, str(2, "\xc3(")), "response_status.message"},
		{"truncated field", "/grpc.testing.TestService/UnaryCall", []byte{0x3a, 0x10, 0x12}, "request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out []byte
			err := conn.Invoke(ctx, tt.method, &tt.body, &out, raw)
			if status.Code(err) != codes.InvalidArgument || apierr.Reason(err) != "ERROR_REASON_INVALID_ARGUMENT" ||
				!slices.Equal(apierr.Fields(err), []string{tt.field}) {
				t.Fatalf("%s: %v (fields %v), want InvalidArgument naming %s", tt.method, err, apierr.Fields(err), tt.field)
			}
		})
	}

	t.Run("stream", func(t *testing.T) {
		s, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/grpc.testing.TestService/FullDuplexCall", raw)
		if err != nil {
			t.Fatal(err)
		}
		good := msg(3, protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), []byte("ok")))
		bad := msg(7, str(2, "\xff"))
		var out []byte
		if err := s.SendMsg(&good); err != nil {
			t.Fatal(err)
		}
		if err := s.RecvMsg(&out); err != nil {
			t.Fatalf("a good message: %v", err)
		}
		_ = s.SendMsg(&bad)
		err = s.RecvMsg(&out)
		if status.Code(err) != codes.InvalidArgument || !slices.Equal(apierr.Fields(err), []string{"response_status.message"}) {
			t.Fatalf("a bad message on a stream: %v, want InvalidArgument naming response_status.message", err)
		}
	})

	t.Run("unknown fields still pass", func(t *testing.T) {
		// A newer client's field, and a forged mark without the server's key.
		body := protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1)
		body = append(body, msg(protowire.MaxValidNumber, []byte("0123456789abcdefu service"))...)
		var out []byte
		if err := conn.Invoke(ctx, "/grpc.health.v1.Health/Check", &body, &out, raw); err != nil {
			t.Fatalf("unknown fields: %v", err)
		}
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("a generated client: %v, %v", resp, err)
		}
	})
}
