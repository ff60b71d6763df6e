package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"text/tabwriter"
	"time"

	"github.com/pushbackhq/pushback/internal/bench"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"github.com/pushbackhq/pushback/services/mesh"
	"google.golang.org/grpc"
)

const benchUsage = `Usage: pushback bench [flags]

Closed-loop gRPC load against a mesh on 127.0.0.1, measured beside a bare
gRPC echo server with the same client in the same run; the ratio is what
holds on a shared machine.

  pushback bench --spawn=one              start the mesh in this process (one-process topology)
  pushback bench --spawn=split            four meshes, one per service, talking over loopback TCP
  pushback bench --addr=127.0.0.1:50051   against a running mesh
  pushback bench --mode=ingest --spawn=one   IngestStream events/s versus raw badger batch writes
  pushback bench --mode=users --spawn=one --users=1000000   resident memory with that many users' state

`

type benchReport struct {
	Machine  bench.Machine        `json:"machine"`
	Mode     string               `json:"mode"`
	Topology string               `json:"topology"`
	Options  bench.Options        `json:"options"`
	Results  []bench.Result       `json:"results,omitempty"`
	Ingest   []bench.IngestResult `json:"ingest,omitempty"`
	Users    *bench.UsersResult   `json:"users,omitempty"`
	Ratio    float64              `json:"ratio"`
}

// benchFlags are the settings of one bench run.
type benchFlags struct {
	addr, spawn, mode      string
	client                 *clientFlags
	opts                   bench.Options
	batch                  int
	asJSON, history        bool
	keepOutcomes           bool
	cpuProfile, memProfile string
	// redisAddr, with --spawn, puts the spawned meshes' state in Redis.
	redisAddr string
}

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	f, code := parseBenchFlags(args, stderr, getenv)
	if code != 0 {
		return code
	}
	f.opts.Seed = uint64(time.Now().UnixNano())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t, code := benchTargetOf(ctx, f, stderr)
	if code != 0 {
		return code
	}
	defer t.stop()
	meshConns, echoConns, code := dialBench(ctx, f, t.addr, stderr)
	if code != 0 {
		return code
	}
	if f.memProfile != "" {
		defer writeMemProfile(f.memProfile, stderr)
	}
	f.opts.DataDirs = t.dataDirs
	rep := benchReport{Machine: bench.ThisMachine(), Mode: f.mode, Topology: t.topology, Options: f.opts}
	if f.mode == "decide" && f.spawn == "split" {
		// The history goes to the scoring mesh, as intake would send it.
		if meshConns, code = historyConns(t.scoringAddr, meshConns, f, stderr); code != 0 {
			return code
		}
	}
	if code := measureBench(ctx, f, &rep, t.scoringDir, meshConns, echoConns, stderr); code != 0 {
		return code
	}
	return reportBench(stdout, stderr, rep, f)
}

