package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pushbackhq/pushback/pkg/settings"
	"github.com/pushbackhq/pushback/pkg/userid"
	"github.com/pushbackhq/pushback/services/decision"
	"github.com/pushbackhq/pushback/services/intake/formats"
	"github.com/pushbackhq/pushback/services/intake/replay"
	"github.com/pushbackhq/pushback/services/scoring/engine"
)

const replayUsage = `Usage: pushback replay --format=okta|entra|duo|auth0|pingid|ocsf|native [flags] FILE...

Runs recorded IdP events through scoring and the decision policy offline, in
event-time order with a simulated clock, and reports per user what fired, when,
and what the policy would have decided. "-" reads standard input.

Flags:
`

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func replayCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, replayUsage); fs.PrintDefaults() }
	format := fs.String("format", "", "input format: okta, entra, duo, auth0, pingid, ocsf or native")
	policyFile := fs.String("policy", "", "candidate policy to backtest (the built-in default when empty)")
	asJSON := fs.Bool("json", false, "one JSON object per finding (and the report as a last object)")
	report := fs.Bool("report", false, "print the posture summary at the end")
	tenant := fs.String("tenant", "", "tenant set on events that do not name one")
	progress := fs.Bool("progress", isTerminal(stderr), "progress bar on stderr (default: when stderr is a terminal)")
	// The user id rule is serve's own setting, so that a backtest counts
	// users as the mesh does.
	userIDs := userid.DefaultConfig()
	for _, st := range userIDs.Settings() {
		fs.Var(settingFlag{st}, st.Name, st.Usage)
	}
	// Flags may follow the files.
	var files []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if err == flag.ErrHelp {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		files, rest = append(files, fs.Arg(0)), fs.Args()[1:]
	}
	f, err := formats.ParseFormat(*format)
	if err != nil || len(files) == 0 {
		if err != nil && *format != "" {
			fmt.Fprintf(stderr, "pushback replay: %v\n", err)
		}
		fs.Usage()
		return 2
	}
	rules, err := userIDs.Rules()
	if err != nil {
		fmt.Fprintf(stderr, "pushback replay: %v\n", err)
		return 2
	}
	pol, err := decision.LoadPolicy(*policyFile)
	if err != nil {
		fmt.Fprintf(stderr, "pushback replay: %v\n", err)
		return 1
	}

	var inputs []replay.Input
	var total int64
	for _, name := range files {
		if name == "-" {
			inputs = append(inputs, replay.Input{Name: "stdin", Reader: stdin})
			continue
		}
		fh, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(stderr, "pushback replay: %v\n", err)
			return 1
		}
		defer fh.Close()
		if st, err := fh.Stat(); err == nil {
			total += st.Size()
		}
		inputs = append(inputs, replay.Input{Name: name, Reader: fh})
	}

	bar := &progressBar{w: stderr, on: *progress}
	var done int64
	var current int64
	events, stats, err := replay.Load(f, inputs, formats.Options{Tenant: *tenant, UserIDs: rules}, func(n int64) {
		if n < current { // next input
			done += current
		}
		current = n
		bar.show("reading", done+n, total)
	})
	bar.clear()
	if err != nil {
		fmt.Fprintf(stderr, "pushback replay: %v\n", err)
		return 1
	}
	for _, e := range stats.Errors {
		fmt.Fprintf(stderr, "skipped malformed record: %s\n", e)
	}
	if stats.Invalid > len(stats.Errors) {
		fmt.Fprintf(stderr, "... and %d more malformed records\n", stats.Invalid-len(stats.Errors))
	}

	en := replay.New(replay.Options{Scoring: engine.DefaultConfig(), Policy: pol})
	// Writes to out are checked once, at the final Flush: a bufio.Writer
	// keeps its first error.
	out := bufio.NewWriterSize(stdout, 64<<10)
	enc := json.NewEncoder(out)
	var tw *tabwriter.Writer
	if !*asJSON {
		tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tUSER\tEVENT\tSCORE\tSIGNALS\tOUTCOME\tRULES")
	}
	findings := 0
	for i, e := range events {
		if i%4096 == 0 {
			bar.show("replaying", int64(i), int64(len(events)))
		}
		fd, ok := en.Process(e)
		if !ok {
			continue
		}
		findings++
		if *asJSON {
			_ = enc.Encode(fd)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", fd.Time.UTC().Format(time.RFC3339), userLabel(fd.Tenant, fd.User), fd.Event, fd.Score,
			dash(strings.Join(fd.Signals, ",")), dash(fd.Outcome), dash(strings.Join(fd.Rules, ",")))
	}
	bar.clear()
	if tw != nil {
		_ = tw.Flush()
		fmt.Fprintf(out, "\n%d records, %d events (%d duplicates dropped, %d skipped by type, %d malformed), %d findings; policy %s\n",
			stats.Records, stats.Events, stats.Duplicates, sum(stats.Skipped), stats.Invalid, findings, pol.Version)
	}
	if en.PolicyErrors > 0 {
		fmt.Fprintf(stderr, "%d policy rule evaluations failed (those rules did not match)\n", en.PolicyErrors)
	}
	if *report {
		rep := en.Report()
		if *asJSON {
			_ = enc.Encode(map[string]any{"report": rep, "skipped_types": stats.Skipped})
		} else {
			printReport(out, rep, stats)
		}
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintf(stderr, "pushback replay: writing the output: %v\n", err)
		return 1
	}
	return 0
}

