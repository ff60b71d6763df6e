package mesh_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/api/openapi"
	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	"github.com/pushbackhq/pushback/services/mesh"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// restAnswer is an HTTP answer of the mesh, decoded.
type restAnswer struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

// errorObj is the error object of a JSON error answer.
func (a restAnswer) errorObj() map[string]any {
	e, _ := a.body["error"].(map[string]any)
	return e
}

// fields lists the fields the error's fieldViolations name.
func (a restAnswer) fields() []string {
	var out []string
	fv, _ := a.errorObj()["fieldViolations"].([]any)
	for _, v := range fv {
		if m, ok := v.(map[string]any); ok {
			out = append(out, fmt.Sprint(m["field"]))
		}
	}
	return out
}

// rest calls the mesh's HTTP address as a person or script does, with
// Authorization: Bearer token (none when token is empty).
func rest(t *testing.T, m *running, method, path, token, body string) restAnswer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+m.httpAddr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := restAnswer{code: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: Content-Type %q, body %s", method, path, ct, raw)
	}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("%s %s: not JSON (%v): %s", method, path, err, raw)
	}
	return a
}

// burstFor makes five push attempts for user over gRPC as a hook: the
// fifth is denied with a cooldown and an alert.
func burstFor(t *testing.T, m *running, user string) *decisionv1.DecideResponse {
	t.Helper()
	dc := decisionv1.NewDecisionServiceClient(m.conn)
	at := time.Now().UTC()
	var last *decisionv1.DecideResponse
	for i := range 5 {
		resp, err := dc.Decide(as(t, hookToken), decideReq(user, fmt.Sprintf("%s-%d", user, i), at))
		if err != nil {
			t.Fatalf("Decide %d: %v", i+1, err)
		}
		last = resp
	}
	if last.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY {
		t.Fatalf("5th attempt = %v, want DENY", last.GetOutcome())
	}
	return last
}

// TestHTTPGetDecisionReturnsTheStoredDecision is the acceptance:
// GET /v1/decisions/{id} answers the decision Decide stored, as JSON.
func TestHTTPGetDecisionReturnsTheStoredDecision(t *testing.T) {
	m := serveWith(t, credentialsEnv)
	d := burstFor(t, m, "alice")
	a := rest(t, m, "GET", "/v1/decisions/"+d.GetDecisionId(), operatorToken, "")
	rec, _ := a.body["decision"].(map[string]any)
	req, _ := rec["request"].(map[string]any)
	resp, _ := rec["response"].(map[string]any)
	if a.code != 200 || rec["decisionId"] != d.GetDecisionId() || resp["outcome"] != "OUTCOME_DENY" || req["userId"] != "alice" {
		t.Fatalf("GET /v1/decisions/{id} = %d %s", a.code, a.raw)
	}
	if !strings.Contains(a.raw, `"PUSH_BURST"`) || !strings.Contains(a.raw, `"cooldown"`) {
		t.Fatalf("the decision lacks its signal or cooldown: %s", a.raw)
	}
}

