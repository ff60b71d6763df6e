package mesh_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/devcerts"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"github.com/pushbackhq/pushback/services/decision"
	"github.com/pushbackhq/pushback/services/mesh"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// One credential per kind of outside caller, set as an operator would, in
// the environment.
const (
	hookToken     = "hook-token-0123456789abcdef"
	intakeToken   = "intake-token-0123456789abcdef"
	riskToken     = "risk-reader-token-0123456789"
	operatorToken = "operator-token-0123456789abc"
)

var credentialsEnv = map[string]string{
	"PUSHBACK_AUTH_TOKENS":     hookToken,
	"PUSHBACK_INTAKE_TOKEN":    intakeToken,
	"PUSHBACK_SCORING_TOKENS":  riskToken,
	"PUSHBACK_OPERATOR_TOKENS": operatorToken,
}

// serveWith starts the mesh as `pushback serve args...` would with env, on
// loopback ports, with the production wiring.
func serveWith(t *testing.T, env map[string]string, args ...string) *running {
	t.Helper()
	cfg, err := mesh.Load(append([]string{"--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--data-dir=" + t.TempDir()}, args...),
		func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return start(t, cfg)
}

// caller is someone outside the mesh presenting one credential (none when
// token is empty), and what the mesh must answer them.
type caller struct {
	name  string
	token string
	want  codes.Code
}

// as is the context of a call that presents token the way every client
// does: Authorization: Bearer <token>.
func as(t *testing.T, token string) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	if token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// refused fails unless err is the status want with its ErrorInfo reason.
func refused(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	reason := map[codes.Code]string{codes.Unauthenticated: "ERROR_REASON_UNAUTHENTICATED", codes.PermissionDenied: "ERROR_REASON_PERMISSION_DENIED"}[want]
	if status.Code(err) != want || apierr.Reason(err) != reason {
		t.Errorf("%s: %v, want %v with reason %s", what, err, want, reason)
	}
	for _, secret := range []string{hookToken, intakeToken, riskToken, operatorToken} {
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error shows a credential: %v", what, err)
		}
	}
}

// outsiders are every outside caller that is not a log shipper.
var outsiders = []caller{
	{"anonymous", "", codes.Unauthenticated},
	{"wrong token", "not-a-configured-token-0123", codes.Unauthenticated},
	{"hook", hookToken, codes.PermissionDenied},
	{"risk reader", riskToken, codes.PermissionDenied},
	{"operator", operatorToken, codes.PermissionDenied},
}

func fraudReport(id, user string) *eventv1.AuthEvent {
	return &eventv1.AuthEvent{EventId: id, UserId: user, Type: eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED,
		Time: timestamppb.New(time.Now().Add(-time.Minute)), Factor: eventv1.Factor_FACTOR_PUSH}
}

func riskOf(t *testing.T, sc scoringv1.ScoringServiceClient, user string) *scoringv1.RiskAssessment {
	t.Helper()
	r, err := sc.GetRisk(as(t, riskToken), &scoringv1.GetRiskRequest{UserId: user})
	if err != nil {
		t.Fatalf("GetRisk as a risk reader: %v", err)
	}
	return r.GetAssessment()
}

