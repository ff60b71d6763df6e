package main

import (
	"fmt"
	"io"
	"os"

	"github.com/pushbackhq/pushback/services/decision/policy"
)

func policyCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 || args[0] != "check" {
		fmt.Fprintln(stderr, "Usage: pushback policy check FILE")
		return 2
	}
	f, err := os.Open(args[1])
	if err != nil {
		fmt.Fprintf(stderr, "pushback policy check: %v\n", err)
		return 1
	}
	defer f.Close()
	p, err := policy.Parse(f)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", args[1], err)
		return 1
	}
	dry := ""
	if p.Respond.DryRun {
		dry = ", dry run"
	}
	fmt.Fprintf(stdout, "%s: ok (version %s, %d rules, %d tiers, %d response rules%s)\n", args[1], p.Version, len(p.Rules), len(p.Tiers), len(p.Respond.Rules), dry)
	return 0
}