// Every RPC a person or script calls answers over HTTP as over gRPC.
func TestHTTPRoutesServeTheOperatorRPCs(t *testing.T) {
	m := serveWith(t, credentialsEnv)
	d := burstFor(t, m, "bob")

	// ListDecisions by user, newest first, in pages.
	a := rest(t, m, "GET", "/v1/decisions?userId=BOB&pageSize=3", operatorToken, "")
	list, _ := a.body["decisions"].([]any)
	token, _ := a.body["nextPageToken"].(string)
	if a.code != 200 || len(list) != 3 || token == "" || list[0].(map[string]any)["decisionId"] != d.GetDecisionId() {
		t.Fatalf("ListDecisions page 1 = %d %s", a.code, a.raw)
	}
	a = rest(t, m, "GET", "/v1/decisions?userId=bob&pageSize=3&pageToken="+url.QueryEscape(token), operatorToken, "")
	if list, _ := a.body["decisions"].([]any); a.code != 200 || len(list) != 2 || a.body["nextPageToken"] != nil {
		t.Fatalf("ListDecisions page 2 = %d %s", a.code, a.raw)
	}

	// GetRisk: operators and risk readers.
	for _, tok := range []string{operatorToken, riskToken} {
		a = rest(t, m, "GET", "/v1/risk?userId=bob", tok, "")
		if a.code != 200 || !strings.Contains(a.raw, `"PUSH_BURST"`) {
			t.Fatalf("GetRisk = %d %s", a.code, a.raw)
		}
	}

	// ListEvents: none were ingested for bob.
	if a = rest(t, m, "GET", "/v1/events?userId=bob", operatorToken, ""); a.code != 200 {
		t.Fatalf("ListEvents = %d %s", a.code, a.raw)
	}

	// ListDeliveries: the deny's alert is in the outbox.
	waitFor(t, "the deny's alert in the outbox over HTTP", func() bool {
		a = rest(t, m, "GET", "/v1/deliveries", operatorToken, "")
		return a.code == 200 && strings.Contains(a.raw, d.GetDecisionId())
	})
	if a = rest(t, m, "GET", "/v1/deliveries?status=STATUS_DEAD", operatorToken, ""); a.code != 200 || strings.Contains(a.raw, d.GetDecisionId()) {
		t.Fatalf("ListDeliveries by status = %d %s", a.code, a.raw)
	}

	// ClearCooldown: an operator ends bob's cooldown, once.
	a = rest(t, m, "POST", "/v1/cooldowns:clear", operatorToken, `{"userId":"bob","reason":"help desk verified the user by phone"}`)
	if a.code != 200 || a.body["cleared"] != true {
		t.Fatalf("ClearCooldown = %d %s", a.code, a.raw)
	}
	a = rest(t, m, "POST", "/v1/cooldowns:clear", operatorToken, `{"userId":"bob","reason":"again"}`)
	if a.code != 200 || a.body["cleared"] != nil {
		t.Fatalf("ClearCooldown again = %d %s, want 200 without cleared", a.code, a.raw)
	}

	// ReleaseActions: nothing is held.
	a = rest(t, m, "POST", "/v1/actions:release", operatorToken, `{"tenant":"acme"}`)
	if a.code != 200 || a.body["deliveryIds"] != nil {
		t.Fatalf("ReleaseActions = %d %s", a.code, a.raw)
	}
}

// ListIncidents and GetIncident over HTTP: a fatigue success in the logs
// opens an incident an operator reads with its alert.
func TestHTTPIncidents(t *testing.T) {
	alerts := newAlertSink(t)
	env := map[string]string{"PUSHBACK_ALERT_WEBHOOK": alerts.srv.URL}
	for k, v := range credentialsEnv {
		env[k] = v
	}
	m := serveWith(t, env)
	if a := rest(t, m, "POST", "/v1/ingest/okta", intakeToken, string(oktaFatigueSuccess("ada@example.com", time.Now().UTC().Add(-time.Second)))); a.code != 200 {
		t.Fatalf("ingest = %d %s", a.code, a.raw)
	}
	var a restAnswer
	eventually(t, 20*time.Second, "an incident over HTTP", func() bool {
		a = rest(t, m, "GET", "/v1/incidents", operatorToken, "")
		list, _ := a.body["incidents"].([]any)
		return a.code == 200 && len(list) == 1
	})
	id := a.body["incidents"].([]any)[0].(map[string]any)["incidentId"].(string)
	a = rest(t, m, "GET", "/v1/incidents/"+url.PathEscape(id), operatorToken, "")
	inc, _ := a.body["incident"].(map[string]any)
	if a.code != 200 || inc["incidentId"] != id || a.body["deliveries"] == nil {
		t.Fatalf("GetIncident = %d %s", a.code, a.raw)
	}
	if a = rest(t, m, "GET", "/v1/incidents?userId=ada@example.com", operatorToken, ""); a.code != 400 || !contains(a.fields(), "tenant") {
		t.Fatalf("ListIncidents by user without tenant = %d %s, want 400 naming tenant", a.code, a.raw)
	}
}