// parseBenchFlags reads and checks the flags; code is the exit code when
// they are wrong, 0 otherwise.
func parseBenchFlags(args []string, stderr io.Writer, getenv func(string) string) (f benchFlags, code int) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchUsage); fs.PrintDefaults() }
	fs.StringVar(&f.addr, "addr", "127.0.0.1:50051", "gRPC address of a running mesh (ignored with --spawn)")
	fs.StringVar(&f.spawn, "spawn", "", "start the mesh here: one (all services in one process) or split (one mesh per service over loopback)")
	fs.StringVar(&f.mode, "mode", "decide", "decide, ingest or users")
	// A mesh with credentials takes Decide from hooks and IngestStream from
	// log shippers (the meshes --spawn starts have none, on loopback).
	f.client = addClientFlags(fs, getenv, "a hook's (--mode=decide) or the intake token (--mode=ingest) of a mesh that requires credentials", true)
	o := &f.opts
	fs.IntVar(&o.Concurrency, "concurrency", 64, "calls in flight")
	fs.IntVar(&o.Connections, "connections", 4, "client connections")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "measured time per target")
	fs.DurationVar(&o.Warmup, "warmup", 2*time.Second, "unmeasured time before each target")
	fs.IntVar(&o.Users, "users", 1000000, "distinct benign users (each pushes rarely, as real users do)")
	fs.Float64Var(&o.AttackShare, "attack-share", 0.05, "share of calls that push-bomb a few users")
	fs.Float64Var(&o.Rate, "rate", 0, "with --mode=decide, start this many calls a second (an open loop, as pushes arrive) instead of keeping --concurrency calls in flight; --concurrency then caps the calls in flight, and latency counts from when each call is handed out")
	fs.IntVar(&f.batch, "batch", 100, "events per IngestStream message (ingest mode)")
	fs.DurationVar(&o.Interval, "interval", 0, "with --mode=decide, also report each interval of this length: calls per second, p99, resident memory and data on disk (a long run shows whether they level off)")
	fs.BoolVar(&f.asJSON, "json", false, "print one JSON report")
	fs.BoolVar(&f.keepOutcomes, "keep-outcomes", true, "with --spawn, the meshes' --telemetry-keep-outcomes (false measures head sampling alone; traces are exported only when OTEL_TRACES_EXPORTER is set)")
	fs.BoolVar(&f.history, "history", true, "with --spawn (--mode=decide or ingest), give the benign users a history before measuring, as real users have (without it every benign user is new, and their pushes count toward their network's spray)")
	fs.StringVar(&f.redisAddr, "redis-addr", "", "with --spawn, keep the spawned meshes' state in the Redis at this loopback address instead of badger (the data there is the bench's: use an empty server)")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (with --spawn: client and mesh) to FILE")
	fs.StringVar(&f.memProfile, "memprofile", "", "write an allocation profile to FILE at the end")
	if err := fs.Parse(args); err != nil {
		return f, 2
	}
	return f, f.check(stderr)
}

// check reports what is wrong with the flags on stderr and returns the
// exit code, or 0 when nothing is.
func (f benchFlags) check(stderr io.Writer) int {
	o := f.opts
	if o.Concurrency < 1 || o.Connections < 1 || o.Duration <= 0 || o.Users < 1 || o.AttackShare < 0 || o.AttackShare > 1 || f.batch < 1 || f.batch > 1000 {
		fmt.Fprintln(stderr, "pushback bench: concurrency, connections, duration, users must be positive; attack-share in 0..1; batch in 1..1000")
		return 2
	}
	if o.Rate < 0 || o.Rate > bench.MaxRate || (o.Rate > 0 && f.mode != "decide") {
		fmt.Fprintf(stderr, "pushback bench: --rate must be positive and at most %d, and works with --mode=decide\n", bench.MaxRate)
		return 2
	}
	switch f.mode {
	case "decide", "ingest", "users":
	default:
		fmt.Fprintf(stderr, "pushback bench: --mode=%q is not decide, ingest or users\n", f.mode)
		return 2
	}
	if f.redisAddr != "" && (f.spawn == "" || !rpc.Loopback(f.redisAddr)) {
		fmt.Fprintln(stderr, "pushback bench: --redis-addr needs --spawn and a loopback address")
		return 2
	}
	if f.spawn == "" && !rpc.Loopback(f.addr) {
		// The load is real: attack traffic writes users, denials and SOC
		// alerts into whatever mesh answers.
		fmt.Fprintf(stderr, "pushback bench: --addr=%s is not a loopback address; bench loads a mesh on this machine only\n", f.addr)
		return 2
	}
	return 0
}

// benchTarget is the mesh a run loads: the address of the service the mode
// calls, and the meshes it started, if any.
type benchTarget struct {
	addr, topology, scoringDir string
	// scoringAddr is the spawned scoring service's address.
	scoringAddr string
	// dataDirs are the spawned meshes' data directories.
	dataDirs []string
	stop     func()
}

