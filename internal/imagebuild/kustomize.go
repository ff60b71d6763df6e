package imagebuild

import (
	"bytes"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.yaml.in/yaml/v3"
)

// PinImage sets, in a kustomization.yaml, the digest (and the newName,
// when given) of the images: entry for name, adding the entry when there
// is none. Comments and the other entries are kept. The manifests name
// the image by name alone, so this one entry decides what every pod runs.
func PinImage(kustomization []byte, name, newName string, digest v1.Hash) ([]byte, error) {
	if name == "" {
		return nil, errors.New("pin image: no image name")
	}
	if digest.Algorithm != "sha256" || len(digest.Hex) != 64 {
		return nil, fmt.Errorf("pin image: %q is not a sha256 digest", digest)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(kustomization, &doc); err != nil {
		return nil, fmt.Errorf("pin image: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("pin image: the kustomization is not a YAML mapping")
	}
	root := doc.Content[0]
	images := value(root, "images")
	if images == nil {
		images = &yaml.Node{Kind: yaml.SequenceNode}
		root.Content = append(root.Content, scalar("images"), images)
	}
	if images.Kind != yaml.SequenceNode {
		return nil, errors.New("pin image: images is not a list")
	}
	var entry *yaml.Node
	for _, e := range images.Content {
		if n := value(e, "name"); n != nil && n.Value == name {
			entry = e
		}
	}
	if entry == nil {
		entry = &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{scalar("name"), scalar(name)}}
		images.Content = append(images.Content, entry)
	}
	if newName != "" {
		set(entry, "newName", newName)
	}
	set(entry, "digest", digest.String())
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func scalar(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

// value is the value of key in mapping m, nil when absent.
func value(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func set(m *yaml.Node, key, v string) {
	if n := value(m, key); n != nil {
		n.Kind, n.Tag, n.Value, n.Style = yaml.ScalarNode, "!!str", v, 0
		return
	}
	m.Content = append(m.Content, scalar(key), scalar(v))
}
