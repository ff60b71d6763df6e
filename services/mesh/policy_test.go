package mesh_test

import (
	"bufio"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"github.com/pushbackhq/pushback/services/mesh"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
)

// table is the authorization table a Pushback server enforces: what the
// services declare, and the server's own methods.
func table() map[string]auth.Rule {
	t := mesh.Policy()
	maps.Copy(t, auth.ServerRules())
	return t
}

// descs are every service a Pushback server serves.
func descs() []grpc.ServiceDesc {
	return []grpc.ServiceDesc{
		decisionv1.DecisionService_ServiceDesc, intakev1.IntakeService_ServiceDesc,
		scoringv1.ScoringService_ServiceDesc, notifyv1.NotificationService_ServiceDesc,
		healthpb.Health_ServiceDesc, reflectionv1.ServerReflection_ServiceDesc, reflectionv1alpha.ServerReflection_ServiceDesc,
	}
}

// A new RPC cannot ship unguarded: every method of every service has a
// rule, and the table names no method that does not exist.
func TestEveryMethodHasARule(t *testing.T) {
	rules := table()
	known := map[string]bool{}
	for _, d := range descs() {
		var names []string
		for _, m := range d.Methods {
			names = append(names, m.MethodName)
		}
		for _, s := range d.Streams {
			names = append(names, s.StreamName)
		}
		for _, n := range names {
			full := "/" + d.ServiceName + "/" + n
			known[full] = true
			r, ok := rules[full]
			if !ok {
				t.Errorf("%s has no rule in the table", full)
				continue
			}
			if !r.Anyone && !r.AnyCaller && len(r.Roles) == 0 {
				t.Errorf("%s: a rule that admits nobody", full)
			}
		}
	}
	for m := range rules {
		if !known[m] {
			t.Errorf("rule for %s, which no service has", m)
		}
	}

	// What a real server registers (health and reflection included) is
	// covered too.
	srv := rpc.NewServer(rpc.ServerOptions{})
	decisionv1.RegisterDecisionServiceServer(srv, decisionv1.UnimplementedDecisionServiceServer{})
	intakev1.RegisterIntakeServiceServer(srv, intakev1.UnimplementedIntakeServiceServer{})
	scoringv1.RegisterScoringServiceServer(srv, scoringv1.UnimplementedScoringServiceServer{})
	notifyv1.RegisterNotificationServiceServer(srv, notifyv1.UnimplementedNotificationServiceServer{})
	for svc, info := range srv.GetServiceInfo() {
		for _, m := range info.Methods {
			if _, ok := rules["/"+svc+"/"+m.Name]; !ok {
				t.Errorf("the server registers /%s/%s, which has no rule", svc, m.Name)
			}
		}
	}
}

// The attacks of the hardening issue, as the table stands: nobody outside
// the mesh writes to scoring or queues a notification, only health is open
// to anyone, and nothing is open to every caller but reflection.
func TestOutsidersNeverReachInternalMethods(t *testing.T) {
	outside := []auth.Role{auth.Hook, auth.LogShipper, auth.RiskReader, auth.Operator}
	rules := table()
	for _, m := range []string{
		scoringv1.ScoringService_Assess_FullMethodName, scoringv1.ScoringService_Observe_FullMethodName,
		notifyv1.NotificationService_Notify_FullMethodName,
	} {
		r := rules[m]
		for _, role := range r.Roles {
			if slices.Contains(outside, role) || r.Anyone || r.AnyCaller {
				t.Errorf("%s is open to %s", m, role)
			}
		}
	}
	if got := rules[scoringv1.ScoringService_Assess_FullMethodName].Roles; slices.Contains(got, auth.Intake) || slices.Contains(got, auth.Notify) {
		t.Errorf("Assess is open to %v; only decision records attempts", got)
	}
	for m, r := range rules {
		if r.Anyone && !strings.HasPrefix(m, "/grpc.health.v1.Health/") {
			t.Errorf("%s is open to anyone", m)
		}
		if r.AnyCaller && !strings.Contains(m, "ServerReflection") {
			t.Errorf("%s is open to every caller", m)
		}
	}
}

// docs/security.md shows the table; it must say what the code does.
func TestSecurityDocShowsTheTable(t *testing.T) {
	f, err := os.Open("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc := map[string][]string{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## Who may call what"
			continue
		}
		// Rows look like: | `pushback.decision.v1.DecisionService/Decide` | hook, mesh | why |
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if !strings.Contains(name, "/") {
			continue // the table of callers, not of methods
		}
		method := "/" + name
		var callers []string
		for _, c := range strings.Split(cells[2], ",") {
			callers = append(callers, strings.Trim(strings.TrimSpace(c), "`*"))
		}
		doc[method] = callers
	}
	rules := table()
	for m, r := range rules {
		got, ok := doc[m]
		if !ok {
			t.Errorf("docs/security.md does not show %s", m)
			continue
		}
		var want []string
		switch {
		case r.Anyone:
			want = []string{"anyone"}
		case r.AnyCaller:
			want = []string{"any authenticated caller"}
		default:
			for _, role := range r.Roles {
				want = append(want, string(role))
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("docs/security.md shows %s open to %v; the table says %v", m, got, want)
		}
	}
	for m := range doc {
		if _, ok := rules[m]; !ok {
			t.Errorf("docs/security.md shows %s, which the table does not have", m)
		}
	}
}

// The services' tables name only roles the guard knows.
func TestPolicyNamesOnlyKnownRoles(t *testing.T) {
	for m, r := range mesh.Policy() {
		for _, role := range r.Roles {
			if !slices.Contains(auth.Roles(), role) {
				t.Errorf("%s names the unknown role %q", m, role)
			}
		}
	}
}
