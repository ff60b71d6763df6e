// Package k8s holds the Kubernetes manifests of the split topology; its test
// checks the fields the project relies on.
package k8s

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pushbackhq/pushback/services/decision/policy"
	"github.com/pushbackhq/pushback/services/mesh"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "regenerate policy-configmap.yaml from deploy/policy/default.yaml")

type object = map[string]any

func load(t *testing.T, files ...string) map[string]map[string]object {
	t.Helper()
	out := map[string]map[string]object{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var o object
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o == nil {
				continue
			}
			kind, name := str(o, "kind"), str(o, "metadata", "name")
			if kind == "" || name == "" {
				t.Fatalf("%s: object without kind or name: %v", f, o)
			}
			if out[kind] == nil {
				out[kind] = map[string]object{}
			}
			if _, dup := out[kind][name]; dup {
				t.Fatalf("%s: duplicate %s/%s", f, kind, name)
			}
			out[kind][name] = o
		}
	}
	return out
}

func get(o any, path ...string) any {
	for _, p := range path {
		m, ok := o.(object)
		if !ok {
			return nil
		}
		o = m[p]
	}
	return o
}

func str(o any, path ...string) string { s, _ := get(o, path...).(string); return s }

func list(o any, path ...string) []any { l, _ := get(o, path...).([]any); return l }

func TestPolicyConfigMapMatchesDefaultPolicy(t *testing.T) {
	pol, err := os.ReadFile("../policy/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		var b strings.Builder
		b.WriteString("# Generated from deploy/policy/default.yaml (go test ./deploy/k8s -update).\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: pushback-policy\n  namespace: pushback\ndata:\n  policy.yaml: |\n")
		for _, l := range strings.SplitAfter(string(pol), "\n") {
			if strings.TrimSpace(l) == "" {
				if l != "" {
					b.WriteString("\n")
				}
				continue
			}
			b.WriteString("    " + l)
		}
		if err := os.WriteFile("policy-configmap.yaml", []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	objs := load(t, "policy-configmap.yaml")
	got := str(objs["ConfigMap"]["pushback-policy"], "data", "policy.yaml")
	if strings.TrimSpace(got) != strings.TrimSpace(string(pol)) {
		t.Fatal("policy-configmap.yaml differs from deploy/policy/default.yaml; run go test ./deploy/k8s -update")
	}
	if _, err := policy.Parse(strings.NewReader(got)); err != nil {
		t.Fatalf("policy in the ConfigMap does not compile: %v", err)
	}
}

func TestManifests(t *testing.T) {
	objs := load(t, "pushback.yaml", "policy-configmap.yaml")
	cfgYAML := str(objs["ConfigMap"]["pushback-config"], "data", "config.yaml")
	if cfgYAML == "" {
		t.Fatal("ConfigMap pushback-config has no config.yaml")
	}
	path := t.TempDir() + "/config.yaml"
	if err := os.WriteFile(path, []byte(cfgYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	services := map[string]bool{}
	for name, dep := range objs["Deployment"] {
		if name == "pushback-redis" {
			continue
		}
		component := strings.TrimPrefix(name, "pushback-")
		services[component] = true
		t.Run(name, func(t *testing.T) {
			labels := get(dep, "spec", "template", "metadata", "labels")
			sel := get(dep, "spec", "selector", "matchLabels").(object)
			for k, v := range sel {
				if get(labels, k) != v {
					t.Errorf("selector %s=%v does not match the pod labels", k, v)
				}
			}
			containers := list(dep, "spec", "template", "spec", "containers")
			if len(containers) != 1 {
				t.Fatalf("%d containers, want 1", len(containers))
			}
			c := containers[0]
			var args []string
			for _, a := range list(c, "args") {
				args = append(args, a.(string))
			}
			if len(args) == 0 || args[0] != "serve" {
				t.Fatalf("args %v do not start with serve", args)
			}
			// The arguments and the shared config file form a valid configuration.
			cfgArgs := []string{}
			for _, a := range args[1:] {
				cfgArgs = append(cfgArgs, strings.Replace(a, "/etc/pushback/config/config.yaml", path, 1))
			}
			// Variables set from Secrets get placeholder values.
			env := map[string]string{}
			for _, e := range list(c, "env") {
				if get(e, "valueFrom", "secretKeyRef") != nil {
					env[str(e, "name")] = "placeholder-secret"
				} else {
					env[str(e, "name")] = str(e, "value")
				}
			}
			cfg, err := mesh.Load(cfgArgs, func(k string) string { return env[k] })
			if err != nil {
				t.Fatalf("configuration of %s is invalid: %v", name, err)
			}
			if !slices.Equal(cfg.Services, []string{component}) {
				t.Errorf("services = %v, want [%s]", cfg.Services, component)
			}
			if cfg.StoreKind != "redis" || !cfg.MutualTLS() {
				t.Errorf("store %q, mutual TLS %v; want redis with mutual TLS", cfg.StoreKind, cfg.MutualTLS())
			}
			for _, probe := range []string{"readinessProbe", "livenessProbe", "startupProbe"} {
				p := get(c, probe)
				if p == nil {
					t.Errorf("no %s", probe)
					continue
				}
				if hp := str(p, "httpGet", "path"); hp != "/readyz" && hp != "/healthz" {
					t.Errorf("%s probes %q, want /readyz or /healthz", probe, hp)
				}
			}
			if get(c, "resources", "requests", "cpu") == nil || get(c, "resources", "requests", "memory") == nil {
				t.Error("no resource requests (the HPA needs cpu requests)")
			}
			ports := map[string]bool{}
			for _, p := range list(c, "ports") {
				ports[str(p, "name")] = true
			}
			svc := objs["Service"][name]
			if svc == nil {
				t.Fatalf("no Service %s", name)
			}
			for _, p := range list(svc, "spec", "ports") {
				if tp := str(p, "targetPort"); !ports[tp] {
					t.Errorf("Service port targets %q, not a container port", tp)
				}
			}
			for k, v := range get(svc, "spec", "selector").(object) {
				if get(labels, k) != v {
					t.Errorf("Service selector %s=%v does not match the pods", k, v)
				}
			}
			pdb := objs["PodDisruptionBudget"][name]
			if pdb == nil || fmt.Sprint(get(pdb, "spec", "selector", "matchLabels")) != fmt.Sprint(sel) {
				t.Errorf("PodDisruptionBudget missing or selecting other pods")
			}
			hpa := objs["HorizontalPodAutoscaler"][name]
			if hpa == nil || str(hpa, "spec", "scaleTargetRef", "name") != name || str(hpa, "spec", "scaleTargetRef", "kind") != "Deployment" {
				t.Errorf("HorizontalPodAutoscaler missing or scaling something else")
			}
			if min, _ := get(hpa, "spec", "minReplicas").(int); min < 1 {
				t.Errorf("HPA minReplicas %v", get(hpa, "spec", "minReplicas"))
			}
			for _, peer := range []string{cfg.ScoringAddr, cfg.NotifyAddr} {
				if peer == "" {
					continue
				}
				host, _, _ := strings.Cut(strings.TrimPrefix(peer, "dns:///"), ":")
				if objs["Service"][host] == nil {
					t.Errorf("peer address %s names no Service", peer)
				}
			}
		})
	}
	for _, s := range mesh.AllServices {
		if !services[s] {
			t.Errorf("no Deployment for %s", s)
		}
	}
	if objs["Service"]["pushback-redis"] == nil {
		t.Error("no Redis Service")
	}
}
