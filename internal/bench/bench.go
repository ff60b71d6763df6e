// Package bench is Pushback's gRPC load generator. It measures Decide (or
// IngestStream) against a running mesh and, in the same run with the same
// client settings, a bare gRPC echo server, so that results on a shared
// machine are reported as ratios that hold.
//
// By default the load is a closed loop: Concurrency calls always in
// flight, which finds the most calls a second the target answers; its
// latency is then what that many calls queued cost (in a closed loop,
// latency is the calls in flight over the calls a second). With Rate set
// the load is an open loop: calls start on a fixed schedule, whatever the
// answers do, as pushes arrive from people, and each call's latency counts
// from when it was handed to the workers (waiting for a free one
// included), so a target that falls behind shows it.
package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// Options configures a run.
type Options struct {
	Concurrency int           // calls in flight
	Connections int           // client connections, calls spread round-robin
	Duration    time.Duration // measured time per target
	Warmup      time.Duration // unmeasured time before each target
	Users       int           // distinct users of benign traffic
	AttackShare float64       // share of calls that are push bombing a few users
	Seed        uint64
	// Interval, when set, also reports each interval of the run on its
	// own (calls per second, p99, resident memory, data on disk), so a
	// long run shows whether latency and memory level off.
	Interval time.Duration
	// DataDirs are measured for the data on disk in each interval.
	DataDirs []string
	// Rate, when set, starts this many calls a second (an open loop), with
	// at most Concurrency in flight; 0 runs the closed loop.
	Rate float64
}

// MaxRate bounds Options.Rate: far past what two cores answer, and what a
// second of backlog may hold in memory.
const MaxRate = 1_000_000

// maxBacklog bounds the calls an open loop lets wait for a free worker: a
// second of its schedule. A call due past it is missed, and counted.
func (o Options) maxBacklog() int { return max(int(min(o.Rate, MaxRate)), 1) }

// Interval is one interval of a run (Options.Interval).
type Interval struct {
	End   time.Duration `json:"end_ns"`
	Calls int64         `json:"calls"`
	RPS   float64       `json:"rps"`
	P99   time.Duration `json:"p99_ns"`
	RSS   int64         `json:"rss_bytes"`
	// RSSAnon is the part of RSS that is the process's own memory (the Go
	// heap, badger's memtables and caches); RSSFile is the part that maps
	// files (badger's tables and value log), pages the kernel can drop
	// and read back, so they grow with the data without being a leak.
	RSSAnon int64 `json:"rss_anon_bytes"`
	RSSFile int64 `json:"rss_file_bytes"`
	// GoHeap is the Go heap in use (live and not yet collected).
	GoHeap int64 `json:"go_heap_bytes"`
	Disk   int64 `json:"disk_bytes"`
}

// Result is one target's measurement.
type Result struct {
	Target   string           `json:"target"`
	Calls    int64            `json:"calls"`
	Errors   int64            `json:"errors"`
	Elapsed  time.Duration    `json:"elapsed_ns"`
	RPS      float64          `json:"rps"`
	P50      time.Duration    `json:"p50_ns"`
	P90      time.Duration    `json:"p90_ns"`
	P99      time.Duration    `json:"p99_ns"`
	P999     time.Duration    `json:"p999_ns"`
	Outcomes map[string]int64 `json:"outcomes,omitempty"`
	// ErrorCodes counts failed calls by gRPC code.
	ErrorCodes map[string]int64 `json:"error_codes,omitempty"`
	// Intervals are the run's intervals, with Options.Interval.
	Intervals []Interval `json:"intervals,omitempty"`
	// Offered is the open loop's rate (Options.Rate); Missed counts the
	// calls it could not start, because the backlog of calls due and not
	// yet started was full.
	Offered float64 `json:"offered_rps,omitempty"`
	Missed  int64   `json:"missed,omitempty"`
	// CPUPerCall is the CPU time this process spent per call (user and
	// system), the client's share included and, when the mesh runs in this
	// process, the mesh's: on a shared machine it moves far less than the
	// calls per second do.
	CPUPerCall time.Duration `json:"cpu_per_call_ns"`
}

// callFunc makes call number seq from worker and returns what it answered
// (an outcome, or "").
type callFunc func(ctx context.Context, worker int, seq int64) (string, error)

// measure loads target with call until the duration ends: a closed loop, or
// an open one with o.Rate.
func measure(ctx context.Context, o Options, target string, call callFunc) Result {
	load := func(window context.Context, rec *recorder) {
		if o.Rate > 0 {
			rec.missed = openLoop(ctx, window, o, call, rec)
			return
		}
		runWorkers(ctx, window, o.Concurrency, closedSchedule(window), call, rec)
	}
	if o.Warmup > 0 {
		wctx, cancel := context.WithTimeout(ctx, o.Warmup)
		load(wctx, &recorder{discard: true})
		cancel()
	}
	mctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	rec := &recorder{outcomes: map[string]int64{}}
	start, cpu := time.Now(), ProcessCPU()
	rec.start = start
	samples := sampleIntervals(mctx, o, start)
	load(mctx, rec)
	elapsed, used := time.Since(start), ProcessCPU()-cpu
	res := rec.result(target, elapsed)
	res.Offered, res.Missed = o.Rate, rec.missed
	if o.Interval > 0 {
		res.Intervals = rec.intervals(o.Interval, <-samples)
	}
	if res.Calls > 0 {
		res.CPUPerCall = used / time.Duration(res.Calls)
	}
	return res
}

