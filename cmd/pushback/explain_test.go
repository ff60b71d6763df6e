package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	defaultpolicy "github.com/pushbackhq/pushback/deploy/policy"
	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"github.com/pushbackhq/pushback/services/decision"
	"github.com/pushbackhq/pushback/services/mesh"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// explainToken is an operator's: reading decisions is theirs. hookToken
// asks for decisions.
const (
	explainToken = "explain-test-token-0123456789"
	hookToken    = "explain-test-hook-token-0123"
)

type meshUnderTest struct {
	grpcAddr, httpAddr string
	counters           *decision.Counters
	// dc is a hook's client; ops an operator's.
	dc, ops decisionv1.DecisionServiceClient
}

// startMesh runs the whole mesh in this process with the production wiring
// and authentication on.
func startMesh(t *testing.T, policyFile, shadowFile string) *meshUnderTest {
	t.Helper()
	return startMeshWith(t, policyFile, shadowFile, nil)
}

// startMeshWith is startMesh with a last change to the configuration.
func startMeshWith(t *testing.T, policyFile, shadowFile string, edit func(*mesh.Config)) *meshUnderTest {
	t.Helper()
	cfg := mesh.Default()
	cfg.DataDir = t.TempDir()
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Auth.HookTokens = []string{hookToken}
	cfg.Auth.OperatorTokens = []string{explainToken}
	cfg.Decision.PolicyFile, cfg.Decision.ShadowPolicy = policyFile, shadowFile
	cfg.Decision.PolicyPoll = 10 * time.Millisecond
	// These tests explain decisions, not deadlines: a loaded machine must
	// not turn a burst into failure-mode answers.
	cfg.Decision.Budget = 5 * time.Second
	if edit != nil {
		edit(&cfg)
	}
	counters := &decision.Counters{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- mesh.Run(ctx, cfg, mesh.Options{Getenv: func(string) string { return "" }, DecisionCounters: counters,
			Ready: func(g, h string) { ready <- [2]string{g, h} }})
	}()
	var addrs [2]string
	select {
	case addrs = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("mesh did not start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("mesh stopped with %v", err)
		}
	})
	client := func(token string) decisionv1.DecisionServiceClient {
		conn, err := rpc.Dial(addrs[0], rpc.ClientOptions{Unary: []grpc.UnaryClientInterceptor{auth.Credentials{Token: token}.UnaryClientInterceptor()}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return decisionv1.NewDecisionServiceClient(conn)
	}
	return &meshUnderTest{grpcAddr: addrs[0], httpAddr: addrs[1], counters: counters, dc: client(hookToken), ops: client(explainToken)}
}

func burstReq(user string, i int, at time.Time) *decisionv1.DecideRequest {
	return &decisionv1.DecideRequest{UserId: user, AppId: "vpn", Factor: eventv1.Factor_FACTOR_PUSH, AttemptId: fmt.Sprint("a-", i),
		Time: timestamppb.New(at), Client: &eventv1.Client{Ip: "198.51.100.7", DeviceId: "d1",
			Geo: &eventv1.Geo{Latitude: 40.71, Longitude: -74.0, AccuracyKm: 20, Country: "US", City: "New York"}}}
}

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb, func(string) string { return "" })
	return code, out.String(), errb.String()
}

