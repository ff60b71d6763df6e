// Package k8s holds the Kubernetes manifests of the split topology; its
// tests decode them into the Kubernetes API types, render them with
// kustomize as kubectl apply -k does, and check what the project relies
// on: selectors, probes, references, pinned images, the Ingress and the
// NetworkPolicies.
package k8s

import (
	"flag"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pushbackhq/pushback/services/decision/policy"
	"github.com/pushbackhq/pushback/services/mesh"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var update = flag.Bool("update", false, "regenerate policy-configmap.yaml from deploy/policy/default.yaml")

// namespace is where every object but the Namespace lives.
const namespace = "pushback"

// externalRedis is the overlay for a managed Redis.
const externalRedis = "../k8s-external-redis"

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
	data, err := os.ReadFile("policy-configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cm := decode(t, "policy-configmap.yaml", data).ConfigMaps["pushback-policy"]
	if cm == nil {
		t.Fatal("policy-configmap.yaml has no ConfigMap pushback-policy")
	}
	got := cm.Data["policy.yaml"]
	if strings.TrimSpace(got) != strings.TrimSpace(string(pol)) {
		t.Fatal("policy-configmap.yaml differs from deploy/policy/default.yaml; run go test ./deploy/k8s -update")
	}
	if _, err := policy.Parse(strings.NewReader(got)); err != nil {
		t.Fatalf("policy in the ConfigMap does not compile: %v", err)
	}
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// TestManifestFilesNameImagesPinnedByKustomize decodes every manifest
// file strictly, requires kustomization.yaml to list each of them, and
// every container image to be a bare name that its images: pins by
// digest, so that nothing runs a tag that can move.
func TestManifestFilesNameImagesPinnedByKustomize(t *testing.T) {
	k := readKustomization(t, "kustomization.yaml")
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pins := map[string]string{}
	for _, im := range k.Images {
		if !digestRE.MatchString(im.Digest) {
			t.Errorf("images: %s is pinned to %q, not a sha256 digest", im.Name, im.Digest)
		}
		if im.NewTag != "" {
			t.Errorf("images: %s has newTag %q; the digest alone names the image", im.Name, im.NewTag)
		}
		pins[im.Name] = im.Digest
	}
	for _, f := range files {
		if f == "kustomization.yaml" {
			continue
		}
		if !slices.Contains(k.Resources, f) {
			t.Errorf("%s is not in kustomization.yaml's resources", f)
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := decode(t, f, data)
		for w, tpl := range m.podTemplates() {
			for _, c := range containers(&tpl.Spec) {
				if strings.ContainsAny(c.Image, ":@/") {
					t.Errorf("%s: %s container %s names image %q; name it alone and pin it in kustomization.yaml", f, w, c.Name, c.Image)
				} else if pins[c.Image] == "" {
					t.Errorf("%s: %s container %s image %q is not pinned in kustomization.yaml", f, w, c.Name, c.Image)
				}
			}
		}
	}
	if pins["pushback"] == "" {
		t.Error("kustomization.yaml does not pin the pushback image")
	}
}

func TestRenderedManifests(t *testing.T) {
	m := render(t, ".")
	checkManifests(t, m)
	if len(m.StatefulSets) != 1 || m.StatefulSets["pushback-redis"] == nil {
		t.Fatalf("want the Redis StatefulSet; rendered %v", m)
	}
	t.Run("redis", func(t *testing.T) { checkRedis(t, m) })
	t.Run("ingress", func(t *testing.T) { checkIngress(t, m) })
	t.Run("network", func(t *testing.T) { checkFlows(t, m, redisInCluster) })
}

func TestRenderedExternalRedis(t *testing.T) {
	m := render(t, externalRedis)
	checkManifests(t, m)
	if len(m.StatefulSets) != 0 || m.Services["pushback-redis"] != nil || m.ConfigMaps["pushback-redis"] != nil || m.Policies["pushback-redis"] != nil {
		t.Fatalf("the external-redis overlay still runs Redis in the cluster: %v", m)
	}
	for name, d := range m.Deployments {
		found := false
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if e.Name == "PUSHBACK_REDIS_ADDR" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == "pushback-redis" {
				found = true
			}
		}
		if !found {
			t.Errorf("%s does not read PUSHBACK_REDIS_ADDR from the Secret pushback-redis", name)
		}
	}
	t.Run("ingress", func(t *testing.T) { checkIngress(t, m) })
	t.Run("network", func(t *testing.T) { checkFlows(t, m, redisManaged) })
}

// checkManifests checks what every rendered set must hold.
func checkManifests(t *testing.T, m *manifests) {
	t.Helper()
	if m.Namespaces[namespace] == nil {
		t.Errorf("no Namespace %s", namespace)
	}
	documented := documentedSecrets(t)
	templates := m.podTemplates()
	for w, tpl := range templates {
		t.Run(w, func(t *testing.T) {
			checkPod(t, m, tpl, documented)
		})
	}
	for name, d := range m.Deployments {
		checkSelector(t, "Deployment/"+name, d.Spec.Selector, d.Spec.Template.Labels)
	}
	for name, s := range m.StatefulSets {
		checkSelector(t, "StatefulSet/"+name, s.Spec.Selector, s.Spec.Template.Labels)
		gov := m.Services[s.Spec.ServiceName]
		if gov == nil || gov.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("StatefulSet/%s: serviceName %q is not a headless Service", name, s.Spec.ServiceName)
		}
		claims := map[string]bool{}
		for _, c := range s.Spec.VolumeClaimTemplates {
			claims[c.Name] = true
			if c.Spec.Resources.Requests.Storage().IsZero() {
				t.Errorf("StatefulSet/%s: claim %s requests no storage", name, c.Name)
			}
		}
		for _, c := range s.Spec.Template.Spec.Containers {
			for _, vm := range c.VolumeMounts {
				if !claims[vm.Name] && !hasVolume(&s.Spec.Template.Spec, vm.Name) {
					t.Errorf("StatefulSet/%s: mount %s is neither a volume nor a claim", name, vm.Name)
				}
			}
		}
	}
	for name, svc := range m.Services {
		selected := 0
		for w, tpl := range templates {
			if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(tpl.Labels)) {
				continue
			}
			selected++
			for _, p := range svc.Spec.Ports {
				if _, ok := containerPort(tpl, p.TargetPort, p.Protocol); !ok {
					t.Errorf("Service/%s port %s targets %s, which %s does not expose", name, p.Name, p.TargetPort.String(), w)
				}
			}
		}
		if selected == 0 {
			t.Errorf("Service/%s selects no pods", name)
		}
	}
	for name, pdb := range m.PDBs {
		if n := selects(t, templates, pdb.Spec.Selector); n == 0 {
			t.Errorf("PodDisruptionBudget/%s selects no pods", name)
		}
	}
	for name, hpa := range m.HPAs {
		ref := hpa.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || m.Deployments[ref.Name] == nil {
			t.Errorf("HorizontalPodAutoscaler/%s scales %s/%s, which is not here", name, ref.Kind, ref.Name)
		}
		if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 1 {
			t.Errorf("HorizontalPodAutoscaler/%s: minReplicas %v", name, hpa.Spec.MinReplicas)
		}
	}
	for name, pol := range m.Policies {
		if len(pol.Spec.PodSelector.MatchLabels)+len(pol.Spec.PodSelector.MatchExpressions) > 0 && selects(t, templates, &pol.Spec.PodSelector) == 0 {
			t.Errorf("NetworkPolicy/%s selects no pods", name)
		}
		for _, r := range pol.Spec.Ingress {
			checkPeers(t, "NetworkPolicy/"+name+" ingress", templates, r.From)
		}
		for _, r := range pol.Spec.Egress {
			checkPeers(t, "NetworkPolicy/"+name+" egress", templates, r.To)
		}
	}
	checkMesh(t, m)
}

