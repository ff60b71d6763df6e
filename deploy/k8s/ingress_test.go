package k8s

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pushbackhq/pushback/pkg/component"
	"github.com/pushbackhq/pushback/services/console"
	"github.com/pushbackhq/pushback/services/decision"
	"github.com/pushbackhq/pushback/services/intake"
	"github.com/pushbackhq/pushback/services/mesh"
	"github.com/pushbackhq/pushback/services/notify"
	"github.com/pushbackhq/pushback/services/scoring"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// idleConn stands for intake's peer: building the routes does not call it.
type idleConn struct{}

func (idleConn) Invoke(context.Context, string, any, any, ...grpc.CallOption) error {
	return errors.New("not connected")
}

func (idleConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, errors.New("not connected")
}

// ingestRoutes are the HTTP routes intake registers, as Ingress paths:
// a ServeMux subtree pattern ("/x/") is a Prefix, any other an Exact.
func ingestRoutes(t *testing.T) ([]networkingv1.HTTPIngressPath, []component.Route) {
	t.Helper()
	routes, err := intake.Routes("token", component.Deps{
		Logger: slog.New(slog.DiscardHandler),
		Peer:   func(string) (grpc.ClientConnInterface, error) { return idleConn{}, nil },
	})
	if err != nil || len(routes) == 0 {
		t.Fatalf("intake.Routes: %d routes, %v", len(routes), err)
	}
	var out []networkingv1.HTTPIngressPath
	for _, r := range routes {
		p := muxPath(r.Pattern)
		typ := networkingv1.PathTypeExact
		if strings.HasSuffix(p, "/") {
			typ = networkingv1.PathTypePrefix
		}
		out = append(out, networkingv1.HTTPIngressPath{Path: p, PathType: &typ})
	}
	return out, routes
}

// muxPath drops the method (and host) of a ServeMux pattern.
func muxPath(pattern string) string {
	if _, p, ok := strings.Cut(pattern, " "); ok {
		pattern = p
	}
	return pattern[strings.Index(pattern, "/"):]
}

// servedElsewhere are paths pushback serves that IdPs have no business
// reaching: every other service's routes, the RPCs as JSON (from the
// contracts' google.api.http bindings), probes and metrics, and paths
// that only look like the ingest ones.
func servedElsewhere(t *testing.T) []string {
	t.Helper()
	paths := []string{
		muxPath(decision.DecideRoute), scoring.FeedPath, notify.ReportPath, notify.JWKSPath, console.Prefix, console.Prefix + "signin",
		"/metrics", mesh.LivenessPath, mesh.ReadinessPath, "/v1/openapi.json", "/",
		"/v1", "/v1/", "/v1/ingestx", "/v1/ingest-admin", "/V1/ingest/okta", "/v1/Ingest/okta",
	}
	variable := regexp.MustCompile(`\{[^}]*\}`)
	protoregistry.GlobalFiles.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(string(f.Package()), "pushback.") {
			return true
		}
		for i := 0; i < f.Services().Len(); i++ {
			ms := f.Services().Get(i).Methods()
			for j := 0; j < ms.Len(); j++ {
				rule, ok := proto.GetExtension(ms.Get(j).Options(), annotations.E_Http).(*annotations.HttpRule)
				if !ok || rule == nil {
					continue
				}
				for _, b := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
					p := b.GetGet() + b.GetPost() + b.GetPut() + b.GetDelete() + b.GetPatch()
					if p != "" {
						paths = append(paths, variable.ReplaceAllString(p, "x"))
					}
				}
			}
		}
		return true
	})
	if len(paths) < 20 {
		t.Fatalf("found only %d paths; the contracts' HTTP bindings are not registered", len(paths))
	}
	return paths
}

// ingressMatches is the Kubernetes Ingress path match: Exact compares
// the whole path, case-sensitively; Prefix compares path elements split
// by "/", ignoring a trailing slash, so /v1/ingest/ matches /v1/ingest
// and /v1/ingest/okta but not /v1/ingestx.
func ingressMatches(p networkingv1.HTTPIngressPath, path string) bool {
	switch *p.PathType {
	case networkingv1.PathTypeExact:
		return path == p.Path
	case networkingv1.PathTypePrefix:
		want := strings.Split(strings.Trim(p.Path, "/"), "/")
		got := strings.Split(strings.Trim(path, "/"), "/")
		if strings.Trim(p.Path, "/") == "" {
			return true
		}
		return len(got) >= len(want) && slices.Equal(got[:len(want)], want)
	}
	return false
}

