package k8s

import (
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

type networkingPeer = networkingv1.NetworkPolicyPeer

// endpoint is one end of a connection: a pod (its namespace, labels and
// ports) or an address outside the cluster.
type endpoint struct {
	name      string
	namespace string
	labels    map[string]string
	ports     *corev1.PodTemplateSpec
	ip        netip.Addr
}

func pod(name, ns string, lbls map[string]string, tpl *corev1.PodTemplateSpec) endpoint {
	return endpoint{name: name, namespace: ns, labels: lbls, ports: tpl}
}

func outside(addr string) endpoint {
	return endpoint{name: addr, ip: netip.MustParseAddr(addr)}
}

// allowed evaluates the NetworkPolicies as the Kubernetes network model
// defines them: a connection passes when the source's egress and the
// destination's ingress both allow it; a pod no policy of a direction
// selects is not isolated in that direction; policies add up.
func allowed(pols map[string]*networkingv1.NetworkPolicy, from, to endpoint, port int32, proto corev1.Protocol) bool {
	return side(pols, networkingv1.PolicyTypeEgress, from, to, port, proto) &&
		side(pols, networkingv1.PolicyTypeIngress, to, from, port, proto)
}

// side is one direction: subject's policies of that type must let the
// connection to (or from) other through, on the destination's port.
func side(pols map[string]*networkingv1.NetworkPolicy, typ networkingv1.PolicyType, subject, other endpoint, port int32, proto corev1.Protocol) bool {
	if subject.namespace == "" {
		return true // outside the cluster: no policy of ours applies
	}
	dst := other
	if typ == networkingv1.PolicyTypeIngress {
		dst = subject
	}
	isolated := false
	for _, p := range pols {
		if p.Namespace != subject.namespace || !hasType(p, typ) || !matches(&p.Spec.PodSelector, subject.labels) {
			continue
		}
		isolated = true
		if typ == networkingv1.PolicyTypeEgress {
			for _, r := range p.Spec.Egress {
				if peersMatch(r.To, p.Namespace, other) && portsMatch(r.Ports, dst, port, proto) {
					return true
				}
			}
		} else {
			for _, r := range p.Spec.Ingress {
				if peersMatch(r.From, p.Namespace, other) && portsMatch(r.Ports, dst, port, proto) {
					return true
				}
			}
		}
	}
	return !isolated
}

func hasType(p *networkingv1.NetworkPolicy, typ networkingv1.PolicyType) bool {
	for _, t := range p.Spec.PolicyTypes {
		if t == typ {
			return true
		}
	}
	// Without policyTypes, Ingress always, Egress when there are rules.
	return len(p.Spec.PolicyTypes) == 0 && (typ == networkingv1.PolicyTypeIngress || len(p.Spec.Egress) > 0)
}

func matches(sel *metav1.LabelSelector, lbls map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(lbls))
}

func peersMatch(peers []networkingv1.NetworkPolicyPeer, polNS string, e endpoint) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		if p.IPBlock != nil {
			if e.namespace != "" {
				continue
			}
			if prefix := netip.MustParsePrefix(p.IPBlock.CIDR); !prefix.Contains(e.ip) {
				continue
			}
			excluded := false
			for _, x := range p.IPBlock.Except {
				excluded = excluded || netip.MustParsePrefix(x).Contains(e.ip)
			}
			if !excluded {
				return true
			}
			continue
		}
		if e.namespace == "" {
			continue
		}
		nsOK := e.namespace == polNS
		if p.NamespaceSelector != nil {
			nsOK = matches(p.NamespaceSelector, map[string]string{"kubernetes.io/metadata.name": e.namespace})
		}
		if nsOK && (p.PodSelector == nil || matches(p.PodSelector, e.labels)) {
			return true
		}
	}
	return false
}