// benchTargetOf starts the meshes --spawn asks for, or names the running
// one --addr gives; code is the exit code when that fails.
func benchTargetOf(ctx context.Context, f benchFlags, stderr io.Writer) (t benchTarget, code int) {
	t = benchTarget{addr: f.addr, topology: "external " + f.addr, stop: func() {}}
	if f.mode == "users" && f.spawn != "one" {
		fmt.Fprintln(stderr, "pushback bench: --mode=users measures this process, so it needs --spawn=one")
		return t, 2
	}
	if f.spawn == "" {
		return t, 0
	}
	addrs, dirs, stop, err := spawnMesh(ctx, f.spawn, f.keepOutcomes, f.redisAddr, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pushback bench: %v\n", err)
		return t, 1
	}
	t.addr, t.topology, t.stop, t.scoringAddr = addrs[mesh.Decision], f.spawn, stop, addrs[mesh.Scoring]
	for _, d := range dirs {
		t.dataDirs = append(t.dataDirs, d)
	}
	switch f.mode {
	case "ingest":
		t.addr = addrs[mesh.Intake]
	case "users":
		t.addr, t.scoringDir = addrs[mesh.Scoring], dirs[mesh.Scoring]
	}
	return t, 0
}

// dialBench starts the echo baseline and opens the connections to it and
// to the mesh at addr; code is the exit code when that fails.
func dialBench(ctx context.Context, f benchFlags, addr string, stderr io.Writer) (meshConns, echoConns []*grpc.ClientConn, code int) {
	echoAddr, err := bench.StartEcho(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "pushback bench: %v\n", err)
		return nil, nil, 1
	}
	creds, tlsCreds, err := f.client.resolve()
	if err != nil {
		fmt.Fprintf(stderr, "pushback bench: %v\n", err)
		return nil, nil, 2
	}
	dialOpts := creds.DialOptions()
	if tlsCreds != nil {
		dialOpts = append(dialOpts, grpc.WithTransportCredentials(tlsCreds))
	}
	if meshConns, err = bench.Dial(addr, f.opts.Connections, dialOpts...); err != nil {
		fmt.Fprintf(stderr, "pushback bench: %v\n", err)
		return nil, nil, 1
	}
	if echoConns, err = bench.Dial(echoAddr, f.opts.Connections); err != nil {
		fmt.Fprintf(stderr, "pushback bench: %v\n", err)
		return nil, nil, 1
	}
	return meshConns, echoConns, 0
}

// historyConns returns the connections Decide is measured on, followed by
// those to the scoring service at addr, where the benign users' history
// goes (see measureDecide).
func historyConns(addr string, decide []*grpc.ClientConn, f benchFlags, stderr io.Writer) ([]*grpc.ClientConn, int) {
	if !f.history {
		return decide, 0
	}
	sc, err := bench.Dial(addr, f.opts.Connections)
	if err != nil {
		fmt.Fprintf(stderr, "pushback bench: %v\n", err)
		return nil, 1
	}
	return append(decide, sc...), 0
}

// startCPUProfile starts a CPU profile to path, when one is asked for, and
// returns what stops it. It covers only the mesh measurement, not the echo
// baseline.
func startCPUProfile(path string, stderr io.Writer) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(stderr, "pushback bench: %v\n", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(stderr, "pushback bench: %v\n", err)
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// writeMemProfile writes the allocation profile to path.
func writeMemProfile(path string, stderr io.Writer) {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(stderr, "pushback bench: %v\n", err)
		return
	}
	defer f.Close()
	_ = pprof.Lookup("allocs").WriteTo(f, 0)
}