// checkPod checks one pod template: probes on ports it exposes and paths
// pushback serves, resources, a non-root locked-down container, images
// pinned by digest, and every ConfigMap, Secret and volume it names.
func checkPod(t *testing.T, m *manifests, tpl *corev1.PodTemplateSpec, documented map[string]bool) {
	t.Helper()
	spec := &tpl.Spec
	if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot || spec.SecurityContext.RunAsUser == nil || *spec.SecurityContext.RunAsUser == 0 {
		t.Error("the pod may run as root")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token it has no use for")
	}
	for _, v := range spec.Volumes {
		switch {
		case v.ConfigMap != nil && m.ConfigMaps[v.ConfigMap.Name] == nil:
			t.Errorf("volume %s: no ConfigMap %s", v.Name, v.ConfigMap.Name)
		case v.Secret != nil && m.Secrets[v.Secret.SecretName] == nil && !documented[v.Secret.SecretName]:
			t.Errorf("volume %s: Secret %s is neither here nor among the documented Secrets to create", v.Name, v.Secret.SecretName)
		case v.PersistentVolumeClaim != nil:
			t.Errorf("volume %s: a PersistentVolumeClaim outside a StatefulSet's templates", v.Name)
		}
	}
	for _, c := range containers(spec) {
		if !regexp.MustCompile(`@sha256:[0-9a-f]{64}$`).MatchString(c.Image) {
			t.Errorf("container %s runs %q, not pinned by digest", c.Name, c.Image)
		}
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("container %s: want no privilege escalation, a read-only root and all capabilities dropped", c.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("container %s: cpu and memory requests and a memory limit are required", c.Name)
		}
		for _, vm := range c.VolumeMounts {
			if !hasVolume(spec, vm.Name) && !isClaim(m, tpl, vm.Name) {
				t.Errorf("container %s mounts %s, which is no volume", c.Name, vm.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil && m.Secrets[r.Name] == nil && !documented[r.Name] {
				t.Errorf("container %s env %s: Secret %s is neither here nor among the documented Secrets to create", c.Name, e.Name, r.Name)
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				if cm := m.ConfigMaps[r.Name]; cm == nil || cm.Data[r.Key] == "" {
					t.Errorf("container %s env %s: no key %s in ConfigMap %s", c.Name, e.Name, r.Key, r.Name)
				}
			}
		}
		probes := map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe}
		for kind, p := range probes {
			if p == nil {
				t.Errorf("container %s has no %s probe", c.Name, kind)
				continue
			}
			switch {
			case p.HTTPGet != nil:
				if _, ok := containerPort(tpl, p.HTTPGet.Port, corev1.ProtocolTCP); !ok {
					t.Errorf("container %s %s probe: port %s is not exposed", c.Name, kind, p.HTTPGet.Port.String())
				}
				want := mesh.LivenessPath
				if kind != "liveness" {
					want = mesh.ReadinessPath
				}
				if p.HTTPGet.Path != want {
					t.Errorf("container %s %s probe: path %q, want %q (served by services/mesh)", c.Name, kind, p.HTTPGet.Path, want)
				}
			case p.TCPSocket != nil:
				if _, ok := containerPort(tpl, p.TCPSocket.Port, corev1.ProtocolTCP); !ok {
					t.Errorf("container %s %s probe: port %s is not exposed", c.Name, kind, p.TCPSocket.Port.String())
				}
			case p.Exec != nil:
				if len(p.Exec.Command) == 0 {
					t.Errorf("container %s %s probe: empty command", c.Name, kind)
				}
			default:
				t.Errorf("container %s %s probe: no handler", c.Name, kind)
			}
		}
	}
}

func hasVolume(spec *corev1.PodSpec, name string) bool {
	return slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == name })
}

