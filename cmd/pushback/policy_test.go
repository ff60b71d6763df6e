package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyCheck(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := file("bad.yaml", "version: x\nrules:\n  - name: fine\n    when: \"true\"\n    outcome: ALLOW\n  - name: typo\n    when: pushes[\"5m\"] >= 3 && scroe > 1\n    outcome: DENY\n")
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr []string
	}{
		{"default policy", []string{"policy", "check", "../../deploy/policy/default.yaml"}, 0, "ok (version default-2026.12", nil},
		{"compile error", []string{"policy", "check", bad}, 1, "", []string{"line 7", `rule "typo"`, "rules[1].when", "expression column 22", "undeclared reference to 'scroe'"}},
		{"missing file", []string{"policy", "check", filepath.Join(dir, "missing.yaml")}, 1, "", []string{"missing.yaml"}},
		{"no file", []string{"policy", "check"}, 2, "", []string{"Usage: pushback policy check FILE"}},
		{"unknown subcommand", []string{"policy", "lint", bad}, 2, "", []string{"Usage"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCmd(tc.args...)
			if code != tc.code || !strings.Contains(out, tc.stdout) {
				t.Fatalf("exit %d stdout %q stderr %q; want %d and %q", code, out, errs, tc.code, tc.stdout)
			}
			for _, w := range tc.stderr {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr %q lacks %q", errs, w)
				}
			}
		})
	}
}