// The HTTP routes take the credential of the method they stand for, as
// gRPC does: no or a wrong token is 401, another role's token 403.
func TestHTTPRoutesTakeTheMethodsCredentials(t *testing.T) {
	m := serveWith(t, credentialsEnv)
	d := burstFor(t, m, "carol")
	routes := []struct {
		method, path, body string
		// riskReader: the route is open to risk readers too.
		riskReader bool
	}{
		{"GET", "/v1/decisions/" + d.GetDecisionId(), "", false},
		{"GET", "/v1/decisions?userId=carol", "", false},
		{"POST", "/v1/cooldowns:clear", `{"userId":"nobody","reason":"test"}`, false},
		{"GET", "/v1/risk?userId=carol", "", true},
		{"GET", "/v1/events?userId=carol", "", false},
		{"GET", "/v1/deliveries", "", false},
		{"GET", "/v1/incidents", "", false},
		{"GET", "/v1/incidents/inc-1", "", false},
		{"POST", "/v1/actions:release", `{"tenant":"acme"}`, false},
	}
	for _, r := range routes {
		name := r.method + " " + r.path
		for _, c := range []struct {
			who, token string
			code       int
			errCode    string
		}{
			{"anonymous", "", 401, "UNAUTHENTICATED"},
			{"wrong token", "not-a-configured-token-0123", 401, "UNAUTHENTICATED"},
			{"hook", hookToken, 403, "PERMISSION_DENIED"},
			{"log shipper", intakeToken, 403, "PERMISSION_DENIED"},
			{"risk reader", riskToken, 403, "PERMISSION_DENIED"},
		} {
			if c.token == riskToken && r.riskReader {
				continue
			}
			a := rest(t, m, r.method, r.path, c.token, r.body)
			if a.code != c.code || a.errorObj()["code"] != c.errCode || a.errorObj()["reason"] != "ERROR_REASON_"+c.errCode {
				t.Errorf("%s as %s = %d %s, want %d %s", name, c.who, a.code, a.raw, c.code, c.errCode)
			}
			if c.code == 401 && a.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s as %s: 401 without WWW-Authenticate", name, c.who)
			}
			for _, secret := range []string{hookToken, intakeToken, riskToken, operatorToken} {
				if strings.Contains(a.raw, secret) {
					t.Errorf("%s as %s: the answer shows a credential: %s", name, c.who, a.raw)
				}
			}
		}
		if a := rest(t, m, r.method, r.path, operatorToken, r.body); a.code == 401 || a.code == 403 {
			t.Errorf("%s as an operator = %d %s", name, a.code, a.raw)
		}
	}
	// The newcomer's mesh, with no credential on loopback, answers everyone.
	open := serveWith(t, nil)
	if a := rest(t, open, "GET", "/v1/deliveries", "", ""); a.code != 200 {
		t.Fatalf("ListDeliveries on the newcomer's mesh = %d %s", a.code, a.raw)
	}
}

