// Command pushback runs the Pushback mesh and its operator tools.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `pushback stops MFA fatigue (push bombing) and impossible-travel logins.

Usage:
  pushback serve [flags]          run the services (all four by default)
  pushback radius [flags]         gate a VPN's RADIUS push MFA: ask Decide before each push
  pushback policy check FILE      validate a decision policy file
  pushback replay --format=F FILE...  backtest scoring and a policy on recorded IdP events
  pushback explain DECISION_ID    explain a stored decision (rules, signals, cooldown, policy, trace)
  pushback incidents list|show|release   incidents from IdP logs and decisions: alerts, response actions and their results
  pushback bench [flags]          measure Decide or ingest throughput against a bare gRPC echo
  pushback certs [flags]          make a development CA and certificates for mutual TLS
  pushback version                show the release, the commit and the Go version
  pushback help                   show this help

Run "pushback serve --help" for the serve flags, "pushback radius --help" for the gate's.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr, getenv)
	case "radius":
		return radiusCmd(ctx, args[1:], stdout, stderr, getenv)
	case "replay":
		return replayCmd(args[1:], os.Stdin, stdout, stderr)
	case "policy":
		return policyCmd(args[1:], stdout, stderr)
	case "explain":
		return explainCmd(ctx, args[1:], stdout, stderr, getenv)
	case "incidents":
		return incidentsCmd(ctx, args[1:], stdout, stderr, getenv)
	case "bench":
		return benchCmd(ctx, args[1:], stdout, stderr, getenv)
	case "certs":
		return certsCmd(args[1:], stdout, stderr)
	case "version", "--version":
		return versionCmd(stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "pushback: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
