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

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchUsage); fs.PrintDefaults() }
	addr := fs.String("addr", "127.0.0.1:50051", "gRPC address of a running mesh (ignored with --spawn)")
	spawn := fs.String("spawn", "", "start the mesh here: one (all services in one process) or split (one mesh per service over loopback)")
	mode := fs.String("mode", "decide", "decide, ingest or users")
	// A mesh with credentials takes Decide from hooks and IngestStream from
	// log shippers (the meshes --spawn starts have none, on loopback).
	cf := addClientFlags(fs, getenv, "a hook's (--mode=decide) or the intake token (--mode=ingest) of a mesh that requires credentials", true)
	o := bench.Options{}
	fs.IntVar(&o.Concurrency, "concurrency", 64, "calls in flight")
	fs.IntVar(&o.Connections, "connections", 4, "client connections")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "measured time per target")
	fs.DurationVar(&o.Warmup, "warmup", 2*time.Second, "unmeasured time before each target")
	fs.IntVar(&o.Users, "users", 1000000, "distinct benign users (each pushes rarely, as real users do)")
	fs.Float64Var(&o.AttackShare, "attack-share", 0.05, "share of calls that push-bomb a few users")
	batch := fs.Int("batch", 100, "events per IngestStream message (ingest mode)")
	asJSON := fs.Bool("json", false, "print one JSON report")
	history := fs.Bool("history", true, "with --spawn=one and --mode=decide, give the benign users a history before measuring, as real users have (without it every benign user is new, and their pushes count toward their network's spray)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (with --spawn: client and mesh) to FILE")
	memProfile := fs.String("memprofile", "", "write an allocation profile to FILE at the end")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.Concurrency < 1 || o.Connections < 1 || o.Duration <= 0 || o.Users < 1 || o.AttackShare < 0 || o.AttackShare > 1 || *batch < 1 || *batch > 1000 {
		fmt.Fprintln(stderr, "pushback bench: concurrency, connections, duration, users must be positive; attack-share in 0..1; batch in 1..1000")
		return 2
	}
	switch *mode {
	case "decide", "ingest", "users":
	default:
		fmt.Fprintf(stderr, "pushback bench: --mode=%q is not decide, ingest or users\n", *mode)
		return 2
	}
	if *spawn == "" && !rpc.Loopback(*addr) {
		// The load is real: attack traffic writes users, denials and SOC
		// alerts into whatever mesh answers.
		fmt.Fprintf(stderr, "pushback bench: --addr=%s is not a loopback address; bench loads a mesh on this machine only\n", *addr)
		return 2
	}
	o.Seed = uint64(time.Now().UnixNano())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	topology := "external " + *addr
	scoringDir := ""
	if *mode == "users" && *spawn != "one" {
		fmt.Fprintln(stderr, "pushback bench: --mode=users measures this process, so it needs --spawn=one")
		return 2
	}
	if *spawn != "" {
		addrs, dirs, stop, err := spawnMesh(ctx, *spawn, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "pushback bench: %v\n", err)
			return 1
		}
		defer stop()
		*addr, topology = addrs[mesh.Decision], *spawn
		switch *mode {
		case "ingest":
			*addr = addrs[mesh.Intake]
		case "users":
			*addr, scoringDir = addrs[mesh.Scoring], dirs[mesh.Scoring]
		}
	}
	echoAddr, err := bench.StartEcho(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "pushback bench: %v\n", err)
		return 1
	}
	creds, tlsCreds, err := cf.resolve()
	if err != nil {
		fmt.Fprintf(stderr, "pushback bench: %v\n", err)
		return 2
	}
	dialOpts := creds.DialOptions()
	if tlsCreds != nil {
		dialOpts = append(dialOpts, grpc.WithTransportCredentials(tlsCreds))
	}
	meshConns, err := bench.Dial(*addr, o.Connections, dialOpts...)
	if err != nil {
		fmt.Fprintf(stderr, "pushback bench: %v\n", err)
		return 1
	}
	echoConns, err := bench.Dial(echoAddr, o.Connections)
	if err != nil {
		fmt.Fprintf(stderr, "pushback bench: %v\n", err)
		return 1
	}
	// The CPU profile covers only the mesh measurement, not the echo baseline.
	startProfile := func() func() {
		if *cpuProfile == "" {
			return func() {}
		}
		f, err := os.Create(*cpuProfile)
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
	if *memProfile != "" {
		defer func() {
			f, err := os.Create(*memProfile)
			if err != nil {
				fmt.Fprintf(stderr, "pushback bench: %v\n", err)
				return
			}
			defer f.Close()
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
		}()
	}
	rep := benchReport{Machine: bench.ThisMachine(), Mode: *mode, Topology: topology, Options: o}
	switch *mode {
	case "decide":
		if *history && *spawn == "one" {
			fmt.Fprintf(stderr, "giving %d users a history...\n", o.Users)
			if _, err := bench.Users(ctx, meshConns, o.Users, o.Concurrency, scoringDir, nil); err != nil {
				fmt.Fprintf(stderr, "pushback bench: history: %v\n", err)
				return 1
			}
		}
		fmt.Fprintf(stderr, "measuring echo for %s...\n", o.Duration)
		echo := bench.Echo(ctx, echoConns, o)
		fmt.Fprintf(stderr, "measuring Decide for %s...\n", o.Duration)
		stopProfile := startProfile()
		dec := bench.Decide(ctx, meshConns, o)
		stopProfile()
		rep.Results = []bench.Result{echo, dec}
		if echo.RPS > 0 {
			rep.Ratio = dec.RPS / echo.RPS
		}
	case "ingest":
		dir, err := os.MkdirTemp("", "pushback-bench-badger-")
		if err != nil {
			fmt.Fprintf(stderr, "pushback bench: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		fmt.Fprintf(stderr, "measuring raw badger batch writes for %s...\n", o.Duration)
		raw, err := bench.RawBadger(ctx, dir, o, *batch)
		if err != nil {
			fmt.Fprintf(stderr, "pushback bench: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "measuring IngestStream for %s...\n", o.Duration)
		stopProfile := startProfile()
		in := bench.IngestStream(ctx, meshConns, o, *batch)
		stopProfile()
		rep.Ingest = []bench.IngestResult{raw, in}
		if raw.EventsPerSec > 0 {
			rep.Ratio = in.EventsPerSec / raw.EventsPerSec
		}
	case "users":
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
	default:
		fmt.Fprintf(stderr, "pushback bench: --mode=%q is not decide, ingest or users\n", *mode)
		return 2
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		printBench(stdout, rep)
	}
	if failed, calls := rep.failures(*batch); failed > 0 && failed*100 > calls {
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
		fmt.Fprintf(w, "\nDecide RPS / echo RPS = %.2f\n", rep.Ratio)
		if len(rep.Results) == 2 && len(rep.Results[1].Outcomes) > 0 {
			fmt.Fprintf(w, "outcomes: %v\n", rep.Results[1].Outcomes)
		}
		for _, r := range rep.Results {
			if len(r.ErrorCodes) > 0 {
				fmt.Fprintf(w, "%s errors by code: %v\n", r.Target, r.ErrorCodes)
			}
		}
		return
	}
	fmt.Fprintln(tw, "target\tevents\terrors\tevents/s\t")
	for _, r := range rep.Ingest {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t\n", r.Target, r.Events, r.Errors, r.EventsPerSec)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nIngestStream events/s / raw badger events/s = %.2f\n", rep.Ratio)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// spawnMesh starts the mesh in this process on loopback ports and temporary
// data directories; it returns the gRPC address of each service.
func spawnMesh(ctx context.Context, topology string, stderr io.Writer) (addrs, dataDirs map[string]string, stop func(), err error) {
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
