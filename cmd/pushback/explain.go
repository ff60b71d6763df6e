package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const explainUsage = `Usage: pushback explain [flags] DECISION_ID

Reads a stored decision from a running mesh and explains it: the outcome,
every matched rule with its reason, every signal with its evidence, the
cooldown, the policy version, the failure mode and the trace id.

Flags:
`

func explainCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, explainUsage); fs.PrintDefaults() }
	addr := fs.String("addr", envOr(getenv, "PUSHBACK_ADDR", "127.0.0.1:50051"), "gRPC address of the decision service (env PUSHBACK_ADDR)")
	// Reading a decision is an operator's act (docs/security.md).
	cf := addClientFlags(fs, getenv, "an operator token (--operator-tokens of the mesh)", false)
	timeout := fs.Duration("timeout", 5*time.Second, "deadline of the call")
	asJSON := fs.Bool("json", false, "print the stored record as JSON instead")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	creds, tlsCreds, err := cf.resolve()
	if err != nil {
		fmt.Fprintf(stderr, "pushback explain: %v\n", err)
		return 2
	}
	opts := rpc.ClientOptions{Unary: []grpc.UnaryClientInterceptor{creds.UnaryClientInterceptor()}, Creds: tlsCreds}
	conn, err := rpc.Dial(*addr, opts)
	if err != nil {
		fmt.Fprintf(stderr, "pushback explain: %v\n", err)
		return 1
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	resp, err := decisionv1.NewDecisionServiceClient(conn).GetDecision(ctx, &decisionv1.GetDecisionRequest{DecisionId: fs.Arg(0)})
	if err != nil {
		st := status.Convert(err)
		fmt.Fprintf(stderr, "pushback explain: %s: %s\n", st.Code(), st.Message())
		return 1
	}
	if *asJSON {
		b, err := protojson.MarshalOptions{Multiline: true}.Marshal(resp.GetDecision())
		if err != nil {
			fmt.Fprintf(stderr, "pushback explain: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	writeExplanation(stdout, resp.GetDecision())
	return 0
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}

// writeExplanation writes a human explanation of a stored decision.
func writeExplanation(w io.Writer, rec *decisionv1.DecisionRecord) {
	req, resp := rec.GetRequest(), rec.GetResponse()
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }

	p("Decision %s: %s", rec.GetDecisionId(), outcomeText(resp.GetOutcome()))
	p("  %s", outcomeMeaning(resp.GetOutcome()))
	if c := resp.GetNumberChallenge(); c != "" {
		p("  number challenge shown on the login screen: %s", c)
	}
	p("")
	p("Request")
	user := req.GetUserId()
	if raw := rec.GetRawUserId(); raw != "" {
		user += fmt.Sprintf(" (sent as %q)", raw)
	}
	if req.GetTenant() != "" {
		user += " (tenant " + req.GetTenant() + ")"
	}
	p("  user         %s", user)
	if len(rec.GetGroups()) > 0 {
		p("  groups       %s", strings.Join(rec.GetGroups(), ", "))
	}
	app := orNone(req.GetAppId())
	if rec.GetTier() != "" {
		app += " (tier " + rec.GetTier() + ")"
	}
	p("  application  %s", app)
	p("  factor       %s", strings.TrimPrefix(req.GetFactor().String(), "FACTOR_"))
	if req.GetAttemptId() != "" {
		p("  attempt      %s", req.GetAttemptId())
	}
	if req.GetSessionId() != "" {
		p("  session      %s", req.GetSessionId())
	}
	p("  attempt time %s", ts(req.GetTime()))
	p("  decided at   %s", ts(rec.GetDecidedAt()))
	if c := clientText(req.GetClient()); c != "" {
		p("  client       %s", c)
	}
	p("")

	p("Why")
	rules, reasons := resp.GetMatchedRules(), resp.GetReasons()
	switch {
	case len(rules) == 0 && len(reasons) == 0:
		p("  no rule matched: the policy allows the push")
	default:
		for i, r := range rules {
			reason := ""
			if len(rules) == len(reasons) {
				reason = ": " + reasons[i]
			}
			p("  - rule %s%s", r, reason)
		}
		if len(rules) != len(reasons) {
			for _, r := range reasons {
				p("  - %s", r)
			}
		}
	}
	p("")

	risk := resp.GetRisk()
	p("Risk")
	if rec.GetScoringError() != "" {
		p("  not assessed: scoring did not answer in time (%s)", rec.GetScoringError())
	} else {
		p("  score %d of 100", risk.GetScore())
		if len(risk.GetSignals()) == 0 {
			p("  no signal fired")
		}
		for _, s := range risk.GetSignals() {
			p("  - %s (weight %d, confidence %.2f)", s.GetCode(), s.GetWeight(), s.GetConfidence())
			if s.GetSummary() != "" {
				p("      %s", s.GetSummary())
			}
			for _, line := range evidence(s) {
				p("      %s", line)
			}
		}
		if len(risk.GetWindows()) > 0 {
			var parts []string
			for _, wc := range risk.GetWindows() {
				parts = append(parts, fmt.Sprintf("%s: %d", dur(wc.GetWindow()), wc.GetPushes()))
			}
			p("  pushes by window  %s", strings.Join(parts, ", "))
		}
		if t := risk.GetLastPhishingResistantTime(); t != nil {
			p("  last phishing-resistant sign-in  %s", ts(t))
		}
	}
	p("")

	p("Cooldown")
	switch {
	case resp.GetCooldown().AsDuration() > 0:
		until := req.GetTime().AsTime().Add(resp.GetCooldown().AsDuration())
		p("  further pushes for this user are denied for %s (until %s);", resp.GetCooldown().AsDuration(), until.UTC().Format(time.RFC3339))
		p("  a phishing-resistant sign-in or an operator (ClearCooldown) ends it")
	case rec.GetCooldownCleared():
		p("  an earlier cooldown was cleared by a phishing-resistant sign-in")
	default:
		p("  none")
	}
	p("")

	p("Policy")
	p("  version       %s", orNone(resp.GetPolicyVersion()))
	if resp.GetFailureMode() != decisionv1.FailureMode_FAILURE_MODE_UNSPECIFIED {
		p("  failure mode  %s: scoring did not answer within the budget, so the tier's failure mode decided", failureText(resp.GetFailureMode()))
	} else {
		p("  failure mode  not used (scoring answered in time)")
	}
	if rec.GetShadowPolicyVersion() != "" {
		verdict := "agrees"
		if rec.GetShadowDiffers() {
			verdict = "DIFFERS"
		}
		p("  shadow policy %s would have answered %s (%s)", rec.GetShadowPolicyVersion(), outcomeText(rec.GetShadowOutcome()), verdict)
		for i, r := range rec.GetShadowMatchedRules() {
			reason := ""
			if i < len(rec.GetShadowReasons()) && len(rec.GetShadowReasons()) == len(rec.GetShadowMatchedRules()) {
				reason = ": " + rec.GetShadowReasons()[i]
			}
			p("    - rule %s%s", r, reason)
		}
	}
	p("")
	p("Trace %s", orNone(resp.GetTraceId()))
}

func outcomeText(o decisionv1.Outcome) string {
	return strings.TrimPrefix(o.String(), "OUTCOME_")
}

func outcomeMeaning(o decisionv1.Outcome) string {
	switch o {
	case decisionv1.Outcome_OUTCOME_ALLOW:
		return "the push may be sent as requested"
	case decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH:
		return "the push may be sent only with number matching"
	case decisionv1.Outcome_OUTCOME_REQUIRE_PHISHING_RESISTANT:
		return "no push: the user must use a phishing-resistant factor (WebAuthn, smart card)"
	case decisionv1.Outcome_OUTCOME_DENY:
		return "no push is sent"
	}
	return "unknown outcome"
}

func failureText(fm decisionv1.FailureMode) string {
	switch fm {
	case decisionv1.FailureMode_FAILURE_MODE_OPEN:
		return "fail open (allow)"
	case decisionv1.FailureMode_FAILURE_MODE_CLOSED:
		return "fail closed (deny)"
	case decisionv1.FailureMode_FAILURE_MODE_NUMBER_MATCH:
		return "downgrade to number matching"
	}
	return fm.String()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func ts(t *timestamppb.Timestamp) string {
	if t == nil {
		return "(unknown)"
	}
	return t.AsTime().UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

func dur(d *durationpb.Duration) string {
	v := d.AsDuration()
	switch {
	case v > 0 && v%time.Hour == 0:
		return fmt.Sprintf("%dh", v/time.Hour)
	case v > 0 && v%time.Minute == 0:
		return fmt.Sprintf("%dm", v/time.Minute)
	}
	return v.String()
}

func place(g *eventv1.Geo) string {
	var parts []string
	for _, s := range []string{g.GetCity(), g.GetRegion(), g.GetCountry()} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ", ")
}

func clientText(c *eventv1.Client) string {
	if c == nil {
		return ""
	}
	var parts []string
	if c.GetIp() != "" {
		parts = append(parts, c.GetIp())
	}
	if pl := place(c.GetGeo()); pl != "" {
		parts = append(parts, pl)
	}
	if c.GetAsn() != 0 {
		parts = append(parts, fmt.Sprintf("AS%d", c.GetAsn()))
	}
	if c.GetDeviceId() != "" {
		parts = append(parts, "device "+c.GetDeviceId())
	}
	return strings.Join(parts, " · ")
}

func location(l *scoringv1.Location) string {
	s := ts(l.GetTime())
	if pl := place(l.GetGeo()); pl != "" {
		s += " in " + pl
	}
	if l.GetIp() != "" {
		s += " from " + l.GetIp()
	}
	return s
}

// evidence renders a signal's evidence, one line per fact.
func evidence(s *scoringv1.Signal) []string {
	switch ev := s.GetEvidence().(type) {
	case *scoringv1.Signal_Burst:
		b := ev.Burst
		out := []string{fmt.Sprintf("threshold %d pushes in %s", b.GetThreshold(), dur(b.GetWindow()))}
		for _, wc := range b.GetWindows() {
			out = append(out, fmt.Sprintf("%s window: %d pushes (%d attempts, %d sent, %d denied, %d timed out, %d suppressed)",
				dur(wc.GetWindow()), wc.GetPushes(), wc.GetAttempts(), wc.GetSent(), wc.GetDenied(), wc.GetTimedOut(), wc.GetSuppressed()))
		}
		if b.GetContext() != "" {
			line := fmt.Sprintf("context: %s (%d familiar, %d partly familiar, %d unfamiliar pushes)",
				b.GetContext(), b.GetFamiliarPushes(), b.GetPartlyFamiliarPushes(), b.GetUnfamiliarPushes())
			if s.GetCode() == "APPROVAL_AFTER_BURST" && b.GetApproverFamiliar() {
				line += "; approved on a known device where the login was"
			}
			out = append(out, line)
		}
		return out
	case *scoringv1.Signal_Streak:
		st := ev.Streak
		return []string{fmt.Sprintf("%d pushes in a row unanswered or denied since %s (%d denied, %d timed out)",
			st.GetLength(), ts(st.GetSince()), st.GetDenied(), st.GetTimedOut())}
	case *scoringv1.Signal_Fraud:
		return []string{fmt.Sprintf("fraud reported at %s; weighs for %s more", ts(ev.Fraud.GetReportedAt()), ev.Fraud.GetRemaining().AsDuration())}
	case *scoringv1.Signal_Travel:
		tr := ev.Travel
		return []string{
			"previous: " + location(tr.GetPrevious()),
			"current:  " + location(tr.GetCurrent()),
			fmt.Sprintf("%.0f km in %s = %.0f km/h (threshold %.0f km/h)", tr.GetDistanceKm(), tr.GetElapsed().AsDuration(), tr.GetSpeedKmh(), tr.GetThresholdKmh()),
		}
	case *scoringv1.Signal_Novelty:
		return []string{fmt.Sprintf("new value %q; %d known before", ev.Novelty.GetValue(), ev.Novelty.GetKnown())}
	case *scoringv1.Signal_Spray:
		sp := ev.Spray
		src := sp.GetSourceIp()
		if src == "" {
			src = fmt.Sprintf("AS%d", sp.GetAsn())
		}
		return []string{fmt.Sprintf("%s pushed to %d users in %s (threshold %d)", src, sp.GetDistinctUsers(), dur(sp.GetWindow()), sp.GetThreshold())}
	case *scoringv1.Signal_Anonymizer:
		a := ev.Anonymizer
		return []string{fmt.Sprintf("%s network AS%d %s", a.GetKind(), a.GetAsn(), a.GetAsOrg())}
	}
	return nil
}