func isClaim(m *manifests, tpl *corev1.PodTemplateSpec, name string) bool {
	for _, s := range m.StatefulSets {
		if &s.Spec.Template == tpl {
			return slices.ContainsFunc(s.Spec.VolumeClaimTemplates, func(c corev1.PersistentVolumeClaim) bool { return c.Name == name })
		}
	}
	return false
}

// containerPort finds the port a Service, probe or policy names, by name
// or by number.
func containerPort(tpl *corev1.PodTemplateSpec, p intstr.IntOrString, proto corev1.Protocol) (corev1.ContainerPort, bool) {
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	for _, c := range tpl.Spec.Containers {
		for _, cp := range c.Ports {
			cpProto := cp.Protocol
			if cpProto == "" {
				cpProto = corev1.ProtocolTCP
			}
			if cpProto != proto {
				continue
			}
			if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
				return cp, true
			}
		}
	}
	return corev1.ContainerPort{}, false
}

func checkSelector(t *testing.T, what string, sel *metav1.LabelSelector, podLabels map[string]string) {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || sel == nil || s.Empty() {
		t.Errorf("%s: selector %v: %v", what, sel, err)
		return
	}
	if !s.Matches(labels.Set(podLabels)) {
		t.Errorf("%s: selector %s does not match its pod labels %v", what, s, podLabels)
	}
}

func selects(t *testing.T, templates map[string]*corev1.PodTemplateSpec, sel *metav1.LabelSelector) int {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("selector %v: %v", sel, err)
		return 0
	}
	n := 0
	for _, tpl := range templates {
		if s.Matches(labels.Set(tpl.Labels)) {
			n++
		}
	}
	return n
}

