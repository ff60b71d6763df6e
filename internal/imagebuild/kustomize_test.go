package imagebuild

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.yaml.in/yaml/v3"
)

type kustomization struct {
	Resources []string `yaml:"resources"`
	Images    []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
		Digest  string `yaml:"digest"`
	} `yaml:"images"`
}

func TestPinImage(t *testing.T) {
	d1, _ := v1.NewHash("sha256:" + strings.Repeat("a", 64))
	d2, _ := v1.NewHash("sha256:" + strings.Repeat("b", 64))
	in := `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - pushback.yaml
images:
  # Redis, pinned by hand.
  - name: redis
    newTag: "7.2"
    digest: sha256:` + strings.Repeat("c", 64) + `
`
	out, err := PinImage([]byte(in), "pushback", "registry.example.com/pushback", d1)
	if err != nil {
		t.Fatal(err)
	}
	out, err = PinImage(out, "pushback", "", d2)
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.Unmarshal(out, &k); err != nil {
		t.Fatal(err)
	}
	if len(k.Images) != 2 || len(k.Resources) != 1 {
		t.Fatalf("images %+v resources %v", k.Images, k.Resources)
	}
	if r := k.Images[0]; r.Name != "redis" || r.NewTag != "7.2" || r.Digest != "sha256:"+strings.Repeat("c", 64) {
		t.Errorf("the other entry changed: %+v", r)
	}
	if p := k.Images[1]; p.Name != "pushback" || p.NewName != "registry.example.com/pushback" || p.Digest != d2.String() {
		t.Errorf("pushback entry %+v, want the second digest and the first newName", p)
	}
	if !strings.Contains(string(out), "# Redis, pinned by hand.") {
		t.Errorf("comment lost:\n%s", out)
	}

	for _, bad := range []string{"- a list\n", "images: {name: x}\n", "a: [\n"} {
		if _, err := PinImage([]byte(bad), "pushback", "", d1); err == nil {
			t.Errorf("PinImage(%q) succeeded", bad)
		}
	}
	if _, err := PinImage([]byte(in), "pushback", "", v1.Hash{Algorithm: "sha256", Hex: "abc"}); err == nil {
		t.Error("a short digest was pinned")
	}
}
