package mesh

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pushbackhq/pushback/api/openapi"
	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"google.golang.org/genproto/googleapis/api/annotations"
)

// allRoutes are the HTTP routes of a process that runs every service.
func allRoutes(t *testing.T) []httpRoute {
	t.Helper()
	srv := rpc.NewServer(rpc.ServerOptions{})
	decisionv1.RegisterDecisionServiceServer(srv, decisionv1.UnimplementedDecisionServiceServer{})
	intakev1.RegisterIntakeServiceServer(srv, intakev1.UnimplementedIntakeServiceServer{})
	scoringv1.RegisterScoringServiceServer(srv, scoringv1.UnimplementedScoringServiceServer{})
	notifyv1.RegisterNotificationServiceServer(srv, notifyv1.UnimplementedNotificationServiceServer{})
	routes, err := httpRoutes(srv.Server)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restHandler(srv.Server, routes); err != nil {
		t.Fatal(err)
	}
	return routes
}

// The HTTP routes are exactly the RPCs that people and scripts call, each
// open to an outside role in pkg/auth's table: no route reaches a method
// only services call (Assess, Observe, Notify), and Decide and ingest keep
// their hand-written routes.
func TestHTTPRoutesAreTheOutsideCallersRPCs(t *testing.T) {
	want := map[string]string{
		decisionv1.DecisionService_GetDecision_FullMethodName:      "GET /v1/decisions/{decision_id}",
		decisionv1.DecisionService_ListDecisions_FullMethodName:    "GET /v1/decisions",
		decisionv1.DecisionService_ClearCooldown_FullMethodName:    "POST /v1/cooldowns:clear",
		decisionv1.DecisionService_GetCooldown_FullMethodName:      "GET /v1/cooldowns",
		scoringv1.ScoringService_GetRisk_FullMethodName:            "GET /v1/risk",
		intakev1.IntakeService_ListEvents_FullMethodName:           "GET /v1/events",
		notifyv1.NotificationService_ListDeliveries_FullMethodName: "GET /v1/deliveries",
		notifyv1.NotificationService_ListIncidents_FullMethodName:  "GET /v1/incidents",
		notifyv1.NotificationService_GetIncident_FullMethodName:    "GET /v1/incidents/{incident_id}",
		notifyv1.NotificationService_ReleaseActions_FullMethodName: "POST /v1/actions:release",
	}
	got := map[string]string{}
	for _, r := range allRoutes(t) {
		got[r.method] = r.pattern
	}
	for m, p := range want {
		if got[m] != p {
			t.Errorf("%s: route %q, want %q", m, got[m], p)
		}
	}
	outside := []auth.Role{auth.Operator, auth.RiskReader, auth.Hook, auth.LogShipper}
	rules := Policy()
	for m, p := range got {
		if _, ok := want[m]; !ok {
			t.Errorf("unexpected route %s for %s", p, m)
		}
		r := rules[m]
		if r.Anyone || r.AnyCaller || !slices.ContainsFunc(r.Roles, func(role auth.Role) bool { return slices.Contains(outside, role) }) {
			t.Errorf("%s (%s) is not an outside caller's method: %+v", p, m, r)
		}
	}
}

// muxPattern serves only the templates the mux matches as the transcoder
// does; anything else fails the start, never routes differently.
func TestMuxPatternRefusesTemplatesItCannotMatchAlike(t *testing.T) {
	for _, tc := range []struct {
		rule *annotations.HttpRule
		want string
	}{
		{&annotations.HttpRule{Pattern: &annotations.HttpRule_Get{Get: "/v1/decisions/{decision_id}"}}, "GET /v1/decisions/{decision_id}"},
		{&annotations.HttpRule{Pattern: &annotations.HttpRule_Post{Post: "/v1/cooldowns:clear"}}, "POST /v1/cooldowns:clear"},
		{&annotations.HttpRule{Pattern: &annotations.HttpRule_Delete{Delete: "/v1/users/{user_id}/cooldown"}}, "DELETE /v1/users/{user_id}/cooldown"},
		{&annotations.HttpRule{Pattern: &annotations.HttpRule_Get{Get: "/v1/{name=decisions/*}"}}, ""},
		{&annotations.HttpRule{Pattern: &annotations.HttpRule_Get{Get: "/v1/files/{path=**}"}}, ""},
		{&annotations.HttpRule{Pattern: &annotations.HttpRule_Get{Get: "/v1/a/{client.ip}"}}, ""},
		{&annotations.HttpRule{Pattern: &annotations.HttpRule_Get{Get: "/v1/a/*"}}, ""},
		{&annotations.HttpRule{Pattern: &annotations.HttpRule_Post{Post: "/v1/a/{id}:clear"}}, ""},
		{&annotations.HttpRule{Pattern: &annotations.HttpRule_Post{Post: "/v1/a:x/b"}}, ""},
		{&annotations.HttpRule{Pattern: &annotations.HttpRule_Get{Get: "/v2/decisions"}}, ""},
		{&annotations.HttpRule{Pattern: &annotations.HttpRule_Custom{Custom: &annotations.CustomHttpPattern{Kind: "HEAD", Path: "/v1/x"}}}, ""},
	} {
		got, err := muxPattern(tc.rule)
		if tc.want == "" && err == nil {
			t.Errorf("%v: served as %q, want refused", tc.rule, got)
		}
		if tc.want != "" && (err != nil || got != tc.want) {
			t.Errorf("%v = %q, %v; want %q", tc.rule, got, err, tc.want)
		}
	}
}

// The committed OpenAPI document lists every route the mesh serves, and
// nothing else.
func TestOpenAPIDocumentListsEveryRoute(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapi.Document, &doc); err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			listed[strings.ToUpper(m)+" "+p] = true
		}
	}
	// The document names path variables by their JSON names.
	camel := regexp.MustCompile(`_([a-z])`)
	served := map[string]bool{}
	for _, r := range allRoutes(t) {
		p := camel.ReplaceAllStringFunc(r.pattern, func(s string) string { return strings.ToUpper(s[1:]) })
		served[p] = true
		if !listed[p] {
			t.Errorf("the OpenAPI document does not list %s (%s)", p, r.method)
		}
	}
	for p := range listed {
		if !served[p] {
			t.Errorf("the OpenAPI document lists %s, which no process serves", p)
		}
	}
}
