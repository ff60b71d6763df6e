package rpc_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/pkg/rpc"
	"github.com/pushbackhq/pushback/pkg/telemetry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// The cost of the RPC plumbing every service shares, against a bare
// grpc-go server with the same client in the same run (compare the ratios
// of ns/op, not the numbers):
//
//	BenchmarkBareEcho              grpc.NewServer, no options
//	BenchmarkServerEcho            rpc.NewServer: stats handler, recovery, stream workers
//	BenchmarkServerEchoThroughHop  the handler first makes one call through
//	                               rpc.InProcess to the same server, as decision
//	                               calls scoring when both run in one process
//	BenchmarkServerEchoThroughHopTelemetry  the same with the mesh's telemetry
//	                               providers (default sampling, metrics)
//	BenchmarkServerEchoThroughChannel  the hop through the server's in-process
//	                               Channel instead, as the mesh makes it
//	BenchmarkServerEchoThroughChannelTelemetry  the same with the mesh's
//	                               telemetry providers

// echoer answers UnaryCall, after one call to hop when it is set.
type echoer struct {
	testpb.UnimplementedTestServiceServer
	hop testpb.TestServiceClient
}

func (e *echoer) UnaryCall(ctx context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if e.hop != nil {
		if _, err := e.hop.EmptyCall(ctx, &testpb.Empty{}); err != nil {
			return nil, err
		}
	}
	return &testpb.SimpleResponse{Payload: in.GetPayload()}, nil
}

func (e *echoer) EmptyCall(context.Context, *testpb.Empty) (*testpb.Empty, error) {
	return &testpb.Empty{}, nil
}

// benchEcho serves srv on loopback TCP and calls UnaryCall with 64 calls in
// flight on 2 cores, as pushback bench does.
func benchEcho(b *testing.B, srv *grpc.Server) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(srv.Stop)
	// Four connections, as pushback bench: one HTTP/2 connection has one
	// writer and one reader per side and would be the bottleneck.
	var clients []testpb.TestServiceClient
	for i := range 4 {
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUserAgent(fmt.Sprint("bench/", i)))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = conn.Close() })
		clients = append(clients, testpb.NewTestServiceClient(conn))
	}
	var next atomic.Uint64
	payload := &testpb.Payload{Body: make([]byte, 160)}
	b.ReportAllocs()
	b.SetParallelism(32)
	cpu := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := clients[next.Add(1)%uint64(len(clients))]
		for pb.Next() {
			if _, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{Payload: payload}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	// CPU time per call, client and server together: on a shared machine
	// it moves far less than the wall time per call.
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
}

// processCPU is the CPU time the process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkBareEcho(b *testing.B) {
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, &echoer{})
	benchEcho(b, srv)
}

func BenchmarkServerEcho(b *testing.B) {
	srv := rpc.NewServer(rpc.ServerOptions{})
	testpb.RegisterTestServiceServer(srv, &echoer{})
	benchEcho(b, srv.Server)
}

func BenchmarkServerEchoThroughHop(b *testing.B) { benchHop(b, rpc.Telemetry{}) }

// BenchmarkServerEchoThroughHopTelemetry is the hop with the providers the
// mesh runs with (the default sampler, metrics).
func BenchmarkServerEchoThroughHopTelemetry(b *testing.B) {
	tel, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "bench", Getenv: func(string) string { return "" }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	benchHop(b, rpc.Telemetry{Tracers: tel.Tracers, Meters: tel.Meters, Propagator: tel.Propagator})
}

func benchHop(b *testing.B, tel rpc.Telemetry) {
	srv := rpc.NewServer(rpc.ServerOptions{Telemetry: tel})
	inproc := rpc.NewInProcess()
	var conns []*grpc.ClientConn
	for range 4 { // as the mesh pools its peer connections
		c, err := inproc.Dial(rpc.ClientOptions{Telemetry: tel})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Close() })
		conns = append(conns, c)
	}
	testpb.RegisterTestServiceServer(srv, &echoer{hop: testpb.NewTestServiceClient(rpc.NewPool(conns...))})
	go func() { _ = srv.Serve(inproc.Listener()) }()
	benchEcho(b, srv.Server)
}

func BenchmarkServerEchoThroughChannel(b *testing.B) { benchChannel(b, rpc.Telemetry{}) }

func BenchmarkServerEchoThroughChannelTelemetry(b *testing.B) {
	tel, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "bench", Getenv: func(string) string { return "" }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	benchChannel(b, rpc.Telemetry{Tracers: tel.Tracers, Meters: tel.Meters, Propagator: tel.Propagator})
}

func benchChannel(b *testing.B, tel rpc.Telemetry) {
	srv := rpc.NewServer(rpc.ServerOptions{Telemetry: tel})
	testpb.RegisterTestServiceServer(srv, &echoer{hop: testpb.NewTestServiceClient(srv.Channel.Client(rpc.ClientOptions{Telemetry: tel}))})
	benchEcho(b, srv.Server)
}