func checkIngress(t *testing.T, m *manifests) {
	want, routes := ingestRoutes(t)
	if len(m.Ingresses) != 1 {
		t.Fatalf("%d Ingresses, want the one for the webhooks", len(m.Ingresses))
	}
	for name, ing := range m.Ingresses {
		if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName == "" {
			t.Errorf("Ingress/%s has no ingressClassName", name)
		}
		if ing.Spec.DefaultBackend != nil {
			t.Errorf("Ingress/%s has a default backend: everything else would reach it", name)
		}
		tlsHosts := map[string]bool{}
		for _, tls := range ing.Spec.TLS {
			if tls.SecretName == "" {
				t.Errorf("Ingress/%s: TLS without a secretName", name)
			}
			for _, h := range tls.Hosts {
				tlsHosts[h] = true
			}
		}
		var got []networkingv1.HTTPIngressPath
		for _, r := range ing.Spec.Rules {
			if r.Host == "" || !tlsHosts[r.Host] {
				t.Errorf("Ingress/%s: host %q is not served over TLS", name, r.Host)
			}
			if r.HTTP == nil {
				t.Errorf("Ingress/%s: rule without paths", name)
				continue
			}
			for _, p := range r.HTTP.Paths {
				got = append(got, networkingv1.HTTPIngressPath{Path: p.Path, PathType: p.PathType})
				b := p.Backend.Service
				if b == nil {
					t.Errorf("Ingress/%s %s: no Service backend", name, p.Path)
					continue
				}
				svc := m.Services[b.Name]
				if svc == nil || b.Name != "pushback-intake" {
					t.Errorf("Ingress/%s %s: backend %s, want the Service pushback-intake", name, p.Path, b.Name)
					continue
				}
				if !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool {
					return (b.Port.Name != "" && sp.Name == b.Port.Name) || (b.Port.Number != 0 && sp.Port == b.Port.Number)
				}) {
					t.Errorf("Ingress/%s %s: Service %s has no port %v", name, p.Path, b.Name, b.Port)
				}
			}
		}
		key := func(p networkingv1.HTTPIngressPath) string { return string(*p.PathType) + " " + p.Path }
		gotKeys, wantKeys := mapKeys(got, key), mapKeys(want, key)
		if !slices.Equal(gotKeys, wantKeys) {
			t.Errorf("Ingress/%s paths %q, want exactly intake's routes %q", name, gotKeys, wantKeys)
		}

		// The attack: a caller on the internet asks the Ingress for
		// anything else pushback serves.
		for _, path := range servedElsewhere(t) {
			for _, p := range got {
				if p.PathType != nil && ingressMatches(p, path) {
					t.Errorf("Ingress/%s path %s %s lets %s through", name, *p.PathType, p.Path, path)
				}
			}
		}
		for _, path := range []string{"/v1/ingest", "/v1/ingest/okta", "/v1/ingest/entra", "/v1/ingest/ocsf"} {
			if !slices.ContainsFunc(got, func(p networkingv1.HTTPIngressPath) bool { return p.PathType != nil && ingressMatches(p, path) }) {
				t.Errorf("Ingress/%s does not route %s", name, path)
			}
		}
	}

	// A path the Ingress lets through because it starts with
	// /v1/ingest/ but climbs out of it is not served by another handler:
	// ServeMux redirects to the clean path, which the Ingress refuses.
	mux := http.NewServeMux()
	for _, r := range routes {
		mux.Handle(r.Pattern, r.Handler)
	}
	reached := false
	mux.HandleFunc(decision.DecideRoute, func(http.ResponseWriter, *http.Request) { reached = true })
	for _, target := range []string{"/v1/ingest/../decide", "/v1/ingest/%2e%2e/decide", "/v1/ingest/okta/../../decide"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, target, strings.NewReader("{}")))
		if reached || rec.Code/100 == 2 {
			t.Errorf("%s reached another handler through the ingest prefix (status %d)", target, rec.Code)
		}
	}
}

func mapKeys[T any](xs []T, key func(T) string) []string {
	var out []string
	for _, x := range xs {
		out = append(out, key(x))
	}
	slices.Sort(out)
	return out
}

// checkRedis: the in-cluster Redis keeps its data on a claim, in the
// append-only file, fsynced every second, and never evicts.
func checkRedis(t *testing.T, m *manifests) {
	s := m.StatefulSets["pushback-redis"]
	conf := m.ConfigMaps["pushback-redis"]
	if conf == nil {
		t.Fatal("no ConfigMap pushback-redis")
	}
	settings := map[string]string{}
	for _, l := range strings.Split(conf.Data["redis.conf"], "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, _ := strings.Cut(l, " ")
		settings[k] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	for k, v := range map[string]string{"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction", "dir": "/data", "port": "6379"} {
		if settings[k] != v {
			t.Errorf("redis.conf %s = %q, want %q", k, settings[k], v)
		}
	}
	c := s.Spec.Template.Spec.Containers[0]
	if len(c.Command) == 0 || !slices.Contains(c.Args, "/etc/redis/redis.conf") {
		t.Errorf("redis does not start from its config file: command %v args %v", c.Command, c.Args)
	}
	mounted := map[string]string{}
	for _, vm := range c.VolumeMounts {
		mounted[vm.MountPath] = vm.Name
	}
	if len(s.Spec.VolumeClaimTemplates) != 1 || mounted[settings["dir"]] != s.Spec.VolumeClaimTemplates[0].Name {
		t.Errorf("Redis's dir %s is not on the StatefulSet's claim (mounts %v)", settings["dir"], mounted)
	}
	if mounted["/etc/redis"] == "" {
		t.Error("redis.conf is not mounted at /etc/redis")
	}
	if s.Spec.Replicas == nil || *s.Spec.Replicas != 1 {
		t.Errorf("Redis replicas %v: Pushback speaks to one primary", s.Spec.Replicas)
	}
	svc := m.Services["pushback-redis"]
	cfg := m.ConfigMaps["pushback-config"].Data["config.yaml"]
	if svc == nil || !strings.Contains(cfg, "redis-addr: pushback-redis:6379") || svc.Spec.Ports[0].Port != 6379 {
		t.Error("pushback's redis-addr does not name the Redis Service's port")
	}
}
