package k8s

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// manifests are the objects of a set of manifests, by name, decoded into
// the Kubernetes API types.
type manifests struct {
	Namespaces   map[string]*corev1.Namespace
	ConfigMaps   map[string]*corev1.ConfigMap
	Secrets      map[string]*corev1.Secret
	Services     map[string]*corev1.Service
	Deployments  map[string]*appsv1.Deployment
	StatefulSets map[string]*appsv1.StatefulSet
	PDBs         map[string]*policyv1.PodDisruptionBudget
	HPAs         map[string]*autoscalingv2.HorizontalPodAutoscaler
	Ingresses    map[string]*networkingv1.Ingress
	Policies     map[string]*networkingv1.NetworkPolicy
}

func newManifests() *manifests {
	return &manifests{
		Namespaces: map[string]*corev1.Namespace{}, ConfigMaps: map[string]*corev1.ConfigMap{}, Secrets: map[string]*corev1.Secret{},
		Services: map[string]*corev1.Service{}, Deployments: map[string]*appsv1.Deployment{}, StatefulSets: map[string]*appsv1.StatefulSet{},
		PDBs: map[string]*policyv1.PodDisruptionBudget{}, HPAs: map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		Ingresses: map[string]*networkingv1.Ingress{}, Policies: map[string]*networkingv1.NetworkPolicy{},
	}
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decode reads every YAML document into its API type, strictly: a field
// the type does not have (a misspelt or misplaced key, silently dropped
// by a lenient decoder and so by nobody noticed) fails.
func decode(t *testing.T, source string, data []byte) *manifests {
	t.Helper()
	m := newManifests()
	for i, doc := range docSeparator.Split(string(data), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("%s, document %d: %v", source, i, err)
		}
		var obj metav1.Object
		var put func()
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 Namespace":
			o := &corev1.Namespace{}
			obj, put = o, func() { add(t, m.Namespaces, o.Name, o) }
		case "v1 ConfigMap":
			o := &corev1.ConfigMap{}
			obj, put = o, func() { add(t, m.ConfigMaps, o.Name, o) }
		case "v1 Secret":
			o := &corev1.Secret{}
			obj, put = o, func() { add(t, m.Secrets, o.Name, o) }
		case "v1 Service":
			o := &corev1.Service{}
			obj, put = o, func() { add(t, m.Services, o.Name, o) }
		case "apps/v1 Deployment":
			o := &appsv1.Deployment{}
			obj, put = o, func() { add(t, m.Deployments, o.Name, o) }
		case "apps/v1 StatefulSet":
			o := &appsv1.StatefulSet{}
			obj, put = o, func() { add(t, m.StatefulSets, o.Name, o) }
		case "policy/v1 PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			obj, put = o, func() { add(t, m.PDBs, o.Name, o) }
		case "autoscaling/v2 HorizontalPodAutoscaler":
			o := &autoscalingv2.HorizontalPodAutoscaler{}
			obj, put = o, func() { add(t, m.HPAs, o.Name, o) }
		case "networking.k8s.io/v1 Ingress":
			o := &networkingv1.Ingress{}
			obj, put = o, func() { add(t, m.Ingresses, o.Name, o) }
		case "networking.k8s.io/v1 NetworkPolicy":
			o := &networkingv1.NetworkPolicy{}
			obj, put = o, func() { add(t, m.Policies, o.Name, o) }
		default:
			t.Fatalf("%s, document %d: kind %q %q is not one this test knows; add it", source, i, tm.APIVersion, tm.Kind)
		}
		// As the API server decodes: field names are case-sensitive, and
		// unknown or duplicate fields are errors.
		js, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			t.Fatalf("%s, %s: %v", source, tm.Kind, err)
		}
		strict, err := sigsjson.UnmarshalStrict(js, obj)
		if err != nil {
			t.Fatalf("%s, %s: %v", source, tm.Kind, err)
		}
		if len(strict) > 0 {
			t.Fatalf("%s, %s: %v", source, tm.Kind, errors.Join(strict...))
		}
		if obj.GetName() == "" {
			t.Fatalf("%s, document %d: %s without a name", source, i, tm.Kind)
		}
		if tm.Kind != "Namespace" && obj.GetNamespace() != namespace {
			t.Errorf("%s: %s/%s in namespace %q, want %q", source, tm.Kind, obj.GetName(), obj.GetNamespace(), namespace)
		}
		put()
	}
	return m
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func add[T any](t *testing.T, m map[string]T, name string, o T) {
	t.Helper()
	if _, dup := m[name]; dup {
		t.Fatalf("duplicate %T %s", o, name)
	}
	m[name] = o
}

// render builds a kustomization as kubectl apply -k does, and decodes
// what it gives.
func render(t *testing.T, dir string) *manifests {
	t.Helper()
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	out, err := rm.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, "kustomize build "+dir, out)
}

// kustomization is the part of kustomization.yaml the tests read.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
		Digest  string `json:"digest"`
	} `json:"images"`
}

func readKustomization(t *testing.T, path string) kustomization {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return k
}

// podTemplates are the workloads' pod templates, by workload name.
func (m *manifests) podTemplates() map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for n, d := range m.Deployments {
		out["Deployment/"+n] = &d.Spec.Template
	}
	for n, s := range m.StatefulSets {
		out["StatefulSet/"+n] = &s.Spec.Template
	}
	return out
}

func containers(spec *corev1.PodSpec) []corev1.Container {
	return append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
}

func (m *manifests) String() string {
	var b bytes.Buffer
	for _, kind := range []struct {
		name string
		n    int
	}{{"Deployment", len(m.Deployments)}, {"StatefulSet", len(m.StatefulSets)}, {"Service", len(m.Services)}, {"NetworkPolicy", len(m.Policies)}, {"Ingress", len(m.Ingresses)}} {
		fmt.Fprintf(&b, "%d %s ", kind.n, kind.name)
	}
	return b.String()
}
