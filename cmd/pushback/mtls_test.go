package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	"github.com/pushbackhq/pushback/pkg/devcerts"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestMutualTLSBetweenServices(t *testing.T) {
	const hook, operator = "mtls-hook-token-0123456789", "mtls-operator-token-0123456"
	dir := t.TempDir()
	good, err := devcerts.WriteFiles(filepath.Join(dir, "good"), []string{"scoring", "decision", "client"}, []string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := devcerts.WriteFiles(filepath.Join(dir, "rogue"), []string{"client"}, []string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tlsArgs := func(f devcerts.Files, name string) []string {
		return []string{"--tls-cert=" + f.Node[name][0], "--tls-key=" + f.Node[name][1], "--tls-ca=" + f.CA}
	}
	scoring := startProc(t, "scoring", append([]string{"--services=scoring"}, tlsArgs(good, "scoring")...)...)
	decision := startProc(t, "decision", append([]string{"--services=decision,notify", "--scoring-addr=" + scoring.addr, "--decide-budget=5s",
		"--auth-tokens=" + hook, "--operator-tokens=" + operator}, tlsArgs(good, "decision")...)...)

	dial := func(creds credentials.TransportCredentials) decisionv1.DecisionServiceClient {
		conn, err := grpc.NewClient(decision.addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return decisionv1.NewDecisionServiceClient(conn)
	}
	_, goodClient, _, err := rpc.MutualTLS(good.Node["client"][0], good.Node["client"][1], good.CA)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A client certificate gets a connection; the hook's token gets Decide.
	_, err = dial(goodClient).Decide(ctx, pushAt("heidi", "h-0", time.Now()))
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Decide with a client certificate and no token: %v, want Unauthenticated", err)
	}
	hookCtx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+hook)
	resp, err := dial(goodClient).Decide(hookCtx, pushAt("heidi", "h-1", time.Now()))
	if err != nil {
		t.Fatalf("Decide over mutual TLS: %v", err)
	}
	if resp.GetFailureMode() != decisionv1.FailureMode_FAILURE_MODE_UNSPECIFIED {
		t.Fatalf("decision could not reach scoring over mutual TLS: %v", resp.GetReasons())
	}

	// explain reads the decision back over mutual TLS, and says so when its
	// TLS flags are incomplete or it has none.
	var out, errOut strings.Builder
	noEnv := func(string) string { return "" }
	if code := explainCmd(ctx, append([]string{"--addr=" + decision.addr, "--token=" + operator}, append(tlsArgs(good, "client"), resp.GetDecisionId())...), &out, &errOut, noEnv); code != 0 {
		t.Fatalf("explain over mutual TLS: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), resp.GetDecisionId()) {
		t.Fatalf("explain output does not name the decision:\n%s", out.String())
	}
	errOut.Reset()
	if code := explainCmd(ctx, []string{"--addr=" + decision.addr, "--tls-cert=" + good.Node["client"][0], resp.GetDecisionId()}, &out, &errOut, noEnv); code != 2 || !strings.Contains(errOut.String(), "needs a certificate, its key and a CA file") {
		t.Fatalf("explain with only --tls-cert: exit %d, %q; want 2 saying what is missing", code, errOut.String())
	}
	errOut.Reset()
	if code := explainCmd(ctx, []string{"--addr=" + decision.addr, "--timeout=3s", resp.GetDecisionId()}, &out, &errOut, noEnv); code != 1 || !strings.Contains(errOut.String(), "Unavailable") {
		t.Fatalf("explain without TLS against a mutual-TLS mesh: exit %d, %q; want 1 and Unavailable", code, errOut.String())
	}

	// A client whose certificate another CA signed is refused with a clear error.
	_, rogueClient, _, err := rpc.MutualTLS(rogue.Node["client"][0], rogue.Node["client"][1], good.CA)
	if err != nil {
		t.Fatal(err)
	}
	_, err = dial(rogueClient).Decide(hookCtx, pushAt("heidi", "h-2", time.Now()))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("rogue certificate: %v, want Unavailable", err)
	}
	// A plaintext client is refused too.
	_, err = dial(insecure.NewCredentials()).Decide(hookCtx, pushAt("heidi", "h-3", time.Now()))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext client: %v, want Unavailable", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(decision.log(), "certificate") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(decision.log(), "certificate") {
		t.Fatalf("the server log does not say the peer's certificate was refused:\n%s", decision.log())
	}
}