// checkPeers: a peer that names pods of this namespace must select some.
func checkPeers(t *testing.T, what string, templates map[string]*corev1.PodTemplateSpec, peers []networkingPeer) {
	t.Helper()
	for _, p := range peers {
		if p.NamespaceSelector == nil && p.IPBlock == nil && p.PodSelector != nil && selects(t, templates, p.PodSelector) == 0 {
			t.Errorf("%s: pod selector %v selects no pods here", what, p.PodSelector)
		}
		if p.IPBlock != nil {
			if _, _, err := net.ParseCIDR(p.IPBlock.CIDR); err != nil {
				t.Errorf("%s: %v", what, err)
			}
		}
	}
}

// documentedSecrets are the Secrets docs/deployment.md tells operators
// to create: a reference to any other Secret is a mistake in the
// manifests or in the docs.
func documentedSecrets(t *testing.T) map[string]bool {
	t.Helper()
	doc, err := os.ReadFile("../../docs/deployment.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "# Secrets to create\n")
	if !ok {
		t.Fatal(`docs/deployment.md has no "Secrets to create" section`)
	}
	section, _, _ = strings.Cut(section, "\n#")
	out := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z0-9-]+)` \\|").FindAllStringSubmatch(section, -1) {
		out[m[1]] = true
	}
	if len(out) == 0 {
		t.Fatal("docs/deployment.md lists no Secrets to create")
	}
	return out
}

// checkMesh checks each pushback Deployment: its arguments and the
// shared config file form a valid configuration for its one service,
// on Redis with mutual TLS, with a Service, a PodDisruptionBudget and
// an autoscaler, and peers that are Services.
func checkMesh(t *testing.T, m *manifests) {
	t.Helper()
	cfgYAML := ""
	if cm := m.ConfigMaps["pushback-config"]; cm != nil {
		cfgYAML = cm.Data["config.yaml"]
	}
	if cfgYAML == "" {
		t.Fatal("ConfigMap pushback-config has no config.yaml")
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfgYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	services := map[string]bool{}
	for name, d := range m.Deployments {
		component := strings.TrimPrefix(name, "pushback-")
		services[component] = true
		t.Run(name, func(t *testing.T) {
			cfg := meshConfig(t, d.Spec.Template.Spec.Containers, path)
			if !slices.Equal(cfg.Services, []string{component}) {
				t.Errorf("services = %v, want [%s]", cfg.Services, component)
			}
			if cfg.StoreKind != "redis" || !cfg.MutualTLS() {
				t.Errorf("store %q, mutual TLS %v; want redis with mutual TLS", cfg.StoreKind, cfg.MutualTLS())
			}
			if svc := m.Services[name]; svc == nil || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("no Service %s selecting its pods", name)
			}
			if pdb := m.PDBs[name]; pdb == nil || selects(t, map[string]*corev1.PodTemplateSpec{name: &d.Spec.Template}, pdb.Spec.Selector) != 1 {
				t.Error("PodDisruptionBudget missing or selecting other pods")
			}
			if hpa := m.HPAs[name]; hpa == nil || hpa.Spec.ScaleTargetRef.Name != name {
				t.Error("HorizontalPodAutoscaler missing or scaling something else")
			}
			for _, peer := range peers(cfg) {
				if m.Services[serviceOf(peer)] == nil {
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
}

// meshConfig loads the configuration a pushback container starts with.
// Variables set from Secrets get placeholders of the right shape.
func meshConfig(t *testing.T, cs []corev1.Container, configPath string) mesh.Config {
	t.Helper()
	if len(cs) != 1 {
		t.Fatalf("%d containers, want 1", len(cs))
	}
	c := cs[0]
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("args %v do not start with serve", c.Args)
	}
	var args []string
	for _, a := range c.Args[1:] {
		args = append(args, strings.Replace(a, "/etc/pushback/config/config.yaml", configPath, 1))
	}
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.Name == "PUSHBACK_REDIS_ADDR":
			env[e.Name] = "redis.example.com:6379"
		default:
			env[e.Name] = "placeholder-secret"
		}
	}
	cfg, err := mesh.Load(args, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("configuration is invalid: %v", err)
	}
	return cfg
}

func peers(cfg mesh.Config) []string {
	var out []string
	for _, a := range []string{cfg.IntakeAddr, cfg.ScoringAddr, cfg.DecisionAddr, cfg.NotifyAddr} {
		if a != "" {
			out = append(out, a)
		}
	}
	return out
}

// serviceOf is the Service a peer address (dns:///name:port) names.
func serviceOf(addr string) string {
	host, _, _ := strings.Cut(strings.TrimPrefix(addr, "dns:///"), ":")
	return host
}
