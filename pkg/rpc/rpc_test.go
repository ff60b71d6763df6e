package rpc_test

import (
	"context"
	"testing"

	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

type panicky struct {
	testpb.UnimplementedTestServiceServer
}

func (panicky) EmptyCall(context.Context, *testpb.Empty) (*testpb.Empty, error) {
	panic("boom")
}

func (panicky) UnaryCall(_ context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Payload: in.GetPayload()}, nil
}

func TestInProcessServerRecoversAndPoolSpreadsCalls(t *testing.T) {
	srv := rpc.NewServer(rpc.ServerOptions{})
	testpb.RegisterTestServiceServer(srv, panicky{})
	p := rpc.NewInProcess()
	go func() { _ = srv.Serve(p.Listener()) }()
	defer srv.Stop()

	var conns []*grpc.ClientConn
	for i := 0; i < 3; i++ {
		c, err := p.Dial(rpc.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	pool := rpc.NewPool(conns...)
	defer pool.Close()
	client := testpb.NewTestServiceClient(pool)
	ctx := context.Background()
	for i := 0; i < 6; i++ {
		if _, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns {
		if c.GetState().String() != "READY" {
			t.Fatalf("connection %s not used by the pool", c.GetState())
		}
	}
	// A panicking handler becomes Internal with a reason; the server lives on.
	_, err := client.EmptyCall(ctx, &testpb.Empty{})
	if status.Code(err) != codes.Internal || apierr.Reason(err) != "ERROR_REASON_INTERNAL" {
		t.Fatalf("panic became %v", err)
	}
	resp, err := healthpb.NewHealthClient(pool).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health after a panic: %v, %v", resp, err)
	}
}

func TestDialRejectsEmptyAddress(t *testing.T) {
	if _, err := rpc.Dial("", rpc.ClientOptions{}); err == nil {
		t.Fatal("empty address accepted")
	}
	if _, _, _, err := rpc.MutualTLS("", "", ""); err == nil {
		t.Fatal("mutual TLS without files accepted")
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:50051": true, "[::1]:8080": true, "localhost:1": true, "127.8.9.10:1": true,
		"0.0.0.0:50051": false, "10.0.0.1:1": false, "example.com:443": false, ":8080": false, "127.0.0.1": false,
	} {
		if got := rpc.Loopback(addr); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
