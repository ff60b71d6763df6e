package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestWritesTarballAndPinsDigest runs the command as scripts/image does,
// on a small static binary, and requires the printed digest to be the
// tarball's and the one pinned in the kustomization.
func TestWritesTarballAndPinsDigest(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-o", "bin", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOWORK=off", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	kust := filepath.Join(dir, "kustomization.yaml")
	if err := os.WriteFile(kust, []byte("resources:\n  - pushback.yaml\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "pushback.tar")
	var stdout, stderr bytes.Buffer
	code := run([]string{"--binary", filepath.Join(dir, "bin"), "--out", out, "--arch", runtime.GOARCH,
		"--revision", "0123456789abcdef0123456789abcdef01234567", "--version", "v0.0.1",
		"--kustomize", kust, "--new-name", "registry.example.com/pushback"}, &stdout, &stderr,
		func(k string) string {
			if k == "SOURCE_DATE_EPOCH" {
				return "1764504000"
			}
			return ""
		})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	digest := strings.TrimSpace(stdout.String())
	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := img.Digest(); err != nil || d.String() != digest {
		t.Fatalf("tarball digest %v (%v), printed %s", d, err, digest)
	}
	pinned, err := os.ReadFile(kust)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pinned), "digest: "+digest) || !strings.Contains(string(pinned), "newName: registry.example.com/pushback") {
		t.Fatalf("kustomization not pinned:\n%s", pinned)
	}
}

// TestRefusesAndLeavesNothing: a build that fails (here, a shell script
// for a binary) writes no tarball under the name.
func TestRefusesAndLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "pushback")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "pushback.tar")
	var stdout, stderr bytes.Buffer
	code := run([]string{"--binary", script, "--out", out, "--revision", "0123456", "--version", "v1", "--created", "1764504000"}, &stdout, &stderr, func(string) string { return "" })
	if code == 0 || !strings.Contains(stderr.String(), "not an ELF") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
	if code := run([]string{"--out", out}, &stdout, &stderr, func(string) string { return "" }); code == 0 {
		t.Fatal("ran without --binary")
	}
}