func TestExplainAgainstARunningMesh(t *testing.T) {
	dir := t.TempDir()
	shadow := filepath.Join(dir, "shadow.yaml")
	if err := os.WriteFile(shadow, []byte("version: candidate\nrules:\n  - name: always-number-match\n    when: \"true\"\n    outcome: REQUIRE_NUMBER_MATCH\n    reason: number matching everywhere\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := startMesh(t, "", shadow)
	base := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	var last *decisionv1.DecideResponse
	for i := range 5 {
		r, err := m.dc.Decide(context.Background(), burstReq("alice", i, base.Add(time.Duration(i)*time.Minute)))
		if err != nil {
			t.Fatal(err)
		}
		last = r
	}
	if last.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY {
		t.Fatalf("5th push: %v", last.GetOutcome())
	}

	code, out, errs := runCmd("explain", "--addr", m.grpcAddr, "--token", explainToken, last.GetDecisionId())
	if code != 0 {
		t.Fatalf("explain exited %d: %s", code, errs)
	}
	for _, want := range []string{
		"Decision " + last.GetDecisionId() + ": DENY",
		"no push is sent",
		"user         alice",
		"application  vpn (tier standard)",
		"rule burst-deny: 5 or more push attempts in 10 minutes look like push bombing",
		"rule burst-number-match: 3 or more push attempts in 5 minutes",
		"PUSH_BURST (weight",
		"10m window: 5 pushes",
		"further pushes for this user are denied for 15m0s",
		"version       default-2026.12",
		"failure mode  not used",
		"shadow policy candidate would have answered REQUIRE_NUMBER_MATCH (DIFFERS)",
		"rule always-number-match: number matching everywhere",
		"Trace " + last.GetTraceId(),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explanation lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`Trace [0-9a-f]{32}`).MatchString(out) {
		t.Errorf("no trace id in:\n%s", out)
	}

	code, out, _ = runCmd("explain", "--addr", m.grpcAddr, "--token", explainToken, "--json", last.GetDecisionId())
	if code != 0 || !regexp.MustCompile(`"shadowDiffers":\s+true`).MatchString(out) {
		t.Fatalf("--json exited %d:\n%s", code, out)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"without a token", []string{"explain", "--addr", m.grpcAddr, last.GetDecisionId()}, 1, "Unauthenticated"},
		{"with a wrong token", []string{"explain", "--addr", m.grpcAddr, "--token", "wrong-token-0123456789", last.GetDecisionId()}, 1, "Unauthenticated"},
		{"with a hook's token", []string{"explain", "--addr", m.grpcAddr, "--token", hookToken, last.GetDecisionId()}, 1, "PermissionDenied"},
		{"unknown decision", []string{"explain", "--addr", m.grpcAddr, "--token", explainToken, "nope"}, 1, "NotFound"},
		{"no id", []string{"explain", "--addr", m.grpcAddr}, 2, "Usage: pushback explain"},
	} {
		code, _, errs := runCmd(tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", tc.name, code, errs, tc.code, tc.want)
		}
		if strings.Contains(errs, explainToken) || strings.Contains(errs, hookToken) {
			t.Errorf("%s: the token appears in the output", tc.name)
		}
	}
}

func TestMeshAuthenticatesHTTPAndReloadsThePolicy(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pf, defaultpolicy.Default, 0o600); err != nil {
		t.Fatal(err)
	}
	m := startMesh(t, pf, "")
	body := `{"userId":"bob","appId":"vpn","factor":"FACTOR_PUSH","attemptId":"h-1"}`
	post := func(auth string) int {
		r, _ := http.NewRequest(http.MethodPost, "http://"+m.httpAddr+"/v1/decide", strings.NewReader(body))
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(""); code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", code)
	}
	if code := post("Bearer " + explainToken); code != http.StatusForbidden {
		t.Fatalf("with an operator's token: %d, want 403", code)
	}
	if code := post("Bearer " + hookToken); code != http.StatusOK {
		t.Fatalf("with the hook's token: %d (the gateway must authenticate to the decision service itself)", code)
	}
	got, err := m.ops.ListDecisions(context.Background(), &decisionv1.ListDecisionsRequest{UserId: "bob"})
	if err != nil || len(got.GetDecisions()) != 1 {
		t.Fatalf("ListDecisions = %d decisions, %v; want only the authenticated one", len(got.GetDecisions()), err)
	}

	// An invalid edit is rejected and counted; a valid one is put in force.
	if err := os.WriteFile(pf, []byte("rules:\n  - name: x\n    when: nope\n    outcome: DENY\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return m.counters.PolicyReloadFailures.Load() == 1 })
	next := strings.Replace(string(defaultpolicy.Default), "version: default-2026.12", "version: edited-1", 1)
	if err := os.WriteFile(pf, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return m.counters.PolicyReloads.Load() == 1 })
	r, err := m.dc.Decide(context.Background(), burstReq("carol", 1, time.Now()))
	if err != nil || r.GetPolicyVersion() != "edited-1" {
		t.Fatalf("after reload: %v, %v", r.GetPolicyVersion(), err)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for range 3000 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("condition never held")
}

func TestExplainFailureModeAndEvidence(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	rec := &decisionv1.DecisionRecord{
		DecisionId: "d1", Tier: "sensitive", ScoringError: "DEADLINE_EXCEEDED", Groups: []string{"admins"},
		Request: &decisionv1.DecideRequest{UserId: "dave", Tenant: "acme", AppId: "payroll", Factor: eventv1.Factor_FACTOR_PUSH, Time: timestamppb.New(at)},
		Response: &decisionv1.DecideResponse{Outcome: decisionv1.Outcome_OUTCOME_DENY, FailureMode: decisionv1.FailureMode_FAILURE_MODE_CLOSED,
			Reasons: []string{"scoring unavailable within 50ms; sensitive tier fails closed"}, PolicyVersion: "v9"},
		DecidedAt: timestamppb.New(at),
	}
	var b bytes.Buffer
	writeExplanation(&b, rec)
	for _, want := range []string{
		"Decision d1: DENY", "dave (tenant acme)", "groups       admins", "payroll (tier sensitive)",
		"- scoring unavailable within 50ms; sensitive tier fails closed",
		"not assessed: scoring did not answer in time (DEADLINE_EXCEEDED)",
		"failure mode  fail closed (deny)", "Trace (none)",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("lacks %q:\n%s", want, b.String())
		}
	}

	travel := &scoringv1.Signal{Code: "IMPOSSIBLE_TRAVEL", Weight: 40, Confidence: 0.9, Summary: "New York to Tokyo in 1h",
		Evidence: &scoringv1.Signal_Travel{Travel: &scoringv1.TravelEvidence{
			Previous:   &scoringv1.Location{Time: timestamppb.New(at.Add(-time.Hour)), Ip: "198.51.100.7", Geo: &eventv1.Geo{City: "New York", Country: "US"}},
			Current:    &scoringv1.Location{Time: timestamppb.New(at), Ip: "203.0.113.9", Geo: &eventv1.Geo{City: "Tokyo", Country: "JP"}},
			DistanceKm: 10800, SpeedKmh: 10800, Elapsed: durationpb.New(time.Hour), ThresholdKmh: 900}}}
	lines := evidence(travel)
	if len(lines) != 3 || !strings.Contains(lines[0], "New York, US from 198.51.100.7") || !strings.Contains(lines[2], "10800 km in 1h0m0s = 10800 km/h (threshold 900 km/h)") {
		t.Fatalf("travel evidence %q", lines)
	}
	retries := &scoringv1.Signal{Code: "APPROVAL_AFTER_BURST", Weight: 27, Confidence: 0.3,
		Evidence: &scoringv1.Signal_Burst{Burst: &scoringv1.BurstEvidence{Threshold: 3, Window: durationpb.New(5 * time.Minute),
			Context: "own retries", FamiliarPushes: 3, ApproverFamiliar: true}}}
	lines = evidence(retries)
	if want := "context: own retries (3 familiar, 0 partly familiar, 0 unfamiliar pushes); approved on a known device where the login was"; lines[len(lines)-1] != want {
		t.Fatalf("burst evidence %q, want %q last", lines, want)
	}
}