// An attacker who can reach the gRPC port reports fraud for a user to
// raise their risk (or lock them out): nobody but a log shipper with the
// intake token gets an event in, and nobody outside writes to scoring.
func TestForgedFraudReportIsRefused(t *testing.T) {
	m := serveWith(t, credentialsEnv)
	ic, sc := intakev1.NewIntakeServiceClient(m.conn), scoringv1.NewScoringServiceClient(m.conn)
	for _, c := range append(outsiders, caller{"log shipper", intakeToken, codes.PermissionDenied}) {
		if c.token != intakeToken {
			_, err := ic.Ingest(as(t, c.token), &intakev1.IngestRequest{Events: []*eventv1.AuthEvent{fraudReport("forged-"+c.name, "victim")}})
			refused(t, c.name+": Ingest", err, c.want)
			stream, err := ic.IngestStream(as(t, c.token))
			// A refused stream can end Send with io.EOF; its status comes
			// with the answer.
			if err == nil {
				if err = stream.Send(&intakev1.IngestStreamRequest{Events: []*eventv1.AuthEvent{fraudReport("forged-stream-"+c.name, "victim")}}); err == nil || errors.Is(err, io.EOF) {
					_, err = stream.CloseAndRecv()
				}
			}
			refused(t, c.name+": IngestStream", err, c.want)
		}
		// Scoring takes events from intake and decision only: a log
		// shipper's token does not skip intake's validation and storage.
		_, err := sc.Observe(as(t, c.token), &scoringv1.ObserveRequest{Events: []*eventv1.AuthEvent{fraudReport("forged-observe-"+c.name, "victim")}})
		refused(t, c.name+": Observe", err, c.want)
	}
	if hasSignal(riskOf(t, sc, "victim"), "FRAUD_REPORTED") {
		t.Fatal("a forged fraud report raised the victim's risk")
	}
	// The log shipper's report goes in, and reaches scoring through intake.
	if _, err := ic.Ingest(as(t, intakeToken), &intakev1.IngestRequest{Events: []*eventv1.AuthEvent{fraudReport("real-1", "reporter")}}); err != nil {
		t.Fatalf("Ingest with the intake token: %v", err)
	}
	waitFor(t, "the shipped fraud report in scoring", func() bool { return hasSignal(riskOf(t, sc, "reporter"), "FRAUD_REPORTED") })

	// In the split topology a peer service's certificate does not make it
	// a log shipper: only the intake token gets an event in.
	files := mtlsFiles(t)
	split := serveWith(t, credentialsEnv, append([]string{"--services=intake,scoring", "--http-addr="}, tlsArgs(files, "intake")...)...)
	for _, cert := range []string{"decision", "scoring", "notify", "intake"} {
		_, err := intakev1.NewIntakeServiceClient(dialAs(t, files, cert, split.grpcAddr)).Ingest(as(t, ""),
			&intakev1.IngestRequest{Events: []*eventv1.AuthEvent{fraudReport("forged-by-"+cert, "victim")}})
		refused(t, cert+" certificate: Ingest", err, codes.PermissionDenied)
	}
	if _, err := intakev1.NewIntakeServiceClient(dialAs(t, files, "client", split.grpcAddr)).Ingest(as(t, intakeToken),
		&intakev1.IngestRequest{Events: []*eventv1.AuthEvent{fraudReport("real-2", "reporter")}}); err != nil {
		t.Fatalf("Ingest with a client certificate and the intake token: %v", err)
	}
}

// gRPC ingest takes the intake token exactly as the HTTP endpoints do: the
// Authorization header, "Bearer <token>" or the bare token.
func TestGRPCIngestRequiresIntakeToken(t *testing.T) {
	m := serveWith(t, credentialsEnv)
	ic := intakev1.NewIntakeServiceClient(m.conn)
	header := func(v string) context.Context {
		return metadata.AppendToOutgoingContext(as(t, ""), "authorization", v)
	}
	event := func(id string) *intakev1.IngestRequest {
		return &intakev1.IngestRequest{Events: []*eventv1.AuthEvent{{EventId: id, UserId: "ivy", Type: eventv1.EventType_EVENT_TYPE_PUSH_DENIED,
			Time: timestamppb.New(time.Now().Add(-time.Minute))}}}
	}
	post := func(authz, id string) int {
		r, _ := http.NewRequest(http.MethodPost, "http://"+m.httpAddr+"/v1/ingest", bytes.NewReader([]byte(`{"events":[{"eventId":"`+id+`","userId":"ivy","type":"EVENT_TYPE_PUSH_DENIED","time":"`+time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)+`"}]}`)))
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name, authz string
		want        codes.Code
		http        int
	}{
		{"no header", "", codes.Unauthenticated, 401},
		{"wrong token", "Bearer not-the-intake-token-0123", codes.Unauthenticated, 401},
		{"token under another scheme", "Basic " + intakeToken, codes.Unauthenticated, 401},
		{"hook token", "Bearer " + hookToken, codes.PermissionDenied, 403},
		{"bearer intake token", "Bearer " + intakeToken, codes.OK, 200},
		{"bare intake token, as an Okta Event Hook sends it", intakeToken, codes.OK, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := as(t, "")
			if tc.authz != "" {
				ctx = header(tc.authz)
			}
			_, err := ic.Ingest(ctx, event("grpc-"+tc.name))
			if tc.want == codes.OK {
				if err != nil {
					t.Fatalf("Ingest: %v", err)
				}
			} else {
				refused(t, "Ingest", err, tc.want)
			}
			stream, err := ic.IngestStream(ctx)
			if err == nil {
				if err = stream.Send(&intakev1.IngestStreamRequest{Events: event("stream-" + tc.name).GetEvents()}); err == nil || errors.Is(err, io.EOF) {
					_, err = stream.CloseAndRecv()
				}
			}
			if tc.want == codes.OK {
				if err != nil {
					t.Fatalf("IngestStream: %v", err)
				}
			} else {
				refused(t, "IngestStream", err, tc.want)
			}
			if got := post(tc.authz, "http-"+tc.name); got != tc.http {
				t.Errorf("POST /v1/ingest = %d, want %d", got, tc.http)
			}
		})
	}
	// Only the calls with the intake token were stored.
	ev, err := ic.ListEvents(as(t, operatorToken), &intakev1.ListEventsRequest{UserId: "ivy"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.GetEvents()) != 6 {
		t.Fatalf("%d events stored, want the 6 sent with the intake token", len(ev.GetEvents()))
	}
}