// Errors over HTTP keep the JSON shape of every other endpoint, with
// fieldViolations naming the field, whether the handler or the
// transcoder refuses the request.
func TestHTTPRoutesAnswerErrorsAsJSON(t *testing.T) {
	m := serveWith(t, credentialsEnv)
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		errCode, reason, field   string
	}{
		{"no user", "GET", "/v1/decisions", "", 400, "INVALID_ARGUMENT", "ERROR_REASON_INVALID_ARGUMENT", "user_id"},
		{"page size out of range", "GET", "/v1/decisions?userId=a&pageSize=100000", "", 400, "INVALID_ARGUMENT", "ERROR_REASON_INVALID_ARGUMENT", "page_size"},
		{"page size not a number", "GET", "/v1/decisions?userId=a&pageSize=many", "", 400, "INVALID_ARGUMENT", "ERROR_REASON_INVALID_ARGUMENT", "page_size"},
		{"unknown query parameter", "GET", "/v1/decisions?userId=a&colour=red", "", 400, "INVALID_ARGUMENT", "ERROR_REASON_INVALID_ARGUMENT", "colour"},
		{"bad time", "GET", "/v1/risk?userId=a&time=yesterday", "", 400, "INVALID_ARGUMENT", "ERROR_REASON_INVALID_ARGUMENT", "time"},
		{"clear without a reason", "POST", "/v1/cooldowns:clear", `{"userId":"a"}`, 400, "INVALID_ARGUMENT", "ERROR_REASON_INVALID_ARGUMENT", "reason"},
		{"unknown body field", "POST", "/v1/cooldowns:clear", `{"userId":"a","reason":"r","bogus":1}`, 400, "INVALID_ARGUMENT", "ERROR_REASON_INVALID_ARGUMENT", "bogus"},
		{"malformed body", "POST", "/v1/cooldowns:clear", `{"userId":`, 400, "INVALID_ARGUMENT", "ERROR_REASON_INVALID_ARGUMENT", ""},
		{"unknown enum", "GET", "/v1/deliveries?status=STATUS_LOST", "", 400, "INVALID_ARGUMENT", "ERROR_REASON_INVALID_ARGUMENT", "status"},
		{"field of another method", "GET", "/v1/decisions/d-1?userId=a", "", 400, "INVALID_ARGUMENT", "ERROR_REASON_INVALID_ARGUMENT", "userId"},
		{"body over 1 MiB", "POST", "/v1/cooldowns:clear", `{"reason":"` + strings.Repeat("r", 2<<20) + `"}`, 413, "INVALID_ARGUMENT", "ERROR_REASON_TOO_LARGE", ""},
		{"unknown decision", "GET", "/v1/decisions/00000000000000000000000000", "", 404, "NOT_FOUND", "ERROR_REASON_NOT_FOUND", ""},
		{"unknown incident", "GET", "/v1/incidents/06h47hcnvkfzz6chd9zted4d6g", "", 404, "NOT_FOUND", "ERROR_REASON_NOT_FOUND", ""},
		{"no such route", "GET", "/v1/nothing-here", "", 404, "NOT_FOUND", "ERROR_REASON_NOT_FOUND", ""},
		{"wrong method", "DELETE", "/v1/decisions/d-1", "", 405, "METHOD_NOT_ALLOWED", "", ""},
	} {
		a := rest(t, m, tc.method, tc.path, operatorToken, tc.body)
		e := a.errorObj()
		if a.code != tc.code || e == nil || e["code"] != tc.errCode || e["message"] == "" {
			t.Errorf("%s: %d %s, want %d with a %s error", tc.name, a.code, a.raw, tc.code, tc.errCode)
			continue
		}
		if tc.reason != "" && e["reason"] != tc.reason {
			t.Errorf("%s: reason %v, want %s", tc.name, e["reason"], tc.reason)
		}
		if tc.field != "" && !contains(a.fields(), tc.field) {
			t.Errorf("%s: fieldViolations %v do not name %q: %s", tc.name, a.fields(), tc.field, a.raw)
		}
	}
	// As over gRPC, a caller without credentials learns nothing about its
	// request: it is refused before anything reads it.
	for _, body := range []string{`{"userId":`, `{"bogus":1}`} {
		if a := rest(t, m, "POST", "/v1/cooldowns:clear", "", body); a.code != 401 || len(a.fields()) != 0 {
			t.Errorf("anonymous POST /v1/cooldowns:clear %s = %d %s, want 401", body, a.code, a.raw)
		}
	}
	if a := rest(t, m, "GET", "/v1/decisions?pageSize=many", "", ""); a.code != 401 {
		t.Errorf("anonymous GET /v1/decisions?pageSize=many = %d %s, want 401", a.code, a.raw)
	}
	// The hand-written routes beside them keep their own handlers.
	if a := rest(t, m, "POST", "/v1/decide", hookToken, `{"userId":""}`); a.code != 400 || !contains(a.fields(), "user_id") {
		t.Fatalf("POST /v1/decide = %d %s", a.code, a.raw)
	}
}

