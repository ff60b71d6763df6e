// Package auth0_test runs the Auth0 post-login Action (pushback-action.js)
// under Node against a real Pushback mesh started in this process.
package auth0_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"github.com/pushbackhq/pushback/services/mesh"
	"google.golang.org/grpc"
)

// hookToken is what the Action presents (PUSHBACK_TOKEN); operatorToken
// reads the decisions back.
const (
	hookToken     = "auth0-action-test-hook-token-0123"
	operatorToken = "auth0-action-test-operator-token-0123"
)

// What test/mesh.test.js sends.
const (
	meshTenant = "pushback-test"
	meshApp    = "pushback-test-client"
)

// minNodeMajor is the first Node with a global fetch, as Auth0's runtime has.
const minNodeMajor = 18

type meshUnderTest struct {
	httpAddr string
	ops      decisionv1.DecisionServiceClient
}

// startMesh runs the whole mesh in this process with the production wiring
// and authentication on: a hook token for the Action, an operator token to
// read decisions.
func startMesh(t *testing.T) *meshUnderTest {
	t.Helper()
	cfg := mesh.Default()
	cfg.DataDir = t.TempDir()
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Auth.HookTokens = []string{hookToken}
	cfg.Auth.OperatorTokens = []string{operatorToken}
	// The burst is about counting pushes, not deadlines: a loaded machine
	// must not turn it into failure-mode answers.
	cfg.Decision.Budget = 5 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- mesh.Run(ctx, cfg, mesh.Options{Getenv: func(string) string { return "" },
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
	conn, err := rpc.Dial(addrs[0], rpc.ClientOptions{Unary: []grpc.UnaryClientInterceptor{auth.Credentials{Token: operatorToken}.UnaryClientInterceptor()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &meshUnderTest{httpAddr: addrs[1], ops: decisionv1.NewDecisionServiceClient(conn)}
}

// nodeBinary finds Node and checks its version; a missing or old Node fails
// the test: it is a dependency of the suite, not an optional extra.
func nodeBinary(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed: scripts/test installs nodejs (Debian package nodejs, Node %d or later); or apt-get install nodejs", minNodeMajor)
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	v := strings.TrimSpace(string(out))
	major, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(v, "v"), ".", 2)[0])
	if err != nil || major < minNodeMajor {
		t.Fatalf("node %s is too old: the Action needs Node %d or later (global fetch); scripts/test installs nodejs", v, minNodeMajor)
	}
	return node
}

// TestActionAgainstAMesh runs every node test of the Action (test/*.test.js)
// with test/mesh.test.js pointed at a real mesh, then reads back from the
// mesh what the Action's burst of logins left there.
func TestActionAgainstAMesh(t *testing.T) {
	node := nodeBinary(t)
	m := startMesh(t)
	files, err := filepath.Glob(filepath.Join("test", "*.test.js"))
	if err != nil || !slices.Contains(files, filepath.Join("test", "mesh.test.js")) {
		t.Fatalf("node tests: %v, %v", files, err)
	}
	user := fmt.Sprintf("auth0|burst-%d", time.Now().UnixNano())

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{"--test", "--test-reporter=tap"}, files...)...)
	cmd.Env = append(os.Environ(),
		"PUSHBACK_TEST_URL=http://"+m.httpAddr,
		"PUSHBACK_TEST_TOKEN="+hookToken,
		"PUSHBACK_TEST_USER="+user,
		"NODE_OPTIONS=", // nothing of the caller's Node setup
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	tap := out.String()
	if err != nil {
		t.Fatalf("node --test %s: %v\n%s", strings.Join(files, " "), err, tap)
	}
	if strings.Contains(tap, hookToken) {
		t.Errorf("the hook token appears in the node output")
	}
	// The mesh tests ran (none skipped) and nothing failed.
	for _, name := range []string{
		"mesh: PUSHBACK_TEST_URL and PUSHBACK_TEST_TOKEN are set",
		"mesh: a wrong token is refused (401) and the fail mode answers; nothing is counted",
		"mesh: a burst of logins: the first gets a push, the 5th and 6th no push",
	} {
		re := regexp.MustCompile(`(?m)^ok \d+ - ` + regexp.QuoteMeta(name) + `.*$`)
		line := re.FindString(tap)
		if line == "" || strings.Contains(line, "# SKIP") {
			t.Errorf("node test %q did not pass (%q):\n%s", name, line, tap)
		}
	}
	if !regexp.MustCompile(`(?m)^# fail 0$`).MatchString(tap) || regexp.MustCompile(`(?m)^\s*not ok`).MatchString(tap) {
		t.Errorf("node reports failures:\n%s", tap)
	}
	if testing.Verbose() {
		t.Log(tap)
	}

	// What the mesh decided for the burst: six logins, six decisions (the
	// sixth asked twice is one attempt), the first a push, the fifth a denial.
	got, err := m.ops.ListDecisions(context.Background(), &decisionv1.ListDecisionsRequest{UserId: user, Tenant: meshTenant})
	if err != nil {
		t.Fatal(err)
	}
	recs := got.GetDecisions()
	slices.Reverse(recs) // oldest first
	var outcomes []string
	for _, r := range recs {
		outcomes = append(outcomes, strings.TrimPrefix(r.GetResponse().GetOutcome().String(), "OUTCOME_"))
	}
	t.Logf("decisions for the burst: %v", outcomes)
	if len(recs) != 6 {
		t.Fatalf("the mesh holds %d decisions for the user, want 6: %v", len(recs), outcomes)
	}
	if o := recs[0].GetResponse().GetOutcome(); o != decisionv1.Outcome_OUTCOME_ALLOW {
		t.Errorf("1st login: %v, want ALLOW", o)
	}
	if o := recs[4].GetResponse().GetOutcome(); o != decisionv1.Outcome_OUTCOME_DENY {
		t.Errorf("5th login: %v, want DENY (5 pushes in 10 minutes)", o)
	}
	if o := recs[5].GetResponse().GetOutcome(); o == decisionv1.Outcome_OUTCOME_ALLOW {
		t.Errorf("6th login: %v, want no push", o)
	}
	attempts := map[string]bool{}
	for i, r := range recs {
		req := r.GetRequest()
		if r.GetResponse().GetFailureMode() != decisionv1.FailureMode_FAILURE_MODE_UNSPECIFIED {
			t.Errorf("login %d was answered by the failure mode %v", i+1, r.GetResponse().GetFailureMode())
		}
		if req.GetFactor() != eventv1.Factor_FACTOR_PUSH || req.GetAppId() != meshApp || req.GetTenant() != meshTenant ||
			req.GetClient().GetIp() != "198.51.100.7" || req.GetClient().GetUserAgent() == "" || req.GetClient().GetGeo().GetCountry() != "US" ||
			req.GetSessionId() == "" || req.GetTime() == nil || !slices.Contains(r.GetGroups(), "support") {
			t.Errorf("login %d: the mesh got %v", i+1, req)
		}
		if !strings.HasPrefix(req.GetAttemptId(), "auth0-") || attempts[req.GetAttemptId()] {
			t.Errorf("login %d: attempt id %q", i+1, req.GetAttemptId())
		}
		attempts[req.GetAttemptId()] = true
	}
}
