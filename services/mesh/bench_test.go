package mesh_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/internal/bench"
	"github.com/pushbackhq/pushback/services/mesh"
	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// BenchmarkDecide measures Decide over loopback TCP against the whole mesh
// in one process (every attempt recorded before the reply), beside
// BenchmarkEcho, a bare gRPC server with the same client: compare the two
// in one run (benchstat) rather than absolute numbers.
func BenchmarkDecide(b *testing.B) {
	cfg := mesh.Default()
	cfg.DataDir = b.TempDir()
	m := start(b, cfg)
	var clients []decisionv1.DecisionServiceClient
	for _, c := range dialFour(b, m.grpcAddr) {
		clients = append(clients, decisionv1.NewDecisionServiceClient(c))
	}
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32) // 64 calls in flight on 2 cores, as pushback bench
	cpu := bench.ProcessCPU()
	b.ResetTimer()
	defer func() { reportCPU(b, cpu) }()
	b.RunParallel(func(pb *testing.PB) {
		w := seq.Add(1)
		r := rand.New(rand.NewPCG(uint64(w), 7))
		dc := clients[w%int64(len(clients))]
		for pb.Next() {
			u := r.IntN(1_000_000)
			_, err := dc.Decide(context.Background(), &decisionv1.DecideRequest{
				UserId: fmt.Sprint("user-", u), AppId: "vpn", Factor: eventv1.Factor_FACTOR_PUSH, AttemptId: fmt.Sprint("a-", seq.Add(1)),
				Client: &eventv1.Client{Ip: fmt.Sprintf("198.51.%d.%d", u/250%250, u%250+1), DeviceId: fmt.Sprint("dev-", u), Asn: 64501,
					Geo: &eventv1.Geo{Latitude: 40.71, Longitude: -74.0, AccuracyKm: 20, Country: "US"}},
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

type echo struct {
	testpb.UnimplementedTestServiceServer
}

func (echo) UnaryCall(_ context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Payload: in.GetPayload()}, nil
}

// BenchmarkEcho is the ceiling BenchmarkDecide is compared with.
func BenchmarkEcho(b *testing.B) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := grpc.NewServer()
	testpb.RegisterTestServiceServer(s, echo{})
	go func() { _ = s.Serve(lis) }()
	defer s.Stop()
	var clients []testpb.TestServiceClient
	for _, c := range dialFour(b, lis.Addr().String()) {
		clients = append(clients, testpb.NewTestServiceClient(c))
	}
	var next atomic.Int64
	payload := &testpb.Payload{Body: make([]byte, 160)}
	b.ReportAllocs()
	b.SetParallelism(32)
	cpu := bench.ProcessCPU()
	b.ResetTimer()
	defer func() { reportCPU(b, cpu) }()
	b.RunParallel(func(pb *testing.PB) {
		c := clients[next.Add(1)%int64(len(clients))]
		for pb.Next() {
			if _, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{Payload: payload}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// reportCPU reports the CPU time per call since cpu, client and mesh
// together: steadier than the wall time on a shared machine.
func reportCPU(b *testing.B, cpu time.Duration) {
	b.StopTimer()
	b.ReportMetric(float64(bench.ProcessCPU()-cpu)/float64(b.N), "cpu-ns/op")
}

// dialFour opens four client connections, as pushback bench does: one
// HTTP/2 connection has one writer and one reader per side and would be
// the bottleneck of either benchmark.
func dialFour(b *testing.B, addr string) []*grpc.ClientConn {
	conns, err := bench.Dial(addr, 4)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range conns {
		b.Cleanup(func() { _ = c.Close() })
	}
	return conns
}
