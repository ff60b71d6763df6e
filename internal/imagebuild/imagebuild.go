// Package imagebuild assembles the pushback container image without a
// container engine: one layer on an empty base holding the static binary,
// a CA bundle and the passwd and group entries of a non-root user, with
// the OCI labels that say where it came from. Everything in the image is
// a function of the Spec (file times are the build's creation time), so
// the same binary built from the same commit gives the same digest.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/x509"
	"debug/elf"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Where things are in the image, and who runs it.
const (
	// BinaryPath is the entrypoint.
	BinaryPath = "/usr/local/bin/pushback"
	// CABundlePath is where Go's crypto/x509 looks first on Linux.
	CABundlePath = "/etc/ssl/certs/ca-certificates.crt"
	// UID and GID are those of the non-root user the image runs as; the
	// number is the one distroless images use, so the Kubernetes
	// manifests' runAsUser fits either.
	UID = 65532
	GID = 65532
	// User is the image's config.User: numeric, so that runAsNonRoot can
	// be checked by the kubelet without reading /etc/passwd.
	User = "65532:65532"
	// DataDir is the working directory's ./data (the default
	// --data-dir), owned by the user so that the embedded store can
	// write there when no volume is mounted.
	DataDir = "/data"
)

// The OCI annotation keys the image's labels use.
const (
	LabelSource   = "org.opencontainers.image.source"
	LabelRevision = "org.opencontainers.image.revision"
	LabelVersion  = "org.opencontainers.image.version"
	LabelCreated  = "org.opencontainers.image.created"
	LabelTitle    = "org.opencontainers.image.title"
)

// MaxBinarySize bounds the binary read into memory: pushback is tens of
// megabytes, and anything far larger is not it.
const MaxBinarySize = 512 << 20

// Spec is everything the image is made of.
type Spec struct {
	// Binary is the pushback executable: a static ELF for Arch.
	Binary []byte
	// CABundle is PEM; see CABundle for the pinned one.
	CABundle []byte
	// Arch is the GOARCH the binary was built for (amd64, arm64).
	Arch string
	// Created is the build's time: the commit's time, for
	// reproducibility. It is the image's created time and every file's
	// modification time.
	Created time.Time
	// Source is the repository's URL, Revision the commit and Version the
	// release (also the tag in the tarball's manifest.json).
	Source, Revision, Version string
}

var (
	revisionRE = regexp.MustCompile(`^[0-9a-f]{7,64}$`)
	// A Docker tag: the version names the image in manifest.json.
	versionRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

var machines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// Validate reports every reason the Spec would not make a runnable,
// traceable image.
func (s Spec) Validate() error {
	var errs []error
	want, ok := machines[s.Arch]
	if !ok {
		errs = append(errs, fmt.Errorf("arch: %q is not one of amd64, arm64", s.Arch))
	}
	if err := checkStatic(s.Binary, want, ok); err != nil {
		errs = append(errs, fmt.Errorf("binary: %w", err))
	}
	if n, err := countCerts(s.CABundle); err != nil {
		errs = append(errs, fmt.Errorf("ca bundle: %w", err))
	} else if n == 0 {
		errs = append(errs, errors.New("ca bundle: no certificates"))
	}
	if s.Created.IsZero() || s.Created.Before(time.Unix(1, 0)) {
		errs = append(errs, errors.New("created: is required (the commit's time)"))
	}
	if u, err := url.Parse(s.Source); err != nil || u.Scheme != "https" || u.Host == "" {
		errs = append(errs, fmt.Errorf("source: %q is not an https URL", s.Source))
	}
	if !revisionRE.MatchString(s.Revision) {
		errs = append(errs, fmt.Errorf("revision: %q is not a git commit id", s.Revision))
	}
	if !versionRE.MatchString(s.Version) {
		errs = append(errs, fmt.Errorf("version: %q is not a valid image tag", s.Version))
	}
	return errors.Join(errs...)
}

// checkStatic refuses what would not start on an empty base: anything
// but an executable ELF for the machine, and any binary that asks for a
// dynamic loader (PT_INTERP), which the image does not have.
func checkStatic(b []byte, want elf.Machine, checkMachine bool) error {
	if len(b) == 0 {
		return errors.New("is empty")
	}
	if len(b) > MaxBinarySize {
		return fmt.Errorf("is %d bytes, more than %d", len(b), MaxBinarySize)
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("is not an ELF executable: %w", err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("ELF type %v is not an executable", f.Type)
	}
	if checkMachine && f.Machine != want {
		return fmt.Errorf("is for %v, not %v", f.Machine, want)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("is dynamically linked (PT_INTERP); build it with CGO_ENABLED=0")
		}
	}
	return nil
}

func countCerts(b []byte) (int, error) {
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return n, fmt.Errorf("PEM block %q is not a certificate", blk.Type)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return n, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		n++
	}
	if len(bytes.TrimSpace(b)) != 0 {
		return n, errors.New("trailing data that is not PEM")
	}
	return n, nil
}

// Labels are the image's OCI labels.
func (s Spec) Labels() map[string]string {
	return map[string]string{
		LabelSource:   s.Source,
		LabelRevision: s.Revision,
		LabelVersion:  s.Version,
		LabelCreated:  s.Created.UTC().Format(time.RFC3339),
		LabelTitle:    "pushback",
	}
}

// Build assembles the image. It reads nothing but the Spec.
func Build(s Spec) (v1.Image, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	tarBytes, err := layerTar(s)
	if err != nil {
		return nil, err
	}
	gz, err := compress(tarBytes)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(gz)), nil })
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: s.Created.UTC()}
	cfg := &v1.ConfigFile{
		Architecture: s.Arch,
		OS:           "linux",
		Created:      created,
		Config: v1.Config{
			Entrypoint: []string{BinaryPath},
			Cmd:        []string{"serve"},
			User:       User,
			WorkingDir: "/",
			Env:        []string{"PATH=/usr/local/bin", "SSL_CERT_FILE=" + CABundlePath},
			Labels:     s.Labels(),
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: created, CreatedBy: "scripts/image", Comment: "pushback " + s.Version + " " + s.Revision},
	})
}

// compress gzips with no name and no time in the header, so that the
// compressed layer, and so its digest, depends on the content alone.
func compress(b []byte) ([]byte, error) {
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// layerTar is the image's one layer, an uncompressed tar: directories
// before their files, in a fixed order, every entry with the build's time.
func layerTar(s Spec) ([]byte, error) {
	type entry struct {
		name     string
		mode     int64
		uid, gid int
		body     []byte
		dir      bool
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, GID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", GID)
	entries := []entry{
		{name: "data/", mode: 0o700, uid: UID, gid: GID, dir: true},
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, body: []byte(group)},
		{name: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, body: s.CABundle},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, uid: UID, gid: GID, dir: true},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/local/", mode: 0o755, dir: true},
		{name: "usr/local/bin/", mode: 0o755, dir: true},
		{name: "usr/local/bin/pushback", mode: 0o755, body: s.Binary},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := s.Created.UTC().Truncate(time.Second)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: mtime, Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