// measureBench runs the measurement of f.mode into rep; code is the exit
// code when it fails.
func measureBench(ctx context.Context, f benchFlags, rep *benchReport, scoringDir string, meshConns, echoConns []*grpc.ClientConn, stderr io.Writer) (code int) {
	switch f.mode {
	case "decide":
		return measureDecide(ctx, f, rep, scoringDir, meshConns, echoConns, stderr)
	case "ingest":
		return measureIngest(ctx, f, rep, meshConns, stderr)
	case "users":
		return measureUsers(ctx, f, rep, scoringDir, meshConns, stderr)
	default:
		fmt.Fprintf(stderr, "pushback bench: --mode=%q is not decide, ingest or users\n", f.mode)
		return 2
	}
}

// measureDecide measures Decide beside the echo baseline, after giving the
// benign users a history when the mesh runs here.
func measureDecide(ctx context.Context, f benchFlags, rep *benchReport, scoringDir string, meshConns, echoConns []*grpc.ClientConn, stderr io.Writer) int {
	o := f.opts
	if f.history && f.spawn != "" {
		history := meshConns
		if f.spawn == "split" {
			// The scoring mesh's connections follow Decide's (historyConns).
			meshConns, history = meshConns[:o.Connections], meshConns[o.Connections:]
		}
		fmt.Fprintf(stderr, "giving %d users a history...\n", o.Users)
		if _, err := bench.Users(ctx, history, o.Users, o.Concurrency, scoringDir, nil); err != nil {
			fmt.Fprintf(stderr, "pushback bench: history: %v\n", err)
			return 1
		}
	}
	eo := o
	if o.Interval > 0 {
		// A long run is about Decide over time; the ceiling needs no more
		// than half a minute.
		eo.Interval, eo.Duration = 0, min(o.Duration, 30*time.Second)
	}
	fmt.Fprintf(stderr, "measuring echo for %s...\n", eo.Duration)
	echo := bench.Echo(ctx, echoConns, eo)
	fmt.Fprintf(stderr, "measuring Decide for %s...\n", o.Duration)
	stopProfile := startCPUProfile(f.cpuProfile, stderr)
	dec := bench.Decide(ctx, meshConns, o)
	stopProfile()
	rep.Results = []bench.Result{echo, dec}
	if echo.RPS > 0 {
		rep.Ratio = dec.RPS / echo.RPS
	}
	return 0
}