// ProcessCPU is the CPU time this process has used, user and system.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type recorder struct {
	mu    sync.Mutex
	start time.Time
	lat   []time.Duration
	// ends are when each call of lat ended, since start; unsorted is lat
	// in the same order, before result sorts it.
	ends, unsorted []time.Duration
	errors         int64
	outcomes       map[string]int64
	codes          map[string]int64
	// missed counts the calls an open loop could not start.
	missed int64
	// discard drops what the calls measure (the warm-up).
	discard bool
}

func (r *recorder) result(target string, elapsed time.Duration) Result {
	r.unsorted = slices.Clone(r.lat) // paired with ends, for intervals
	slices.Sort(r.lat)
	q := func(p float64) time.Duration {
		if len(r.lat) == 0 {
			return 0
		}
		i := int(p * float64(len(r.lat)-1))
		return r.lat[i]
	}
	res := Result{Target: target, Calls: int64(len(r.lat)), Errors: r.errors, Elapsed: elapsed,
		P50: q(0.50), P90: q(0.90), P99: q(0.99), P999: q(0.999)}
	if elapsed > 0 {
		res.RPS = float64(len(r.lat)) / elapsed.Seconds()
	}
	if len(r.outcomes) > 0 {
		res.Outcomes = r.outcomes
	}
	if len(r.codes) > 0 {
		res.ErrorCodes = r.codes
	}
	return res
}

// due is one call to make: its number and when it was handed out, which
// its latency counts from.
type due struct {
	seq int64
	at  time.Time
}

// closedSchedule hands each worker its next call as soon as it asks,
// until window ends.
func closedSchedule(window context.Context) func() (due, bool) {
	var seq atomic.Int64
	return func() (due, bool) {
		if window.Err() != nil {
			return due{}, false
		}
		return due{seq: seq.Add(1), at: time.Now()}, true
	}
}

// openLoop starts calls at o.Rate a second until window ends, on at most
// o.Concurrency workers, and returns how many it missed. A call due while
// every worker is busy waits, and its wait counts in its latency; a call
// due while o.maxBacklog() are waiting is missed.
func openLoop(ctx, window context.Context, o Options, call callFunc, rec *recorder) (missed int64) {
	queue := make(chan due, o.maxBacklog())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runWorkers(ctx, window, o.Concurrency, func() (due, bool) {
			if window.Err() != nil {
				return due{}, false // what is still queued was due after the run
			}
			d, ok := <-queue
			return d, ok
		}, call, rec)
	}()
	every := time.Duration(float64(time.Second) / o.Rate)
	next, seq := time.Now(), int64(0)
	for window.Err() == nil {
		if wait := time.Until(next); wait > 0 {
			select {
			case <-window.Done():
			case <-time.After(wait):
			}
			continue
		}
		// Every call due by now. Its latency counts from now: a wake-up
		// this loop's timer made late is the load generator's, not the
		// target's; a wait for a free worker is the target's.
		for now := time.Now(); !next.After(now); next = next.Add(every) {
			seq++
			select {
			case queue <- due{seq: seq, at: now}:
			default:
				missed++
			}
		}
	}
	close(queue)
	<-done
	return missed
}

// runWorkers makes the calls next hands out on n workers until it hands
// out none. Calls run under ctx, not under the window, so the end of the
// window never turns calls in flight into deadline errors; calls that end
// after the window are not counted.
func runWorkers(ctx, window context.Context, n int, next func() (due, bool), call callFunc, rec *recorder) {
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<14)
			var ends []time.Duration
			var errs int64
			outcomes := map[string]int64{}
			codes := map[string]int64{}
			for {
				d, ok := next()
				if !ok {
					break
				}
				out, err := call(ctx, w, d.seq)
				took := time.Since(d.at)
				if window.Err() != nil {
					continue // the call raced the end of the run; do not count it
				}
				if err != nil {
					errs++
					codes[status.Code(err).String()]++
					continue
				}
				lat = append(lat, took)
				if !rec.discard {
					ends = append(ends, time.Since(rec.start))
				}
				if out != "" {
					outcomes[out]++
				}
			}
			if rec.discard {
				return
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			rec.lat = append(rec.lat, lat...)
			rec.ends = append(rec.ends, ends...)
			rec.errors += errs
			for k, v := range outcomes {
				rec.outcomes[k] += v
			}
			if rec.codes == nil {
				rec.codes = map[string]int64{}
			}
			for k, v := range codes {
				rec.codes[k] += v
			}
		}()
	}
	wg.Wait()
}