func portsMatch(ports []networkingv1.NetworkPolicyPort, dst endpoint, port int32, proto corev1.Protocol) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		switch {
		case p.Port == nil:
			return true
		case p.Port.Type == intstr.Int:
			end := p.Port.IntVal
			if p.EndPort != nil {
				end = *p.EndPort
			}
			if port >= p.Port.IntVal && port <= end {
				return true
			}
		default:
			// A named port is the destination pod's own port of that name.
			if dst.ports != nil {
				if cp, ok := containerPort(dst.ports, *p.Port, proto); ok && cp.ContainerPort == port {
					return true
				}
			}
		}
	}
	return false
}

type redisMode int

const (
	redisInCluster redisMode = iota
	redisManaged
)

// checkFlows plays the connections Pushback needs, which must pass, and
// the ones an attacker inside or outside the cluster would try, which
// must not: a compromised or curious pod elsewhere reaching Decide, the
// store or scoring; a service reaching a peer it never calls; notify,
// which sends to addresses operators configure, reaching the cloud
// metadata service or the cluster's private network (SSRF); a
// compromised Redis or scoring exfiltrating to the internet.
func checkFlows(t *testing.T, m *manifests, mode redisMode) {
	t.Helper()
	pods := map[string]endpoint{}
	for name, d := range m.Deployments {
		pods[strings.TrimPrefix(name, "pushback-")] = pod(name, namespace, d.Spec.Template.Labels, &d.Spec.Template)
	}
	var redis endpoint
	switch mode {
	case redisInCluster:
		s := m.StatefulSets["pushback-redis"]
		redis = pod("redis", namespace, s.Spec.Template.Labels, &s.Spec.Template)
	case redisManaged:
		redis = outside("10.20.0.5")
	}
	if def := m.Policies["default-deny"]; def == nil || len(def.Spec.PodSelector.MatchLabels)+len(def.Spec.PodSelector.MatchExpressions) != 0 ||
		!hasType(def, networkingv1.PolicyTypeIngress) || !hasType(def, networkingv1.PolicyTypeEgress) {
		t.Fatal("no default-deny policy selecting every pod for ingress and egress")
	}
	port := func(e endpoint, name string) int32 {
		cp, ok := containerPort(e.ports, intstr.FromString(name), corev1.ProtocolTCP)
		if !ok {
			t.Fatalf("%s has no port %s", e.name, name)
		}
		return cp.ContainerPort
	}
	controller := pod("ingress-nginx-controller", "ingress-nginx", map[string]string{"app.kubernetes.io/name": "ingress-nginx"}, nil)
	dns := pod("coredns", "kube-system", map[string]string{"k8s-app": "kube-dns"}, nil)
	stranger := pod("someone-else", "default", map[string]string{"app": "web"}, nil)
	strangerHere := pod("someone-else-here", namespace, map[string]string{"app": "debug"}, nil)
	caller := pod("radius-gate", "radius", map[string]string{"pushback-decide-client": "true"}, nil)
	internet := outside("203.0.113.10")
	metadata := outside("169.254.169.254")
	private := outside("10.1.2.3")

	type flow struct {
		from, to endpoint
		port     int32
		proto    corev1.Protocol
	}
	var must, mustNot []flow
	tcp := func(from, to endpoint, port int32) flow { return flow{from, to, port, corev1.ProtocolTCP} }

	// What the configuration says each service dials: its peers, Redis,
	// DNS and the collector.
	path := t.TempDir() + "/config.yaml"
	if err := os.WriteFile(path, []byte(m.ConfigMaps["pushback-config"].Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	edges := map[[2]string]bool{}
	for name, p := range pods {
		cfg := meshConfig(t, m.Deployments["pushback-"+name].Spec.Template.Spec.Containers, path)
		for _, peer := range peers(cfg) {
			to := strings.TrimPrefix(serviceOf(peer), "pushback-")
			edges[[2]string{name, to}] = true
			_, portStr, _ := strings.Cut(strings.TrimPrefix(peer, "dns:///"), ":")
			n, err := strconv.Atoi(portStr)
			if err != nil {
				t.Fatalf("peer %s: %v", peer, err)
			}
			must = append(must, tcp(p, pods[to], int32(n)))
		}
		must = append(must, tcp(p, redis, 6379), flow{p, dns, 53, corev1.ProtocolUDP}, tcp(p, dns, 53))
		for _, e := range m.Deployments["pushback-"+name].Spec.Template.Spec.Containers[0].Env {
			if e.Name != "OTEL_EXPORTER_OTLP_ENDPOINT" {
				continue
			}
			u, err := url.Parse(e.Value)
			if err != nil {
				t.Fatal(err)
			}
			_, ns, _ := strings.Cut(u.Hostname(), ".")
			n, _ := strconv.Atoi(u.Port())
			must = append(must, tcp(p, pod("otel-collector", ns, map[string]string{"app": "otel-collector"}, nil), int32(n)))
		}
		// No service calls a peer it was not given, on any port.
		for other, q := range pods {
			if other != name && !edges[[2]string{name, other}] {
				mustNot = append(mustNot, tcp(p, q, port(q, "grpc")), tcp(p, q, port(q, "http")))
			}
		}
		// Nothing of Pushback reaches the metadata service or the
		// cluster's private addresses, whatever the port.
		mustNot = append(mustNot, tcp(p, metadata, 80), tcp(p, metadata, 443), tcp(p, private, 443), tcp(p, internet, 22))
	}
	for _, want := range [][2]string{{"decision", "scoring"}, {"decision", "notify"}, {"intake", "scoring"}} {
		if !edges[want] {
			t.Errorf("%s is not given %s's address", want[0], want[1])
		}
	}
	must = append(must,
		tcp(controller, pods["intake"], port(pods["intake"], "http")),
		tcp(caller, pods["decision"], port(pods["decision"], "grpc")),
		tcp(caller, pods["decision"], port(pods["decision"], "http")),
		tcp(pods["notify"], internet, 443), tcp(pods["notify"], internet, 587),
		tcp(pods["intake"], internet, 443),
	)
	mustNot = append(mustNot,
		// The ingress controller reaches the webhooks and nothing else.
		tcp(controller, pods["intake"], port(pods["intake"], "grpc")),
		tcp(controller, pods["decision"], port(pods["decision"], "http")),
		tcp(controller, pods["scoring"], port(pods["scoring"], "http")),
		tcp(controller, pods["notify"], port(pods["notify"], "http")),
		// Unlabelled pods, here or elsewhere, reach nothing.
		tcp(stranger, pods["decision"], port(pods["decision"], "grpc")),
		tcp(stranger, pods["scoring"], port(pods["scoring"], "grpc")),
		tcp(stranger, pods["intake"], port(pods["intake"], "http")),
		tcp(strangerHere, pods["scoring"], port(pods["scoring"], "grpc")),
		tcp(caller, pods["scoring"], port(pods["scoring"], "grpc")),
		tcp(caller, pods["notify"], port(pods["notify"], "grpc")),
		// Services with no business outside stay inside.
		tcp(pods["decision"], internet, 443),
		tcp(pods["scoring"], internet, 443),
		tcp(pods["intake"], internet, 587),
	)
	if mode == redisInCluster {
		mustNot = append(mustNot,
			tcp(stranger, redis, 6379), tcp(strangerHere, redis, 6379), tcp(controller, redis, 6379),
			tcp(redis, internet, 443), tcp(redis, pods["scoring"], port(pods["scoring"], "grpc")),
		)
	}
	for _, f := range must {
		if !allowed(m.Policies, f.from, f.to, f.port, f.proto) {
			t.Errorf("blocked: %s -> %s:%d/%s, which Pushback needs", f.from.name, f.to.name, f.port, f.proto)
		}
	}
	for _, f := range mustNot {
		if allowed(m.Policies, f.from, f.to, f.port, f.proto) {
			t.Errorf("allowed: %s -> %s:%d/%s", f.from.name, f.to.name, f.port, f.proto)
		}
	}
	if t.Failed() {
		t.Log(describe(m.Policies))
	}
}

func describe(pols map[string]*networkingv1.NetworkPolicy) string {
	var b strings.Builder
	for n, p := range pols {
		fmt.Fprintf(&b, "%s: %v types %v\n", n, p.Spec.PodSelector, p.Spec.PolicyTypes)
	}
	return b.String()
}