// measureIngest measures IngestStream beside raw badger batch writes.
func measureIngest(ctx context.Context, f benchFlags, rep *benchReport, meshConns []*grpc.ClientConn, stderr io.Writer) int {
	o := f.opts
	if f.history && f.spawn == "one" {
		// The events are the benign users' pushes, from their own clients:
		// a log of users the mesh knows, not a million first sign-ins.
		fmt.Fprintf(stderr, "giving %d users a history...\n", o.Users)
		if _, err := bench.Users(ctx, meshConns, o.Users, o.Concurrency, "", nil); err != nil {
			fmt.Fprintf(stderr, "pushback bench: history: %v\n", err)
			return 1
		}
	}
	dir, err := os.MkdirTemp("", "pushback-bench-badger-")
	if err != nil {
		fmt.Fprintf(stderr, "pushback bench: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(stderr, "measuring raw badger batch writes for %s...\n", o.Duration)
	raw, err := bench.RawBadger(ctx, dir, o, f.batch)
	if err != nil {
		fmt.Fprintf(stderr, "pushback bench: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "measuring IngestStream for %s...\n", o.Duration)
	stopProfile := startCPUProfile(f.cpuProfile, stderr)
	in := bench.IngestStream(ctx, meshConns, o, f.batch)
	stopProfile()
	rep.Ingest = []bench.IngestResult{raw, in}
	if raw.EventsPerSec > 0 {
		rep.Ratio = in.EventsPerSec / raw.EventsPerSec
	}
	return 0
}

// measureUsers gives the benign users a history and measures what their
// state costs this process.
func measureUsers(ctx context.Context, f benchFlags, rep *benchReport, scoringDir string, meshConns []*grpc.ClientConn, stderr io.Writer) int {
	o := f.opts
	fmt.Fprintf(stderr, "giving %d users a history...\n", o.Users)
	last := time.Now()
	res, err := bench.Users(ctx, meshConns, o.Users, o.Concurrency, scoringDir, func(done int) {
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			fmt.Fprintf(stderr, "  %d/%d users\n", done, o.Users)
		}
	})
	if err != nil {
		fmt.Fprintf(stderr, "pushback bench: %v\n", err)
		return 1
	}
	rep.Users = &res
	return 0
}

// reportBench prints rep and returns the exit code: 1 when more than one
// call in a hundred failed, for then the numbers do not measure the mesh.
func reportBench(stdout, stderr io.Writer, rep benchReport, f benchFlags) int {
	if f.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		printBench(stdout, rep)
	}
	if failed, calls := rep.failures(f.batch); failed > 0 && failed*100 > calls {
		fmt.Fprintf(stderr, "pushback bench: %d of %d calls failed; the numbers do not measure the mesh\n", failed, calls)
		return 1
	}
	return 0
}

// failures counts the failed and all calls of the mesh target (for ingest,
// batches of batch events).
func (r benchReport) failures(batch int) (failed, calls int64) {
	for _, res := range r.Results {
		if res.Target != "echo" {
			failed, calls = failed+res.Errors, calls+res.Calls+res.Errors
		}
	}
	for _, in := range r.Ingest {
		if in.Target != "raw-badger" {
			failed, calls = failed+in.Errors, calls+in.Events/int64(batch)+in.Errors
		}
	}
	return failed, calls
}

func printBench(w io.Writer, rep benchReport) {
	if u := rep.Users; u != nil {
		fmt.Fprintf(w, "machine: %d CPUs, %s, %s\n\n", rep.Machine.CPUs, rep.Machine.OS, rep.Machine.GoVersion)
		fmt.Fprintf(w, "users with state:      %d (loaded in %s)\n", u.Users, u.Elapsed.Round(time.Second))
		fmt.Fprintf(w, "RSS before / after:    %.1f MiB / %.1f MiB (peak %.1f MiB)\n", mib(u.BaselineRSS), mib(u.RSS), mib(u.PeakRSS))
		fmt.Fprintf(w, "Go heap in use:        %.1f MiB\n", float64(u.GoHeap)/(1<<20))
		fmt.Fprintf(w, "store on disk:         %.1f MiB\n", mib(u.DiskBytes))
		fmt.Fprintf(w, "RSS per user:          %.0f bytes (marginal %.0f bytes)\n", u.BytesPerUser, u.MarginalBytes)
		return
	}
	fmt.Fprintf(w, "machine: %d CPUs, %s, %s; topology: %s; concurrency %d over %d connections, %s per target\n\n",
		rep.Machine.CPUs, rep.Machine.OS, rep.Machine.GoVersion, rep.Topology, rep.Options.Concurrency, rep.Options.Connections, rep.Options.Duration)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	if rep.Mode == "decide" {
		fmt.Fprintln(tw, "target\tcalls\terrors\tRPS\tp50\tp90\tp99\tp99.9\t")
		for _, r := range rep.Results {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t\n", r.Target, r.Calls, r.Errors, r.RPS, ms(r.P50), ms(r.P90), ms(r.P99), ms(r.P999))
		}
		tw.Flush()
		if rep.Options.Rate > 0 {
			// Both targets answer the same schedule: the latencies compare.
			fmt.Fprintf(w, "\nopen loop at %.0f calls/s (at most %d in flight); latency counts from when a call was handed out, its wait for a free worker included\n", rep.Options.Rate, rep.Options.Concurrency)
			for _, r := range rep.Results {
				if r.Missed > 0 {
					fmt.Fprintf(w, "%s: %d calls missed their start (the backlog was full): the target cannot keep this rate\n", r.Target, r.Missed)
				}
			}
		} else {
			fmt.Fprintf(w, "\nDecide RPS / echo RPS = %.2f\n", rep.Ratio)
		}
		if len(rep.Results) == 2 && len(rep.Results[1].Outcomes) > 0 {
			fmt.Fprintf(w, "outcomes: %v\n", rep.Results[1].Outcomes)
		}
		for _, r := range rep.Results {
			if len(r.ErrorCodes) > 0 {
				fmt.Fprintf(w, "%s errors by code: %v\n", r.Target, r.ErrorCodes)
			}
			if r.CPUPerCall > 0 {
				fmt.Fprintf(w, "%s CPU per call (this process): %.0fµs\n", r.Target, float64(r.CPUPerCall)/float64(time.Microsecond))
			}
		}
		printIntervals(w, rep.Results)
		return
	}
	fmt.Fprintln(tw, "target\tevents\terrors\tevents/s\t")
	for _, r := range rep.Ingest {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t\n", r.Target, r.Events, r.Errors, r.EventsPerSec)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nIngestStream events/s / raw badger events/s = %.2f\n", rep.Ratio)
}

// printIntervals prints the intervals of a long run.
func printIntervals(w io.Writer, results []bench.Result) {
	for _, r := range results {
		if len(r.Intervals) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s by interval:\n", r.Target)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "until\tcalls\tRPS\tp99\tRSS\tof it anon\tof it files\tGo heap\tdisk\t")
		for _, iv := range r.Intervals {
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%.0f MiB\t%.0f MiB\t%.0f MiB\t%.0f MiB\t%.0f MiB\t\n", iv.End, iv.Calls, iv.RPS, ms(iv.P99),
				mib(iv.RSS), mib(iv.RSSAnon), mib(iv.RSSFile), mib(iv.GoHeap), mib(iv.Disk))
		}
		tw.Flush()
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// spawnMesh starts the mesh in this process on loopback ports and temporary
// data directories; it returns the gRPC address of each service.
func spawnMesh(ctx context.Context, topology string, keepOutcomes bool, redisAddr string, stderr io.Writer) (addrs, dataDirs map[string]string, stop func(), err error) {
	var services [][]string
	switch topology {
	case "one":
		services = [][]string{mesh.AllServices}
	case "split":
		services = [][]string{{mesh.Scoring}, {mesh.Notify}, {mesh.Decision}, {mesh.Intake}}
	default:
		return nil, nil, nil, fmt.Errorf("--spawn=%q is not one or split", topology)
	}
	ctx, cancel := context.WithCancel(ctx)
	var dirs []string
	var done []chan error
	addrs, dataDirs = map[string]string{}, map[string]string{}
	stop = func() {
		cancel()
		for _, d := range done {
			<-d
		}
		for _, d := range dirs {
			_ = os.RemoveAll(d)
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for _, svcs := range services {
		dir, err := os.MkdirTemp("", "pushback-bench-")
		if err != nil {
			stop()
			return nil, nil, nil, err
		}
		dirs = append(dirs, dir)
		cfg := mesh.Default()
		cfg.Services, cfg.DataDir, cfg.GRPCAddr, cfg.HTTPAddr = svcs, dir, "127.0.0.1:0", ""
		cfg.ScoringAddr, cfg.NotifyAddr = addrs[mesh.Scoring], addrs[mesh.Notify]
		cfg.TelemetryKeepOutcomes = keepOutcomes
		if redisAddr != "" {
			cfg.StoreKind, cfg.RedisAddrs = "redis", []string{redisAddr}
		}
		ready := make(chan string, 1)
		d := make(chan error, 1)
		done = append(done, d)
		go func() {
			d <- mesh.Run(ctx, cfg, mesh.Options{Logger: log, Ready: func(g, _ string) { ready <- g }})
		}()
		select {
		case a := <-ready:
			for _, s := range svcs {
				addrs[s], dataDirs[s] = a, dir
			}
		case err := <-d:
			done = done[:len(done)-1]
			stop()
			return nil, nil, nil, fmt.Errorf("start %v: %v", svcs, err)
		}
	}
	return addrs, dataDirs, stop, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