// Dial opens n client connections to addr, plaintext unless opts give
// transport credentials (later options win); opts also carry a mesh's
// call credentials.
func Dial(addr string, n int, opts ...grpc.DialOption) ([]*grpc.ClientConn, error) {
	var conns []*grpc.ClientConn
	for i := 0; i < n; i++ {
		// Distinct user agents keep grpc-go from sharing one transport.
		do := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUserAgent(fmt.Sprint("pushback-bench/", i))}, opts...)
		c, err := grpc.NewClient(addr, do...)
		if err != nil {
			return nil, err
		}
		c.Connect()
		conns = append(conns, c)
	}
	return conns, nil
}

// Decide measures DecisionService/Decide.
func Decide(ctx context.Context, conns []*grpc.ClientConn, o Options) Result {
	clients := make([]decisionv1.DecisionServiceClient, len(conns))
	for i, c := range conns {
		clients[i] = decisionv1.NewDecisionServiceClient(c)
	}
	run := fmt.Sprintf("%x", rand.Uint64())
	const attacked = 16
	return measure(ctx, o, "decide", func(ctx context.Context, worker int, seq int64) (string, error) {
		r := rand.New(rand.NewPCG(o.Seed+uint64(seq), uint64(worker)))
		req := &decisionv1.DecideRequest{AppId: "vpn", Factor: eventv1.Factor_FACTOR_PUSH,
			AttemptId: fmt.Sprint(run, "-", seq)}
		if r.Float64() < o.AttackShare {
			req.UserId = fmt.Sprint("victim-", run, "-", r.IntN(attacked))
			req.Client = &eventv1.Client{Ip: "203.0.113.66", Asn: 64500, Geo: &eventv1.Geo{Latitude: 55.75, Longitude: 37.62, AccuracyKm: 50, Country: "RU"}}
		} else {
			u := r.IntN(o.Users)
			req.UserId, req.Client = BenignUser(u), BenignClient(u)
		}
		resp, err := clients[seq%int64(len(clients))].Decide(ctx, req)
		if err != nil {
			return "", err
		}
		if fm := resp.GetFailureMode(); fm != decisionv1.FailureMode_FAILURE_MODE_UNSPECIFIED {
			// Scoring or the store did not answer within the budget: the
			// tier's failure mode decided. Counted apart, so that an
			// overloaded mesh cannot pass for a fast one.
			return resp.GetOutcome().String() + " by " + fm.String(), nil
		}
		return resp.GetOutcome().String(), nil
	})
}

// echoServer is a bare gRPC server: no interceptors, no telemetry, no work.
type echoServer struct {
	testpb.UnimplementedTestServiceServer
}

func (echoServer) UnaryCall(_ context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Payload: in.GetPayload()}, nil
}

// StartEcho serves the echo server on a loopback port until ctx ends.
func StartEcho(ctx context.Context) (string, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	s := grpc.NewServer()
	testpb.RegisterTestServiceServer(s, echoServer{})
	go func() { _ = s.Serve(lis) }()
	go func() { <-ctx.Done(); s.Stop() }()
	return lis.Addr().String(), nil
}

// Echo measures the bare echo server with a payload the size of a Decide request.
func Echo(ctx context.Context, conns []*grpc.ClientConn, o Options) Result {
	clients := make([]testpb.TestServiceClient, len(conns))
	for i, c := range conns {
		clients[i] = testpb.NewTestServiceClient(c)
	}
	payload := &testpb.Payload{Body: make([]byte, 160)}
	return measure(ctx, o, "echo", func(ctx context.Context, _ int, seq int64) (string, error) {
		_, err := clients[seq%int64(len(clients))].UnaryCall(ctx, &testpb.SimpleRequest{Payload: payload})
		return "", err
	})
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go"`
	OS        string `json:"os"`
}

// ThisMachine returns the machine description.
func ThisMachine() Machine {
	return Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
}

// sampleIntervals samples resident memory and the data on disk at the end
// of each interval until ctx ends, and then delivers the samples.
func sampleIntervals(ctx context.Context, o Options, start time.Time) <-chan []Interval {
	out := make(chan []Interval, 1)
	if o.Interval <= 0 {
		out <- nil
		return out
	}
	go func() {
		var samples []Interval
		t := time.NewTicker(o.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				out <- samples
				return
			case <-t.C:
				rss, _ := RSS()
				anon, file := ResidentParts()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				var disk int64
				for _, d := range o.DataDirs {
					disk += dirSize(d)
				}
				samples = append(samples, Interval{End: time.Since(start).Round(time.Second), RSS: rss, RSSAnon: anon, RSSFile: file,
					GoHeap: int64(ms.HeapInuse), Disk: disk})
			}
		}
	}()
	return out
}

// intervals fills the samples with the calls that ended in each.
func (r *recorder) intervals(every time.Duration, samples []Interval) []Interval {
	for i := range samples {
		from, to := samples[i].End-every, samples[i].End
		var lat []time.Duration
		for j, e := range r.ends {
			if e > from && e <= to {
				lat = append(lat, r.unsorted[j])
			}
		}
		slices.Sort(lat)
		samples[i].Calls = int64(len(lat))
		samples[i].RPS = float64(len(lat)) / every.Seconds()
		if len(lat) > 0 {
			samples[i].P99 = lat[int(0.99*float64(len(lat)-1))]
		}
	}
	return samples
}
