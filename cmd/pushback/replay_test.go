package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fixturePath(parts ...string) string {
	return filepath.Join(append([]string{"..", "..", "services", "intake", "formats", "testdata"}, parts...)...)
}

func runReplay(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := replayCmd(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestReplayTable(t *testing.T) {
	code, out, errOut := runReplay(t, "", "--format=okta", fixturePath("okta", "event_hook.json"), "--report")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"TIME", "ada@example.com", "PUSH_BURST", "REQUIRE_NUMBER_MATCH", "burst-number-match",
		"Posture summary", "approvals after repeated prompts", "fraud reports: 1", "skipped event types: user.session.end=1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(errOut, "\r") {
		t.Error("progress bar drawn although stderr is not a terminal")
	}
}

func TestReplayJSON(t *testing.T) {
	files := []string{fixturePath("duo", "authlogs_v2_response.json"), fixturePath("duo", "panther_duo_user_anomalous_push.ndjson")}
	code, out, errOut := runReplay(t, "", append([]string{"--format=duo", "--json", "--report"}, files...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "skipped malformed record") || !strings.Contains(errOut, "timestamp: is required") {
		t.Errorf("malformed records not reported on stderr: %s", errOut)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	var findings, reports int
	var denied bool
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %s", sc.Text())
		}
		if _, ok := m["report"]; ok {
			reports++
			continue
		}
		findings++
		for _, k := range []string{"time", "user", "signals", "event_id"} {
			if _, ok := m[k]; !ok {
				t.Errorf("finding lacks %s: %s", k, sc.Text())
			}
		}
		if m["outcome"] == "DENY" {
			denied = true
		}
	}
	if findings == 0 || reports != 1 || !denied {
		t.Fatalf("%d findings, %d reports, deny seen %v:\n%s", findings, reports, denied, out)
	}
}

func TestReplayCandidatePolicy(t *testing.T) {
	pol := filepath.Join(t.TempDir(), "candidate.yaml")
	if err := os.WriteFile(pol, []byte("version: candidate-1\nrules:\n  - name: never-push\n    when: 'true'\n    outcome: DENY\n    cooldown: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(fixturePath("pingid", "webhooks.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runReplay(t, string(data), "--format=pingid", "--policy="+pol, "--report", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"policy candidate-1", "never-push", "deny 2; suppressed 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestReplayUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no format", []string{fixturePath("okta", "event_hook.json")}, 2, "Usage: pushback replay"},
		{"unknown format", []string{"--format=onelogin", "x.json"}, 2, `unknown format "onelogin"`},
		{"no files", []string{"--format=okta"}, 2, "Usage: pushback replay"},
		{"missing file", []string{"--format=okta", filepath.Join(t.TempDir(), "nope.json")}, 1, "no such file"},
		{"bad policy", []string{"--format=okta", "--policy=" + filepath.Join(t.TempDir(), "nope.yaml"), fixturePath("okta", "event_hook.json")}, 1, "nope.yaml"},
		{"not JSON", []string{"--format=native", fixturePath("README.md")}, 1, "malformed JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runReplay(t, "", tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d (want %d), stderr %q lacks %q", code, tt.code, errOut, tt.want)
			}
		})
	}
}

// failingWriter fails every write, as a full disk does.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestReplayFailsWhenItsOutputCannotBeWritten(t *testing.T) {
	for _, args := range [][]string{
		{"--format=okta", fixturePath("okta", "event_hook.json")},
		{"--format=okta", "--json", "--report", fixturePath("okta", "event_hook.json")},
	} {
		var errb bytes.Buffer
		if code := replayCmd(args, strings.NewReader(""), failingWriter{}, &errb); code != 1 || !strings.Contains(errb.String(), "writing the output") {
			t.Fatalf("replay %v to a failing output: exit %d, %q; want 1 saying so", args, code, errb.String())
		}
	}
}