func printReport(w io.Writer, r replay.Report, st replay.LoadStats) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("\nPosture summary (%d events, %d users)\n", r.Events, r.Users)
	p("  pushes sent %d: approved %d, denied %d, unanswered %d; retries within 5m %d; most to one user in 10m %d\n",
		r.Pushes.Sent, r.Pushes.Approved, r.Pushes.Denied, r.Pushes.TimedOut, r.Pushes.Retries, r.Pushes.MaxPer10m)
	p("  approvals after repeated prompts (>= %d pushes in 10m or >= %d denials in a row): %d by %d users\n",
		replay.RepeatedPrompts, replay.RepeatedDenials, r.FatiguedApprovals, len(r.Fatigued))
	for _, u := range r.Fatigued {
		p("    %-40s %d\n", u.User, u.Count)
	}
	p("  push bursts: %d\n", r.Bursts)
	for _, u := range r.BurstsPerUser {
		p("    %-40s %d\n", u.User, u.Count)
	}
	p("  sources pushing to several users: %d listed\n", len(r.SpraySources))
	for _, s := range r.SpraySources {
		p("    %-40s %d users, %d pushes\n", s.IP, s.Users, s.Pushes)
	}
	p("  fraud reports: %d\n", r.Fraud)
	for _, u := range r.FraudReports {
		p("    %-40s %d\n", u.User, u.Count)
	}
	p("  policy on %d pushes: allow %d, number match (downgraded) %d, phishing-resistant %d, deny %d; suppressed %d\n",
		r.Pushes.Sent, r.Policy.Allow, r.Policy.NumberMatch, r.Policy.PhishingResistant, r.Policy.Deny, r.Policy.Suppressed())
	rules := make([]string, 0, len(r.Policy.Rules))
	for k := range r.Policy.Rules {
		rules = append(rules, k)
	}
	sort.Strings(rules)
	for _, k := range rules {
		p("    rule %-35s matched %d\n", k, r.Policy.Rules[k])
	}
	p("  relying on plain push alone (no number matching or phishing-resistant factor seen): %d users, %d apps\n", r.PushAloneUsers, r.PushAloneApps)
	if len(r.PushAloneUserList) > 0 {
		p("    users: %s\n", strings.Join(r.PushAloneUserList, ", "))
	}
	if len(r.PushAloneAppList) > 0 {
		p("    apps:  %s\n", strings.Join(r.PushAloneAppList, ", "))
	}
	if len(st.Skipped) > 0 {
		types := make([]string, 0, len(st.Skipped))
		for k, v := range st.Skipped {
			types = append(types, fmt.Sprintf("%s=%d", k, v))
		}
		sort.Strings(types)
		if len(types) > 10 {
			types = append(types[:10], "...")
		}
		p("  skipped event types: %s\n", strings.Join(types, " "))
	}
}

// settingFlag is a setting as a flag of a subcommand's own flag set.
type settingFlag struct{ st settings.Setting }

func (f settingFlag) String() string {
	if f.st.Get == nil { // the zero value the flag package makes to find defaults
		return ""
	}
	return f.st.Get()
}

func (f settingFlag) Set(v string) error { return f.st.Set(v) }

// progressBar draws one line on a terminal; it is a no-op otherwise.
type progressBar struct {
	w     io.Writer
	on    bool
	drawn bool
	last  time.Time
}

func (b *progressBar) show(phase string, n, total int64) {
	if !b.on || total <= 0 || time.Since(b.last) < 100*time.Millisecond {
		return
	}
	b.last = time.Now()
	frac := min(float64(n)/float64(total), 1)
	const width = 30
	fill := int(frac * width)
	fmt.Fprintf(b.w, "\r%-10s [%s%s] %3.0f%%", phase, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), frac*100)
	b.drawn = true
}

func (b *progressBar) clear() {
	if b.drawn {
		fmt.Fprintf(b.w, "\r%s\r", strings.Repeat(" ", 50))
		b.drawn = false
	}
	b.last = time.Time{}
}

func userLabel(tenant, user string) string {
	if tenant == "" {
		return user
	}
	return tenant + "/" + user
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