// A user's risk tells an attacker whose pushes are being watched. Only risk
// readers (and operators) read it.
func TestRiskOfAnotherUserIsNotReadableWithoutCredentials(t *testing.T) {
	m := serveWith(t, credentialsEnv)
	sc := scoringv1.NewScoringServiceClient(m.conn)
	if _, err := decisionv1.NewDecisionServiceClient(m.conn).Decide(as(t, hookToken), decideReq("grace", "g-1", time.Now())); err != nil {
		t.Fatal(err)
	}
	for _, c := range []caller{
		{"anonymous", "", codes.Unauthenticated},
		{"wrong token", "not-a-configured-token-0123", codes.Unauthenticated},
		{"hook", hookToken, codes.PermissionDenied},
		{"log shipper", intakeToken, codes.PermissionDenied},
	} {
		_, err := sc.GetRisk(as(t, c.token), &scoringv1.GetRiskRequest{UserId: "grace"})
		refused(t, c.name+": GetRisk", err, c.want)
		w, err := sc.WatchRisk(as(t, c.token), &scoringv1.WatchRiskRequest{UserId: "grace"})
		if err == nil {
			_, err = w.Recv()
		}
		refused(t, c.name+": WatchRisk", err, c.want)
		_, err = sc.Assess(as(t, c.token), &scoringv1.AssessRequest{Attempt: &scoringv1.Attempt{UserId: "grace", AttemptId: "probe", Factor: eventv1.Factor_FACTOR_PUSH}})
		refused(t, c.name+": Assess", err, c.want)
	}
	for _, tok := range []string{riskToken, operatorToken} {
		if got := riskOf(t, sc, "grace"); got.GetUserId() != "grace" && len(got.GetWindows()) == 0 {
			t.Fatalf("GetRisk: %v", got)
		}
		w, err := sc.WatchRisk(as(t, tok), &scoringv1.WatchRiskRequest{UserId: "grace"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Recv(); err != nil {
			t.Fatalf("WatchRisk: %v", err)
		}
	}
}

// Nobody outside the mesh queues a notification: a forged SOC alert would
// page the SOC, and a forged push would reach a user's phone.
func TestForgedSOCAlertIsRefused(t *testing.T) {
	m := serveWith(t, credentialsEnv)
	nc := notifyv1.NewNotificationServiceClient(m.conn)
	for _, c := range append(outsiders, caller{"log shipper", intakeToken, codes.PermissionDenied}) {
		_, err := nc.Notify(as(t, c.token), &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_SOC_ALERT, IdempotencyKey: "forged-" + c.name,
			UserId: "ceo", Title: "Push bombing in progress", Message: "call this number", Time: timestamppb.Now()})
		refused(t, c.name+": Notify", err, c.want)
		_, err = nc.ListDeliveries(as(t, c.token), &notifyv1.ListDeliveriesRequest{})
		if c.token != operatorToken {
			refused(t, c.name+": ListDeliveries", err, c.want)
		}
	}
	got, err := nc.ListDeliveries(as(t, operatorToken), &notifyv1.ListDeliveriesRequest{})
	if err != nil {
		t.Fatalf("ListDeliveries as an operator: %v", err)
	}
	if len(got.GetDeliveries()) != 0 {
		t.Fatalf("forged notifications were queued: %v", got.GetDeliveries())
	}

	// In the split topology notify takes alerts from decision's certificate
	// (and intake's, for the report link), not from scoring's or a client's.
	files := mtlsFiles(t)
	split := serveWith(t, credentialsEnv, append([]string{"--services=notify", "--http-addr="}, tlsArgs(files, "notify")...)...)
	alert := func(cert, token, key string) error {
		_, err := notifyv1.NewNotificationServiceClient(dialAs(t, files, cert, split.grpcAddr)).Notify(as(t, token), &notifyv1.NotifyRequest{
			Kind: notifyv1.Kind_KIND_SOC_ALERT, IdempotencyKey: key, UserId: "ceo", Title: "Push bombing", Time: timestamppb.Now()})
		return err
	}
	refused(t, "scoring certificate: Notify", alert("scoring", "", "forged-scoring"), codes.PermissionDenied)
	refused(t, "notify certificate: Notify", alert("notify", "", "forged-notify"), codes.PermissionDenied)
	refused(t, "client certificate: Notify", alert("client", "", "forged-client"), codes.Unauthenticated)
	refused(t, "client certificate and an operator token: Notify", alert("client", operatorToken, "forged-operator"), codes.PermissionDenied)
	if err := alert("decision", "", "real-alert"); err != nil {
		t.Fatalf("Notify with decision's certificate: %v", err)
	}
}

// A cooldown holds back the attacker's pushes until the user signs in with
// a phishing-resistant factor. An attacker who could tell scoring (or
// intake) "WebAuthn succeeded" would end it, and push on.
func TestWebAuthnSuccessInjectedOverGRPCDoesNotClearCooldown(t *testing.T) {
	m := serveWith(t, credentialsEnv)
	dc := decisionv1.NewDecisionServiceClient(m.conn)
	// The burst is old enough that only its cooldown (15 minutes in the
	// default policy), not the burst rules, holds back the next push.
	base := time.Now().Add(-16 * time.Minute).Truncate(time.Second)
	var last *decisionv1.DecideResponse
	for i := range 5 {
		r, err := dc.Decide(as(t, hookToken), decideReq("henry", "h-"+string(rune('0'+i)), base.Add(time.Duration(i)*time.Minute)))
		if err != nil {
			t.Fatalf("Decide as a hook: %v", err)
		}
		last = r
	}
	if last.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY || last.GetCooldown().AsDuration() <= 0 {
		t.Fatalf("5th push = %v with cooldown %v, want a DENY with a cooldown", last.GetOutcome(), last.GetCooldown())
	}
	webauthn := func(id string) *eventv1.AuthEvent {
		return &eventv1.AuthEvent{EventId: id, UserId: "henry", Type: eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED,
			Factor: eventv1.Factor_FACTOR_WEBAUTHN, Time: timestamppb.New(base.Add(14 * time.Minute))}
	}
	ic, sc := intakev1.NewIntakeServiceClient(m.conn), scoringv1.NewScoringServiceClient(m.conn)
	for _, c := range outsiders {
		_, err := sc.Observe(as(t, c.token), &scoringv1.ObserveRequest{Events: []*eventv1.AuthEvent{webauthn("observe-" + c.name)}})
		refused(t, c.name+": Observe", err, c.want)
		_, err = ic.Ingest(as(t, c.token), &intakev1.IngestRequest{Events: []*eventv1.AuthEvent{webauthn("ingest-" + c.name)}})
		refused(t, c.name+": Ingest", err, c.want)
		if c.token != operatorToken {
			_, err = dc.ClearCooldown(as(t, c.token), &decisionv1.ClearCooldownRequest{UserId: "henry", Reason: "forged"})
			refused(t, c.name+": ClearCooldown", err, c.want)
		}
	}
	r, err := dc.Decide(as(t, hookToken), decideReq("henry", "h-after", base.Add(15*time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	if r.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY {
		t.Fatalf("push after the injected WebAuthn success = %v (reasons %v), want DENY: the cooldown was cleared", r.GetOutcome(), r.GetReasons())
	}
	// The operator may end it, on purpose and with a reason.
	cl, err := dc.ClearCooldown(as(t, operatorToken), &decisionv1.ClearCooldownRequest{UserId: "henry", Reason: "user verified by the help desk"})
	if err != nil || !cl.GetCleared() {
		t.Fatalf("ClearCooldown as an operator: %v, %v", cl, err)
	}
}

// Operators read decisions and events; hooks, shippers and readers of risk
// do not.
func TestOperatorMethodsNeedTheOperatorToken(t *testing.T) {
	m := serveWith(t, credentialsEnv)
	dc, ic := decisionv1.NewDecisionServiceClient(m.conn), intakev1.NewIntakeServiceClient(m.conn)
	d, err := dc.Decide(as(t, hookToken), decideReq("iris", "i-1", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func(ctx context.Context) error{
		"GetDecision": func(ctx context.Context) error {
			_, err := dc.GetDecision(ctx, &decisionv1.GetDecisionRequest{DecisionId: d.GetDecisionId()})
			return err
		},
		"ListDecisions": func(ctx context.Context) error {
			_, err := dc.ListDecisions(ctx, &decisionv1.ListDecisionsRequest{UserId: "iris"})
			return err
		},
		"ListEvents": func(ctx context.Context) error {
			_, err := ic.ListEvents(ctx, &intakev1.ListEventsRequest{UserId: "iris"})
			return err
		},
	}
	for name, call := range calls {
		for _, c := range []caller{
			{"anonymous", "", codes.Unauthenticated},
			{"hook", hookToken, codes.PermissionDenied},
			{"log shipper", intakeToken, codes.PermissionDenied},
			{"risk reader", riskToken, codes.PermissionDenied},
		} {
			refused(t, c.name+": "+name, call(as(t, c.token)), c.want)
		}
		if err := call(as(t, operatorToken)); err != nil {
			t.Errorf("%s as an operator: %v", name, err)
		}
	}
}

// With any credential configured, every service authenticates, on loopback
// too: setting only the intake token does not leave the rest open.
func TestAnyCredentialClosesEveryService(t *testing.T) {
	m := serveWith(t, map[string]string{"PUSHBACK_INTAKE_TOKEN": intakeToken})
	_, err := decisionv1.NewDecisionServiceClient(m.conn).Decide(as(t, ""), decideReq("jack", "j-1", time.Now()))
	refused(t, "Decide", err, codes.Unauthenticated)
	_, err = scoringv1.NewScoringServiceClient(m.conn).GetRisk(as(t, ""), &scoringv1.GetRiskRequest{UserId: "jack"})
	refused(t, "GetRisk", err, codes.Unauthenticated)
	// The newcomer's mesh, with no credential on loopback, answers everyone.
	open := serveWith(t, nil)
	if _, err := decisionv1.NewDecisionServiceClient(open.conn).Decide(as(t, ""), decideReq("jack", "j-1", time.Now())); err != nil {
		t.Fatalf("Decide on the newcomer's mesh: %v", err)
	}
}

// serve refuses to start with a service an anonymous caller could reach on a
// non-loopback address.
func TestServeRefusesUnauthenticatedServiceOnPublicAddress(t *testing.T) {
	dir := t.TempDir()
	files, err := devcerts.WriteFiles(dir, []string{"scoring", "decision"}, []string{"localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tls := []string{"--tls-cert=" + files.Node["scoring"][0], "--tls-key=" + files.Node["scoring"][1], "--tls-ca=" + files.CA}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"scoring alone on a public address", []string{"--services=scoring", "--grpc-addr=0.0.0.0:50051", "--http-addr="}, nil, "tls-cert"},
		{"notify alone on a public address", []string{"--services=notify", "--grpc-addr=0.0.0.0:50051", "--http-addr="}, nil, "tls-cert"},
		{"split peers over the network in plaintext", []string{"--services=decision,notify", "--grpc-addr=0.0.0.0:50051", "--http-addr=", "--scoring-addr=10.0.0.5:50051"},
			map[string]string{"PUSHBACK_AUTH_TOKENS": hookToken}, "tls-cert"},
		{"split with credentials but no mutual TLS", []string{"--services=decision,notify", "--scoring-addr=127.0.0.1:7001"}, credentialsEnv, "tls-cert"},
		{"gRPC ingest on a public address without the intake token", append([]string{"--services=intake,scoring", "--grpc-addr=0.0.0.0:50051", "--http-addr="}, tls...), nil, "intake-token"},
		{"one process on a public address without the intake token", []string{"--grpc-addr=0.0.0.0:50051"}, map[string]string{"PUSHBACK_AUTH_TOKENS": hookToken}, "intake-token"},
		{"decision on a public address without hook credentials", append([]string{"--services=decision,notify", "--grpc-addr=0.0.0.0:50051", "--http-addr=", "--scoring-addr=127.0.0.1:7001"}, tls...), nil, "auth-tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mesh.Load(tc.args, env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, want an error naming %q", err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"the newcomer's mesh", nil, nil},
		{"split on loopback without any credential", []string{"--services=decision,notify", "--scoring-addr=127.0.0.1:7001"}, nil},
		{"one process on a public address with credentials", []string{"--grpc-addr=0.0.0.0:50051", "--http-addr=0.0.0.0:8080"}, credentialsEnv},
		{"split on a public address with mutual TLS", append([]string{"--services=scoring", "--grpc-addr=0.0.0.0:50051", "--http-addr=0.0.0.0:8080"}, tls...), nil},
		{"decision on a public address with mutual TLS and hook tokens", append([]string{"--services=decision,notify", "--grpc-addr=0.0.0.0:50051", "--scoring-addr=scoring.internal:50051"}, tls...), map[string]string{"PUSHBACK_AUTH_TOKENS": hookToken}},
		{"explicitly unauthenticated", []string{"--grpc-addr=0.0.0.0:50051", "--allow-unauthenticated"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := mesh.Load(tc.args, env(tc.env)); err != nil {
				t.Fatalf("Load = %v, want it accepted", err)
			}
		})
	}
}

// mtlsFiles makes a CA and a certificate for each service and for a client
// that is no service.
func mtlsFiles(t *testing.T) devcerts.Files {
	t.Helper()
	files, err := devcerts.WriteFiles(filepath.Join(t.TempDir(), "certs"), []string{"scoring", "decision", "intake", "notify", "client"},
		[]string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func tlsArgs(f devcerts.Files, name string) []string {
	return []string{"--tls-cert=" + f.Node[name][0], "--tls-key=" + f.Node[name][1], "--tls-ca=" + f.CA}
}

// dialAs connects to addr over mutual TLS with the certificate of name.
func dialAs(t *testing.T, f devcerts.Files, name, addr string) *grpc.ClientConn {
	t.Helper()
	_, client, _, err := rpc.MutualTLS(f.Node[name][0], f.Node[name][1], f.CA)
	if err != nil {
		t.Fatal(err)
	}
	return dialCreds(t, addr, client)
}

func dialCreds(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// In the split topology scoring takes attempts (Assess) from decision and
// events (Observe) from decision and intake, each known by its certificate;
// a peer presenting the certificate of another service, or a certificate
// that names no service, is refused.
func TestScoringAcceptsAssessAndObserveOnlyFromDecisionAndIntakeCertificates(t *testing.T) {
	files := mtlsFiles(t)
	scoring := serveWith(t, credentialsEnv, append([]string{"--services=scoring", "--http-addr="}, tlsArgs(files, "scoring")...)...)
	assess := func(conn *grpc.ClientConn, token, id string) error {
		_, err := scoringv1.NewScoringServiceClient(conn).Assess(as(t, token), &scoringv1.AssessRequest{Record: true, Attempt: &scoringv1.Attempt{
			UserId: "kate", AttemptId: id, Factor: eventv1.Factor_FACTOR_PUSH, Time: timestamppb.Now()}})
		return err
	}
	observe := func(conn *grpc.ClientConn, token, id string) error {
		_, err := scoringv1.NewScoringServiceClient(conn).Observe(as(t, token), &scoringv1.ObserveRequest{Events: []*eventv1.AuthEvent{fraudReport(id, "kate")}})
		return err
	}
	for _, tc := range []struct {
		cert, token     string
		assess, observe codes.Code
	}{
		{"decision", "", codes.OK, codes.OK},
		{"intake", "", codes.PermissionDenied, codes.OK},
		{"notify", "", codes.PermissionDenied, codes.PermissionDenied},
		{"scoring", "", codes.PermissionDenied, codes.PermissionDenied},
		{"client", "", codes.Unauthenticated, codes.Unauthenticated},
		{"client", hookToken, codes.PermissionDenied, codes.PermissionDenied},
		{"client", intakeToken, codes.PermissionDenied, codes.PermissionDenied},
		{"client", riskToken, codes.PermissionDenied, codes.PermissionDenied},
	} {
		conn := dialAs(t, files, tc.cert, scoring.grpcAddr)
		name := tc.cert + " certificate"
		if tc.token != "" {
			name += " and a token"
		}
		for _, call := range []struct {
			rpc  string
			err  error
			want codes.Code
		}{
			{"Assess", assess(conn, tc.token, "a-"+name), tc.assess},
			{"Observe", observe(conn, tc.token, "e-"+name), tc.observe},
		} {
			if call.want == codes.OK {
				if call.err != nil {
					t.Errorf("%s: %s: %v", name, call.rpc, call.err)
				}
				continue
			}
			refused(t, name+": "+call.rpc, call.err, call.want)
		}
	}
	// A client certificate with the reader's token reads risk.
	if _, err := scoringv1.NewScoringServiceClient(dialAs(t, files, "client", scoring.grpcAddr)).GetRisk(as(t, riskToken), &scoringv1.GetRiskRequest{UserId: "kate"}); err != nil {
		t.Fatalf("GetRisk with a client certificate and the reader's token: %v", err)
	}

	// Decision reaches scoring with its own certificate; a decision process
	// holding intake's certificate is refused and answers by its tier's
	// failure mode.
	for _, tc := range []struct {
		cert    string
		failure bool
	}{{"decision", false}, {"intake", true}} {
		d := serveWith(t, credentialsEnv, append([]string{"--services=decision,notify", "--http-addr=", "--scoring-addr=" + scoring.grpcAddr}, tlsArgs(files, tc.cert)...)...)
		resp, err := decisionv1.NewDecisionServiceClient(dialAs(t, files, "client", d.grpcAddr)).Decide(as(t, hookToken), decideReq("liam", "l-"+tc.cert, time.Now()))
		if err != nil {
			t.Fatalf("Decide through a decision process with the %s certificate: %v", tc.cert, err)
		}
		if failed := resp.GetFailureMode() != decisionv1.FailureMode_FAILURE_MODE_UNSPECIFIED; failed != tc.failure {
			t.Errorf("decision with the %s certificate: failure mode %v (reasons %v); want scoring refused = %v", tc.cert, resp.GetFailureMode(), resp.GetReasons(), tc.failure)
		}
	}
}

// runLogged runs the mesh with cfg on loopback ports, logging into the
// returned buffer and counting decision's refusals into counters.
func runLogged(t *testing.T, cfg mesh.Config, counters *decision.Counters) (*running, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	cfg.DataDir, cfg.GRPCAddr, cfg.HTTPAddr, cfg.Decision.Budget = t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", 5*time.Second
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan [2]string, 1), make(chan error, 1)
	go func() {
		done <- mesh.Run(ctx, cfg, mesh.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)), DecisionCounters: counters,
			Getenv: func(string) string { return "" }, Ready: func(g, h string) { ready <- [2]string{g, h} }})
	}()
	var addrs [2]string
	select {
	case addrs = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("mesh did not start: %v", err)
	}
	t.Cleanup(func() { cancel(); <-done })
	return &running{grpcAddr: addrs[0], httpAddr: addrs[1], conn: dial(t, addrs[0])}, logs
}

// Every refused call is logged (method, code, the roles held, never what
// was presented) and counted; decision's counter takes its own API's.
func TestRefusalsAreLoggedAndCountedWithoutSecrets(t *testing.T) {
	cfg, err := mesh.Load(nil, func(k string) string { return credentialsEnv[k] })
	if err != nil {
		t.Fatal(err)
	}
	counters := &decision.Counters{}
	m, logs := runLogged(t, cfg, counters)
	_, err = decisionv1.NewDecisionServiceClient(m.conn).Decide(as(t, "a-guessed-token-0123456789"), decideReq("nora", "n-1", time.Now()))
	refused(t, "Decide with a guessed token", err, codes.Unauthenticated)
	_, err = notifyv1.NewNotificationServiceClient(m.conn).Notify(as(t, hookToken), &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_SOC_ALERT, IdempotencyKey: "x", UserId: "nora"})
	refused(t, "Notify as a hook", err, codes.PermissionDenied)
	resp, err := http.Post("http://"+m.httpAddr+"/v1/decide", "application/json", strings.NewReader(`{"userId":"nora"}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /v1/decide without credentials = %d", resp.StatusCode)
	}
	metrics, err := http.Get("http://" + m.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(metrics.Body)
	_ = metrics.Body.Close()
	if !strings.Contains(string(body), `pushback_rpc_auth_failures_total{code="permission_denied",method="/pushback.notify.v1.NotificationService/Notify",`) {
		t.Errorf("/metrics does not count the refusal by method and code:\n%s", body)
	}
	if n := counters.AuthFailures.Load(); n != 2 {
		t.Errorf("decision counted %d refusals, want its 2 (gRPC and HTTP)", n)
	}
	out := logs.String()
	for _, want := range []string{
		`"method":"/pushback.decision.v1.DecisionService/Decide","code":"unauthenticated"`,
		`"method":"/pushback.notify.v1.NotificationService/Notify","code":"permission_denied","reason":"/pushback.notify.v1.NotificationService/Notify is not open to hook","roles":"hook"`,
		`"method":"POST /v1/decide","code":"unauthenticated"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %s:\n%s", want, out)
		}
	}
	for _, secret := range []string{hookToken, intakeToken, riskToken, operatorToken, "a-guessed-token-0123456789"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log shows a credential:\n%s", out)
		}
	}
}

// --allow-unauthenticated is said loudly, with what it opens; a role left
// without credentials is said too.
func TestAllowUnauthenticatedIsLoud(t *testing.T) {
	cfg, err := mesh.Load([]string{"--allow-unauthenticated", "--operator-tokens=" + operatorToken}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	m, logs := runLogged(t, cfg, &decision.Counters{})
	if _, err := decisionv1.NewDecisionServiceClient(m.conn).Decide(as(t, ""), decideReq("olga", "o-1", time.Now())); err != nil {
		t.Fatalf("anonymous Decide under allow-unauthenticated: %v", err)
	}
	_, err = decisionv1.NewDecisionServiceClient(m.conn).ClearCooldown(as(t, ""), &decisionv1.ClearCooldownRequest{UserId: "olga", Reason: "anonymous"})
	refused(t, "anonymous ClearCooldown under allow-unauthenticated", err, codes.Unauthenticated)
	out := logs.String()
	for _, want := range []string{
		`"level":"WARN","msg":"ALLOW-UNAUTHENTICATED: callers without any credential are let in as these roles","roles":["hook","log-shipper"],"methods":["DecisionService/Decide","IntakeService/Ingest","IntakeService/IngestStream"]`,
		`"msg":"no credentials for a role: no outside caller may call its methods","role":"risk-reader","methods":["ScoringService/GetRisk","ScoringService/ListRiskChanges","ScoringService/WatchRisk"]`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %s:\n%s", want, out)
		}
	}
}
