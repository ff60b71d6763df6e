package imagebuild

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// RefNameAnnotation names a manifest of an OCI layout's index.json.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// Write writes img as one tarball that two kinds of reader accept: an
// OCI image layout (oci-layout, index.json, blobs/sha256/…) and, over
// the same blobs, the manifest.json of a `docker save` tarball, which
// `crane push FILE` and `docker load` read. The image's manifest is
// Docker schema 2 because that is the manifest crane rebuilds from
// manifest.json: so both readers, and the registry after a push, see
// the same digest. Entries are in a fixed order with the given time.
func Write(w io.Writer, img v1.Image, repo, tag string, mtime time.Time) error {
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	if mt != types.DockerManifestSchema2 {
		return fmt.Errorf("manifest media type %s: crane would push another digest", mt)
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	blob := func(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

	tw := tar.NewWriter(w)
	mtime = mtime.UTC().Truncate(time.Second)
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX})
	}
	file := func(name string, size int64, body io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		n, err := io.Copy(tw, body)
		if err == nil && n != size {
			err = fmt.Errorf("%s: wrote %d bytes of %d", name, n, size)
		}
		return err
	}
	bytesFile := func(name string, b []byte) error { return file(name, int64(len(b)), bytes.NewReader(b)) }

	if err := dir("blobs/"); err != nil {
		return err
	}
	if err := dir("blobs/sha256/"); err != nil {
		return err
	}
	if err := bytesFile(blob(m.Config.Digest), rawConfig); err != nil {
		return err
	}
	var layerPaths []string
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		err = file(blob(d), size, rc)
		rc.Close()
		if err != nil {
			return err
		}
		layerPaths = append(layerPaths, blob(d))
	}
	if err := bytesFile(blob(digest), rawManifest); err != nil {
		return err
	}
	index, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType:   mt,
			Size:        int64(len(rawManifest)),
			Digest:      digest,
			Annotations: map[string]string{RefNameAnnotation: tag},
		}},
	})
	if err != nil {
		return err
	}
	if err := bytesFile("index.json", index); err != nil {
		return err
	}
	docker, err := json.Marshal([]tarball.Descriptor{{
		Config:   blob(m.Config.Digest),
		RepoTags: []string{repo + ":" + tag},
		Layers:   layerPaths,
	}})
	if err != nil {
		return err
	}
	if err := bytesFile("manifest.json", docker); err != nil {
		return err
	}
	if err := bytesFile("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	return tw.Close()
}
