// Command pushback-image writes the pushback container image as a
// tarball, without a container engine or a registry: scripts/image builds
// the static binary and calls it. It prints the image's digest, the one
// a registry will hold after `crane push FILE`, and can pin it in a
// kustomization.yaml.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/pushbackhq/pushback/internal/imagebuild"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("pushback-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binary := fs.String("binary", "", "the static pushback binary (CGO_ENABLED=0)")
	out := fs.String("out", "", "the tarball to write")
	arch := fs.String("arch", "amd64", "GOARCH the binary was built for")
	source := fs.String("source", "https://github.com/pushbackhq/pushback", "label "+imagebuild.LabelSource)
	revision := fs.String("revision", "", "label "+imagebuild.LabelRevision+": the git commit")
	version := fs.String("version", "", "label "+imagebuild.LabelVersion+", and the tag in manifest.json")
	created := fs.String("created", getenv("SOURCE_DATE_EPOCH"), "build time in Unix seconds, the commit's time (default $SOURCE_DATE_EPOCH)")
	repo := fs.String("repo", "pushback", "repository name in manifest.json (docker load)")
	kustomize := fs.String("kustomize", "", "kustomization.yaml whose images: entry to pin to the digest")
	imageName := fs.String("image-name", "pushback", "the image name the manifests use (images: name)")
	newName := fs.String("new-name", "", "images: newName, the registry repository pushed to (kept when empty)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "pushback-image: unexpected arguments %q\n", fs.Args())
		return 2
	}
	digest, err := build(*binary, *out, *arch, *source, *revision, *version, *created, *repo)
	if err == nil && *kustomize != "" {
		err = pin(*kustomize, *imageName, *newName, digest)
	}
	if err != nil {
		fmt.Fprintf(stderr, "pushback-image: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, digest)
	return 0
}

func build(binary, out, arch, source, revision, version, created, repo string) (v1.Hash, error) {
	if binary == "" || out == "" {
		return v1.Hash{}, errors.New("--binary and --out are required")
	}
	secs, err := strconv.ParseInt(created, 10, 64)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("--created %q: want Unix seconds", created)
	}
	st, err := os.Stat(binary)
	if err != nil {
		return v1.Hash{}, err
	}
	if st.Size() > imagebuild.MaxBinarySize {
		return v1.Hash{}, fmt.Errorf("%s: %d bytes, more than %d", binary, st.Size(), imagebuild.MaxBinarySize)
	}
	bin, err := os.ReadFile(binary)
	if err != nil {
		return v1.Hash{}, err
	}
	spec := imagebuild.Spec{
		Binary: bin, CABundle: imagebuild.CABundle(), Arch: arch,
		Created: time.Unix(secs, 0).UTC(), Source: source, Revision: revision, Version: version,
	}
	img, err := imagebuild.Build(spec)
	if err != nil {
		return v1.Hash{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	// Written beside the target and renamed, so that a failed build
	// leaves no half tarball under the name.
	tmp, err := os.CreateTemp(filepath.Dir(out), ".pushback-image-*")
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.Remove(tmp.Name())
	if err := imagebuild.Write(tmp, img, repo, version, spec.Created); err != nil {
		tmp.Close()
		return v1.Hash{}, err
	}
	if err := tmp.Close(); err != nil {
		return v1.Hash{}, err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return v1.Hash{}, err
	}
	return digest, os.Rename(tmp.Name(), out)
}

func pin(path, name, newName string, digest v1.Hash) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	pinned, err := imagebuild.PinImage(data, name, newName, digest)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, pinned, 0o644)
}