// The OpenAPI document generated from the protos is served to any caller
// the guard knows, as reflection is over gRPC, and lists every route.
func TestOpenAPIDocumentIsServed(t *testing.T) {
	m := serveWith(t, credentialsEnv)
	if a := rest(t, m, "GET", "/v1/openapi.json", "", ""); a.code != 401 {
		t.Fatalf("anonymous GET /v1/openapi.json = %d, want 401", a.code)
	}
	a := rest(t, m, "GET", "/v1/openapi.json", hookToken, "")
	if a.code != 200 || a.raw != string(openapi.Document) {
		t.Fatalf("GET /v1/openapi.json = %d, not the embedded document", a.code)
	}
	paths, _ := a.body["paths"].(map[string]any)
	for _, p := range []string{"/v1/decisions/{decisionId}", "/v1/decisions", "/v1/cooldowns:clear", "/v1/risk", "/v1/events",
		"/v1/deliveries", "/v1/incidents", "/v1/incidents/{incidentId}", "/v1/actions:release"} {
		if paths[p] == nil {
			t.Errorf("the document does not list %s", p)
		}
	}
	if a.body["swagger"] != "2.0" || a.body["securityDefinitions"] == nil {
		t.Fatalf("document header: %v %v", a.body["swagger"], a.body["securityDefinitions"])
	}
	// The newcomer's mesh serves it to everyone.
	if a := rest(t, serveWith(t, nil), "GET", "/v1/openapi.json", "", ""); a.code != 200 {
		t.Fatalf("GET /v1/openapi.json on the newcomer's mesh = %d", a.code)
	}
}

// A process serves the routes of the services it runs: scoring alone on
// an HTTP address answers GET /v1/risk and knows no decision route.
func TestHTTPRoutesFollowTheServicesAProcessRuns(t *testing.T) {
	cfg := mesh.Default()
	cfg.Services = []string{mesh.Scoring}
	m := start(t, cfg)
	if a := rest(t, m, "GET", "/v1/risk?userId=dave", "", ""); a.code != 200 {
		t.Fatalf("GET /v1/risk on scoring = %d %s", a.code, a.raw)
	}
	if a := rest(t, m, "GET", "/v1/decisions/d-1", "", ""); a.code != 404 {
		t.Fatalf("GET /v1/decisions/{id} on scoring = %d %s, want 404", a.code, a.raw)
	}
}

// A call over HTTP is traced as its RPC, in the trace of the caller's
// traceparent: the transcoded call passes the server's stats handler.
func TestHTTPRouteIsTracedAsItsRPC(t *testing.T) {
	spans := keptSpans{tracetest.NewInMemoryExporter()}
	m := startWith(t, mesh.Default(), mesh.Options{SpanExporter: spans})
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, err := http.NewRequest("GET", "http://"+m.httpAddr+"/v1/deliveries", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v1/deliveries = %d", resp.StatusCode)
	}
	// Shutting down flushes the spans.
	if err := m.stop(); err != nil {
		t.Fatal(err)
	}
	for _, s := range spans.GetSpans() {
		if s.Name == "pushback.notify.v1.NotificationService/ListDeliveries" && s.SpanKind == trace.SpanKindServer {
			if s.SpanContext.TraceID().String() != traceID {
				t.Fatalf("span in trace %s, want the caller's %s", s.SpanContext.TraceID(), traceID)
			}
			return
		}
	}
	t.Fatalf("no server span of ListDeliveries among %d spans", len(spans.GetSpans()))
}
