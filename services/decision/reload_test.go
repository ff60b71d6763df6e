package decision_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	"github.com/pushbackhq/pushback/services/decision"
)

func policyWith(version, outcome string) string {
	return "version: " + version + "\nrules:\n  - name: all\n    when: \"true\"\n    outcome: " + outcome + "\n"
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	enforced, shadowFile := filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "shadow.yaml")
	write(t, enforced, policyWith("v1", "ALLOW"))
	write(t, shadowFile, policyWith("s1", "DENY"))
	e := newEnv(t, envOptions{policy: policyWith("v1", "ALLOW"), shadow: policyWith("s1", "DENY")})
	var logs bytes.Buffer
	rl := decision.NewReloader(e.svc, decision.ReloaderOptions{PolicyFile: enforced, ShadowFile: shadowFile,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := context.Background()

	steps := []struct {
		name             string
		enforced, shadow string // new content ("" leaves the file)
		wantErr          string
		version, sv      string
		reloads, fails   int64
	}{
		{"unchanged files", "", "", "", "v1", "s1", 0, 0},
		{"valid new policy", policyWith("v2", "REQUIRE_NUMBER_MATCH"), "", "", "v2", "s1", 1, 0},
		{"invalid policy keeps the old", "version: v3\nrules:\n  - name: broken\n    when: scroe > 1\n    outcome: DENY\n", "", `rule "broken"`, "v2", "s1", 1, 1},
		{"the same invalid file is reported once", "", "", "", "v2", "s1", 1, 1},
		{"fixed policy", policyWith("v4", "ALLOW"), "", "", "v4", "s1", 2, 1},
		{"new shadow policy", "", policyWith("s2", "ALLOW"), "", "v4", "s2", 3, 1},
		{"invalid shadow keeps the old", "", "rules: [", "shadow", "v4", "s2", 3, 2},
	}
	for _, st := range steps {
		if st.enforced != "" {
			write(t, enforced, st.enforced)
		}
		if st.shadow != "" {
			write(t, shadowFile, st.shadow)
		}
		err := rl.Reload(ctx)
		if (st.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), st.wantErr) && !strings.Contains(err.Error(), filepath.Base(shadowFile))) {
			t.Fatalf("%s: Reload error %v, want %q", st.name, err, st.wantErr)
		}
		if v, sv := e.svc.Policy().Version, e.svc.ShadowPolicy().Version; v != st.version || sv != st.sv {
			t.Fatalf("%s: versions %s/%s, want %s/%s", st.name, v, sv, st.version, st.sv)
		}
		if r, f := e.counters.PolicyReloads.Load(), e.counters.PolicyReloadFailures.Load(); r != st.reloads || f != st.fails {
			t.Fatalf("%s: reloads %d failures %d, want %d and %d", st.name, r, f, st.reloads, st.fails)
		}
	}
	if !strings.Contains(logs.String(), "policy rejected") || !strings.Contains(logs.String(), "scroe") {
		t.Fatalf("the rejection was not logged with its cause:\n%s", logs.String())
	}
	// Decisions carry the version in force.
	if r := e.decide(t, req("pat", "mail", "r-1", t0)); r.GetPolicyVersion() != "v4" {
		t.Fatalf("decision under policy %q", r.GetPolicyVersion())
	}
	// A missing file is an error, the policy stays.
	if err := os.Remove(enforced); err != nil {
		t.Fatal(err)
	}
	if err := rl.Reload(ctx); err == nil || e.svc.Policy().Version != "v4" {
		t.Fatalf("missing file: %v, version %s", err, e.svc.Policy().Version)
	}
}

func TestReloadOnSignalAndOnChange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	write(t, path, policyWith("v1", "ALLOW"))
	e := newEnv(t, envOptions{policy: policyWith("v1", "ALLOW")})
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 1)
	done := make(chan error, 1)

	// Signal only (polling off): a change is picked up when the signal comes.
	rl := decision.NewReloader(e.svc, decision.ReloaderOptions{PolicyFile: path})
	go func() { done <- rl.Run(ctx, signals) }()
	write(t, path, policyWith("v2", "DENY"))
	signals <- os.Interrupt
	waitFor(t, func() bool { return e.svc.Policy().Version == "v2" })
	// A signal retries an invalid file and reports it again.
	write(t, path, "rules: [")
	signals <- os.Interrupt
	waitFor(t, func() bool { return e.counters.PolicyReloadFailures.Load() == 1 })
	signals <- os.Interrupt
	waitFor(t, func() bool { return e.counters.PolicyReloadFailures.Load() == 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Polling: a change of content is picked up without a signal.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	rl = decision.NewReloader(e.svc, decision.ReloaderOptions{PolicyFile: path, Poll: 5 * time.Millisecond})
	go func() { done <- rl.Run(ctx, nil) }()
	write(t, path, policyWith("v3", "REQUIRE_NUMBER_MATCH"))
	waitFor(t, func() bool { return e.svc.Policy().Version == "v3" })
	if r := e.decide(t, req("quinn", "mail", "p-1", t0)); r.GetOutcome() != decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH || r.GetPolicyVersion() != "v3" {
		t.Fatalf("after reload: %v under %s", r.GetOutcome(), r.GetPolicyVersion())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond; it fails the test only when cond never holds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 2000 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("condition never held")
}

// TestReloadSeesAChangeMadeBeforeTheReloaderStarted: the file changed
// between the policy's load and the reloader's start; the reloader compares
// with what is in force, not with the file it finds, so it applies it.
func TestReloadSeesAChangeMadeBeforeTheReloaderStarted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	e := newEnv(t, envOptions{policy: policyWith("v1", "ALLOW")}) // loaded from v1
	write(t, path, policyWith("v2", "DENY"))                      // then the file changes
	rl := decision.NewReloader(e.svc, decision.ReloaderOptions{PolicyFile: path})
	if err := rl.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v := e.svc.Policy().Version; v != "v2" {
		t.Fatalf("policy in force %q, want v2: the change before the reloader started was missed", v)
	}
	// Unchanged since: nothing more is reloaded.
	before := e.counters.PolicyReloads.Load()
	if err := rl.Reload(context.Background()); err != nil || e.counters.PolicyReloads.Load() != before {
		t.Fatalf("an unchanged file was reloaded again: %v", err)
	}
}
