package auth_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/devcerts"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

const (
	hookToken      = "hook-token-0123456789abcdef"
	hookSecret     = "hook-hmac-secret-0123456789"
	intakeToken    = "intake-token-0123456789abcdef"
	riskToken      = "risk-token-0123456789abcdef"
	operatorToken  = "operator-token-0123456789abc"
	operatorToken2 = "operator-token-rotated-01234"
)

func fullConfig() auth.Config {
	return auth.Config{HookTokens: []string{hookToken}, HookHMACSecrets: []string{hookSecret}, MaxSkew: auth.DefaultMaxSkew,
		IntakeToken: intakeToken, ScoringTokens: []string{riskToken}, OperatorTokens: []string{operatorToken, operatorToken2}}
}

func secrets() []string {
	return []string{hookToken, hookSecret, intakeToken, riskToken, operatorToken, operatorToken2}
}

// The fakes count the calls that reach a handler.
type fakeDecision struct {
	decisionv1.UnimplementedDecisionServiceServer
	calls *atomic.Int64
}

func (f fakeDecision) Decide(context.Context, *decisionv1.DecideRequest) (*decisionv1.DecideResponse, error) {
	f.calls.Add(1)
	return &decisionv1.DecideResponse{DecisionId: "d-1"}, nil
}

func (f fakeDecision) GetDecision(context.Context, *decisionv1.GetDecisionRequest) (*decisionv1.GetDecisionResponse, error) {
	f.calls.Add(1)
	return &decisionv1.GetDecisionResponse{}, nil
}

type fakeScoring struct {
	scoringv1.UnimplementedScoringServiceServer
	calls *atomic.Int64
}

func (f fakeScoring) Assess(context.Context, *scoringv1.AssessRequest) (*scoringv1.AssessResponse, error) {
	f.calls.Add(1)
	return &scoringv1.AssessResponse{}, nil
}

func (f fakeScoring) Observe(context.Context, *scoringv1.ObserveRequest) (*scoringv1.ObserveResponse, error) {
	f.calls.Add(1)
	return &scoringv1.ObserveResponse{}, nil
}

func (f fakeScoring) GetRisk(context.Context, *scoringv1.GetRiskRequest) (*scoringv1.GetRiskResponse, error) {
	f.calls.Add(1)
	return &scoringv1.GetRiskResponse{}, nil
}

func (f fakeScoring) WatchRisk(_ *scoringv1.WatchRiskRequest, s grpc.ServerStreamingServer[scoringv1.WatchRiskResponse]) error {
	f.calls.Add(1)
	return s.Send(&scoringv1.WatchRiskResponse{})
}

type fakeIntake struct {
	intakev1.UnimplementedIntakeServiceServer
	calls *atomic.Int64
}

func (f fakeIntake) Ingest(context.Context, *intakev1.IngestRequest) (*intakev1.IngestResponse, error) {
	f.calls.Add(1)
	return &intakev1.IngestResponse{}, nil
}

func (f fakeIntake) IngestStream(s grpc.ClientStreamingServer[intakev1.IngestStreamRequest, intakev1.IngestStreamResponse]) error {
	f.calls.Add(1)
	for {
		if _, err := s.Recv(); errors.Is(err, io.EOF) {
			return s.SendAndClose(&intakev1.IngestStreamResponse{})
		} else if err != nil {
			return err
		}
	}
}

type fakeTest struct {
	testpb.UnimplementedTestServiceServer
	calls *atomic.Int64
}

func (f fakeTest) EmptyCall(context.Context, *testpb.Empty) (*testpb.Empty, error) {
	f.calls.Add(1)
	return &testpb.Empty{}, nil
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// harness is a server with the guard and the fakes, reached in memory.
type harness struct {
	guard    *auth.Guard
	inproc   *rpc.InProcess
	calls    *atomic.Int64
	rejected *atomic.Int64
	logs     *lockedBuffer
}

func newHarness(t *testing.T, o auth.Options, creds credentials.TransportCredentials) *harness {
	t.Helper()
	h := &harness{calls: &atomic.Int64{}, rejected: &atomic.Int64{}, logs: &lockedBuffer{}, inproc: rpc.NewInProcess()}
	o.Logger = slog.New(slog.NewJSONHandler(h.logs, nil))
	o.OnReject = func(string) { h.rejected.Add(1) }
	g, err := auth.NewGuard(o)
	if err != nil {
		t.Fatal(err)
	}
	h.guard = g
	srv := rpc.NewServer(rpc.ServerOptions{Creds: creds, Unary: []grpc.UnaryServerInterceptor{g.UnaryServerInterceptor()}, Stream: []grpc.StreamServerInterceptor{g.StreamServerInterceptor()}})
	decisionv1.RegisterDecisionServiceServer(srv, fakeDecision{calls: h.calls})
	scoringv1.RegisterScoringServiceServer(srv, fakeScoring{calls: h.calls})
	intakev1.RegisterIntakeServiceServer(srv, fakeIntake{calls: h.calls})
	// A service the table does not know: refused, whoever calls.
	testpb.RegisterTestServiceServer(srv, fakeTest{calls: h.calls})
	go func() { _ = srv.Serve(h.inproc.Listener()) }()
	t.Cleanup(srv.Stop)
	return h
}

func (h *harness) dial(t *testing.T, o rpc.ClientOptions) *grpc.ClientConn {
	t.Helper()
	c, err := h.inproc.Dial(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func withHeader(kv ...string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), kv...)
}

func bearer(tok string) context.Context { return withHeader("authorization", "Bearer "+tok) }

// signed signs msg for method with secret at ts, as a hook would.
func signed(secret, method string, msg proto.Message, ts time.Time) context.Context {
	body, _ := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	stamp := strconv.FormatInt(ts.Unix(), 10)
	sig := "v1=" + hex.EncodeToString(auth.Sign([]byte(secret), stamp, method, body))
	return withHeader(auth.HeaderTimestamp, stamp, auth.HeaderSignature, sig)
}

// expect checks err against want (OK, or a refusal with its reason).
func expect(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if want == codes.OK {
		if err != nil {
			t.Errorf("%s: %v, want it answered", what, err)
		}
		return
	}
	reason := map[codes.Code]string{codes.Unauthenticated: "ERROR_REASON_UNAUTHENTICATED", codes.PermissionDenied: "ERROR_REASON_PERMISSION_DENIED"}[want]
	if status.Code(err) != want || apierr.Reason(err) != reason {
		t.Errorf("%s: %v, want %v (%s)", what, err, want, reason)
	}
	for _, s := range secrets() {
		if err != nil && strings.Contains(err.Error(), s) {
			t.Errorf("%s: the error shows a credential", what)
		}
	}
}

func TestGuardRefusesBeforeTheHandler(t *testing.T) {
	h := newHarness(t, auth.Options{Rules: serviceRules(), Config: fullConfig()}, nil)
	plain := h.dial(t, rpc.ClientOptions{})
	mesh := h.dial(t, rpc.ClientOptions{PerRPC: h.guard.MeshCredentials()})
	dc, sc, ic := decisionv1.NewDecisionServiceClient(plain), scoringv1.NewScoringServiceClient(plain), intakev1.NewIntakeServiceClient(plain)
	const decide = decisionv1.DecisionService_Decide_FullMethodName
	req := &decisionv1.DecideRequest{UserId: "mallory", AttemptId: "a-1"}
	other := &decisionv1.DecideRequest{UserId: "mallory", AttemptId: "a-2"}
	now := time.Now()
	decideAs := func(ctx context.Context) error { _, err := dc.Decide(ctx, req); return err }
	getAs := func(ctx context.Context) error {
		_, err := dc.GetDecision(ctx, &decisionv1.GetDecisionRequest{DecisionId: "d-1"})
		return err
	}
	watchAs := func(ctx context.Context) error {
		s, err := sc.WatchRisk(ctx, &scoringv1.WatchRiskRequest{UserId: "u"})
		if err == nil {
			_, err = s.Recv()
		}
		return err
	}
	ingestStreamAs := func(c intakev1.IntakeServiceClient, ctx context.Context) error {
		s, err := c.IngestStream(ctx)
		if err == nil {
			// A stream the server refused ends Send with io.EOF; its
			// status comes with the answer.
			if err = s.Send(&intakev1.IngestStreamRequest{}); err == nil || errors.Is(err, io.EOF) {
				_, err = s.CloseAndRecv()
			}
		}
		return err
	}
	tests := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"Decide without credentials", func() error { return decideAs(context.Background()) }, codes.Unauthenticated},
		{"Decide with the hook token", func() error { return decideAs(bearer(hookToken)) }, codes.OK},
		{"Decide with the bare hook token", func() error { return decideAs(withHeader("authorization", hookToken)) }, codes.OK},
		{"Decide with a lower-case scheme", func() error { return decideAs(withHeader("authorization", "bearer "+hookToken)) }, codes.OK},
		{"Decide with the token under another scheme", func() error { return decideAs(withHeader("authorization", "Basic "+hookToken)) }, codes.Unauthenticated},
		{"Decide with an empty bearer", func() error { return decideAs(withHeader("authorization", "Bearer ")) }, codes.Unauthenticated},
		{"Decide with a wrong token", func() error { return decideAs(bearer("not-a-configured-token-000")) }, codes.Unauthenticated},
		{"Decide with the intake token", func() error { return decideAs(bearer(intakeToken)) }, codes.PermissionDenied},
		{"Decide with an operator token", func() error { return decideAs(bearer(operatorToken)) }, codes.PermissionDenied},
		{"Decide with a valid signature", func() error { return decideAs(signed(hookSecret, decide, req, now)) }, codes.OK},
		{"Decide with a signature over another request", func() error { return decideAs(signed(hookSecret, decide, other, now)) }, codes.Unauthenticated},
		{"Decide with a signature by another secret", func() error { return decideAs(signed("another-secret-0123456789", decide, req, now)) }, codes.Unauthenticated},
		{"Decide with a signature for another method", func() error {
			return decideAs(signed(hookSecret, decisionv1.DecisionService_GetDecision_FullMethodName, req, now))
		}, codes.Unauthenticated},
		{"Decide with a stale signature", func() error { return decideAs(signed(hookSecret, decide, req, now.Add(-10*time.Minute))) }, codes.Unauthenticated},
		{"Decide with a signature from the future", func() error { return decideAs(signed(hookSecret, decide, req, now.Add(10*time.Minute))) }, codes.Unauthenticated},
		{"Decide with a signature without timestamp", func() error { return decideAs(withHeader(auth.HeaderSignature, "v1=00")) }, codes.Unauthenticated},
		{"Decide from the mesh", func() error {
			_, err := decisionv1.NewDecisionServiceClient(mesh).Decide(context.Background(), req)
			return err
		}, codes.OK},
		{"Decide with a forged mesh credential", func() error { return decideAs(withHeader("x-pushback-mesh", "guessed")) }, codes.Unauthenticated},
		{"Decide from the mesh with a wrong token besides", func() error {
			_, err := decisionv1.NewDecisionServiceClient(mesh).Decide(bearer("not-a-configured-token-000"), req)
			return err
		}, codes.Unauthenticated},
		{"GetDecision with an operator token", func() error { return getAs(bearer(operatorToken)) }, codes.OK},
		{"GetDecision with the rotated operator token", func() error { return getAs(bearer(operatorToken2)) }, codes.OK},
		{"GetDecision with the hook token", func() error { return getAs(bearer(hookToken)) }, codes.PermissionDenied},
		{"GetDecision with a hook's signature", func() error {
			return getAs(signed(hookSecret, decisionv1.DecisionService_GetDecision_FullMethodName, &decisionv1.GetDecisionRequest{DecisionId: "d-1"}, now))
		}, codes.PermissionDenied},
		{"GetDecision from the mesh", func() error {
			_, err := decisionv1.NewDecisionServiceClient(mesh).GetDecision(context.Background(), &decisionv1.GetDecisionRequest{DecisionId: "d-1"})
			return err
		}, codes.PermissionDenied},
		{"Assess from the mesh", func() error {
			_, err := scoringv1.NewScoringServiceClient(mesh).Assess(context.Background(), &scoringv1.AssessRequest{})
			return err
		}, codes.OK},
		{"Assess with every outside token", func() error {
			var err error
			for _, tok := range []string{hookToken, intakeToken, riskToken, operatorToken} {
				if _, err = sc.Assess(bearer(tok), &scoringv1.AssessRequest{}); status.Code(err) != codes.PermissionDenied {
					return err
				}
			}
			return err
		}, codes.PermissionDenied},
		{"Observe with the intake token", func() error { _, err := sc.Observe(bearer(intakeToken), &scoringv1.ObserveRequest{}); return err }, codes.PermissionDenied},
		{"WatchRisk without credentials", func() error { return watchAs(context.Background()) }, codes.Unauthenticated},
		{"WatchRisk with the risk token", func() error { return watchAs(bearer(riskToken)) }, codes.OK},
		{"WatchRisk with an operator token", func() error { return watchAs(bearer(operatorToken)) }, codes.OK},
		{"WatchRisk with the hook token", func() error { return watchAs(bearer(hookToken)) }, codes.PermissionDenied},
		{"WatchRisk with a signature", func() error {
			return watchAs(signed(hookSecret, scoringv1.ScoringService_WatchRisk_FullMethodName, &scoringv1.WatchRiskRequest{UserId: "u"}, now))
		}, codes.Unauthenticated},
		// The mesh watches for the HTTP risk feed (after checking the
		// risk reader's token there).
		{"WatchRisk from the mesh", func() error {
			s, err := scoringv1.NewScoringServiceClient(mesh).WatchRisk(context.Background(), &scoringv1.WatchRiskRequest{UserId: "u"})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}, codes.OK},
		{"Ingest with the intake token", func() error { _, err := ic.Ingest(bearer(intakeToken), &intakev1.IngestRequest{}); return err }, codes.OK},
		{"IngestStream with the intake token", func() error { return ingestStreamAs(ic, bearer(intakeToken)) }, codes.OK},
		{"IngestStream without credentials", func() error { return ingestStreamAs(ic, context.Background()) }, codes.Unauthenticated},
		{"IngestStream from the mesh", func() error { return ingestStreamAs(intakev1.NewIntakeServiceClient(mesh), context.Background()) }, codes.PermissionDenied},
		{"health without credentials", func() error {
			_, err := healthpb.NewHealthClient(plain).Check(context.Background(), &healthpb.HealthCheckRequest{})
			return err
		}, codes.OK},
		{"reflection without credentials", func() error { return reflect(plain, context.Background()) }, codes.Unauthenticated},
		{"reflection with the hook token", func() error { return reflect(plain, bearer(hookToken)) }, codes.OK},
		{"a method without a rule", func() error {
			_, err := testpb.NewTestServiceClient(plain).EmptyCall(bearer(operatorToken), &testpb.Empty{})
			return err
		}, codes.PermissionDenied},
	}
	var refused, answered int64
	for _, tc := range tests {
		before := h.calls.Load()
		err := tc.call()
		expect(t, tc.name, err, tc.want)
		switch {
		case tc.want != codes.OK && h.calls.Load() != before:
			t.Errorf("%s: refused, yet a handler ran", tc.name)
		case tc.want != codes.OK:
			refused++
		case !strings.HasPrefix(tc.name, "health") && !strings.HasPrefix(tc.name, "reflection"):
			answered++
		}
	}
	if got := h.calls.Load(); got != answered {
		t.Errorf("%d handler calls, want %d", got, answered)
	}
	// "Assess with every outside token" refuses four calls.
	if got := h.rejected.Load(); got != refused+3 {
		t.Errorf("%d refusals counted, want %d", got, refused+3)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, `"msg":"call refused"`) || !strings.Contains(logs, `"method":"/pushback.scoring.v1.ScoringService/Assess"`) ||
		!strings.Contains(logs, `"code":"permission_denied"`) || !strings.Contains(logs, `"roles":"hook"`) {
		t.Errorf("refusals are not logged with method, code and roles:\n%s", logs)
	}
	for _, s := range secrets() {
		if strings.Contains(logs, s) {
			t.Errorf("the log shows a credential:\n%s", logs)
		}
	}
}

func reflect(conn *grpc.ClientConn, ctx context.Context) error {
	s, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return err
	}
	// A stream the server refused ends Send with io.EOF; Recv has its status.
	if err := s.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	_, err = s.Recv()
	return err
}

// The newcomer's mesh answers every caller, credentials or not; a method
// the table does not know stays refused.
func TestOpenGuardAnswersEveryone(t *testing.T) {
	h := newHarness(t, auth.Options{Rules: serviceRules(), Config: auth.Default(), Open: true}, nil)
	conn := h.dial(t, rpc.ClientOptions{})
	for name, err := range map[string]error{
		"Decide": func() error {
			_, err := decisionv1.NewDecisionServiceClient(conn).Decide(context.Background(), &decisionv1.DecideRequest{})
			return err
		}(),
		"Observe": func() error {
			_, err := scoringv1.NewScoringServiceClient(conn).Observe(context.Background(), &scoringv1.ObserveRequest{})
			return err
		}(),
		"GetDecision with a token": func() error {
			_, err := decisionv1.NewDecisionServiceClient(conn).GetDecision(bearer("whatever-token-0123456789"), &decisionv1.GetDecisionRequest{})
			return err
		}(),
	} {
		expect(t, name, err, codes.OK)
	}
	_, err := testpb.NewTestServiceClient(conn).EmptyCall(context.Background(), &testpb.Empty{})
	expect(t, "a method without a rule", err, codes.PermissionDenied)
}

// --allow-unauthenticated lets a caller without credentials in as a hook
// or a log shipper, where that role has no credential; never further.
func TestAllowUnauthenticatedOpensOnlyHooksAndShippers(t *testing.T) {
	cfg := auth.Config{MaxSkew: auth.DefaultMaxSkew, OperatorTokens: []string{operatorToken}, AllowUnauthenticated: true}
	h := newHarness(t, auth.Options{Rules: serviceRules(), Config: cfg}, nil)
	conn := h.dial(t, rpc.ClientOptions{})
	dc, sc, ic := decisionv1.NewDecisionServiceClient(conn), scoringv1.NewScoringServiceClient(conn), intakev1.NewIntakeServiceClient(conn)
	ctx := context.Background()
	_, err := dc.Decide(ctx, &decisionv1.DecideRequest{})
	expect(t, "anonymous Decide", err, codes.OK)
	_, err = ic.Ingest(ctx, &intakev1.IngestRequest{})
	expect(t, "anonymous Ingest", err, codes.OK)
	_, err = dc.GetDecision(ctx, &decisionv1.GetDecisionRequest{})
	expect(t, "anonymous GetDecision", err, codes.Unauthenticated)
	_, err = sc.Assess(ctx, &scoringv1.AssessRequest{})
	expect(t, "anonymous Assess", err, codes.Unauthenticated)
	_, err = sc.GetRisk(ctx, &scoringv1.GetRiskRequest{})
	expect(t, "anonymous GetRisk", err, codes.Unauthenticated)
	_, err = dc.Decide(bearer("not-a-configured-token-000"), &decisionv1.DecideRequest{})
	expect(t, "Decide with a wrong token", err, codes.Unauthenticated)

	// Once hooks have a credential, it is required.
	cfg.HookTokens = []string{hookToken}
	h = newHarness(t, auth.Options{Rules: serviceRules(), Config: cfg}, nil)
	conn = h.dial(t, rpc.ClientOptions{})
	_, err = decisionv1.NewDecisionServiceClient(conn).Decide(ctx, &decisionv1.DecideRequest{})
	expect(t, "anonymous Decide with hook tokens set", err, codes.Unauthenticated)
	_, err = intakev1.NewIntakeServiceClient(conn).Ingest(ctx, &intakev1.IngestRequest{})
	expect(t, "anonymous Ingest without an intake token", err, codes.OK)
}

// One token configured for two roles gives its holder both, and the
// configuration says so.
func TestSharedTokenHoldsEveryRoleItIsConfiguredFor(t *testing.T) {
	cfg := auth.Config{MaxSkew: auth.DefaultMaxSkew, HookTokens: []string{hookToken}, OperatorTokens: []string{hookToken}}
	if got := cfg.Shared(); len(got) != 1 || fmt.Sprint(got[0]) != "[hook operator]" {
		t.Fatalf("Shared = %v", got)
	}
	h := newHarness(t, auth.Options{Rules: serviceRules(), Config: cfg}, nil)
	dc := decisionv1.NewDecisionServiceClient(h.dial(t, rpc.ClientOptions{}))
	_, err := dc.Decide(bearer(hookToken), &decisionv1.DecideRequest{})
	expect(t, "Decide", err, codes.OK)
	_, err = dc.GetDecision(bearer(hookToken), &decisionv1.GetDecisionRequest{})
	expect(t, "GetDecision", err, codes.OK)
}

// Peer services are known by the URI SAN of their certificate; a
// certificate that names no service is no role at all.
func TestPeerServicesAreKnownByTheirCertificate(t *testing.T) {
	files, err := devcerts.WriteFiles(t.TempDir(), []string{"scoring", "decision", "intake", "client"}, []string{"localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	server, _, _, err := rpc.MutualTLS(files.Node["scoring"][0], files.Node["scoring"][1], files.CA)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, auth.Options{Rules: serviceRules(), Config: fullConfig()}, server)
	as := func(name string) scoringv1.ScoringServiceClient {
		// The in-process client side verifies the server as localhost,
		// the name every certificate here holds.
		_, _, inproc, err := rpc.MutualTLS(files.Node[name][0], files.Node[name][1], files.CA)
		if err != nil {
			t.Fatal(err)
		}
		return scoringv1.NewScoringServiceClient(h.dial(t, rpc.ClientOptions{Creds: inproc}))
	}
	ctx := context.Background()
	for _, tc := range []struct {
		cert, token     string
		assess, observe codes.Code
	}{
		{"decision", "", codes.OK, codes.OK},
		{"intake", "", codes.PermissionDenied, codes.OK},
		{"scoring", "", codes.PermissionDenied, codes.PermissionDenied},
		{"client", "", codes.Unauthenticated, codes.Unauthenticated},
		{"client", riskToken, codes.PermissionDenied, codes.PermissionDenied},
	} {
		c := as(tc.cert)
		call := ctx
		if tc.token != "" {
			call = bearer(tc.token)
		}
		_, err := c.Assess(call, &scoringv1.AssessRequest{})
		expect(t, tc.cert+" Assess", err, tc.assess)
		_, err = c.Observe(call, &scoringv1.ObserveRequest{})
		expect(t, tc.cert+" Observe", err, tc.observe)
	}
	_, err = as("client").GetRisk(bearer(riskToken), &scoringv1.GetRiskRequest{})
	expect(t, "client GetRisk with the risk token", err, codes.OK)
}

// The HTTP endpoints take the same credentials for their role: 401 without
// a valid one, 403 with another role's, and the handler reads the body the
// signature covered.
func TestGuardHTTP(t *testing.T) {
	var reached atomic.Int64
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	})
	guard := func(o auth.Options) *httptest.Server {
		g, err := auth.NewGuard(o)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(g.HTTP("POST /v1/decide", auth.Hook, echo))
		t.Cleanup(srv.Close)
		return srv
	}
	srv := guard(auth.Options{Rules: serviceRules(), Config: fullConfig()})
	post := func(srv *httptest.Server, body string, sign func(*http.Request, []byte)) (int, string, http.Header) {
		r, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/decide", strings.NewReader(body))
		if sign != nil {
			sign(r, []byte(body))
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	token := func(tok string) func(*http.Request, []byte) {
		return func(r *http.Request, b []byte) { auth.Credentials{Token: tok}.SignHTTP(r, b) }
	}
	hmacAt := func(secret string, signed string, at time.Time) func(*http.Request, []byte) {
		return func(r *http.Request, _ []byte) {
			auth.Credentials{HMACSecret: secret, Now: func() time.Time { return at }}.SignHTTP(r, []byte(signed))
		}
	}
	now := time.Now()
	for _, tc := range []struct {
		name string
		sign func(*http.Request, []byte)
		body string
		code int
	}{
		{"no credentials", nil, `{"a":1}`, 401},
		{"wrong token", token("not-a-configured-token-000"), `{"a":1}`, 401},
		{"operator token", token(operatorToken), `{"a":1}`, 403},
		{"hook token", token(hookToken), `{"a":1}`, 200},
		{"signature", hmacAt(hookSecret, `{"attemptId":"a-2"}`, now), `{"attemptId":"a-2"}`, 200},
		{"signature, proto field name", hmacAt(hookSecret, `{"attempt_id":"a-2"}`, now), `{"attempt_id":"a-2"}`, 200},
		// A replayable signed call: it must name its attempt.
		{"signature without attempt id", hmacAt(hookSecret, `{"a":2}`, now), `{"a":2}`, 400},
		{"tampered body", hmacAt(hookSecret, `{"attemptId":"a-2"}`, now), `{"attemptId":"a-3"}`, 401},
		{"stale signature", hmacAt(hookSecret, `{"attemptId":"a-2"}`, now.Add(-time.Hour)), `{"attemptId":"a-2"}`, 401},
	} {
		before := reached.Load()
		code, body, hdr := post(srv, tc.body, tc.sign)
		if code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.code)
		}
		switch {
		case code == 200 && body != tc.body:
			t.Errorf("%s: the handler read %q, want the signed body", tc.name, body)
		case code != 200 && reached.Load() != before:
			t.Errorf("%s: refused, yet the handler ran", tc.name)
		case code == 401 && hdr.Get("WWW-Authenticate") == "":
			t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
		case code == 401 && !strings.Contains(body, "ERROR_REASON_UNAUTHENTICATED"), code == 403 && !strings.Contains(body, "ERROR_REASON_PERMISSION_DENIED"),
			code == 400 && !strings.Contains(body, "attempt_id"):
			t.Errorf("%s: body %s", tc.name, body)
		}
	}
	if code, _, _ := post(guard(auth.Options{Rules: serviceRules(), Config: auth.Default(), Open: true}), `{}`, nil); code != 200 {
		t.Errorf("open guard: %d", code)
	}
	if code, _, _ := post(guard(auth.Options{Rules: serviceRules(), Config: auth.Config{MaxSkew: time.Minute, AllowUnauthenticated: true}}), `{}`, nil); code != 200 {
		t.Errorf("anonymous hook under allow-unauthenticated: %d", code)
	}
}

func TestCredentialsNeverShowASecret(t *testing.T) {
	g, err := auth.NewGuard(auth.Options{Rules: serviceRules(), Config: fullConfig()})
	if err != nil {
		t.Fatal(err)
	}
	mesh, err := g.MeshCredentials().GetRequestMetadata(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var shown []string
	for _, v := range []any{g, g.MeshCredentials(), auth.Credentials{Token: hookToken}, auth.Credentials{HMACSecret: hookSecret}, fullConfig(), struct{ Auth auth.Config }{fullConfig()}} {
		shown = append(shown, fmt.Sprint(v), fmt.Sprintf("%+v", v), fmt.Sprintf("%#v", v))
	}
	var b bytes.Buffer
	slog.New(slog.NewJSONHandler(&b, nil)).Info("x", "guard", g, "creds", auth.Credentials{Token: hookToken})
	shown = append(shown, b.String())
	for _, s := range shown {
		for _, secret := range append(secrets(), mesh["x-pushback-mesh"]) {
			if strings.Contains(s, secret) {
				t.Errorf("%q shows a credential", s)
			}
		}
	}
	cfg := auth.Default()
	for _, st := range cfg.Settings() {
		if strings.Contains(st.Name, "token") || strings.Contains(st.Name, "secret") {
			if !st.Secret {
				t.Errorf("setting %s is not marked secret", st.Name)
			}
		}
	}
}

func TestConfigRefusesShortCredentials(t *testing.T) {
	for _, c := range []auth.Config{
		{MaxSkew: time.Minute, HookTokens: []string{"short"}},
		{MaxSkew: time.Minute, HookHMACSecrets: []string{"short"}},
		{MaxSkew: time.Minute, IntakeToken: "short"},
		{MaxSkew: time.Minute, ScoringTokens: []string{"short"}},
		{MaxSkew: time.Minute, OperatorTokens: []string{operatorToken, "short"}},
		{MaxSkew: 0},
	} {
		errs := c.Validate()
		if len(errs) == 0 {
			t.Errorf("%+v accepted", c)
		}
		if _, err := auth.NewGuard(auth.Options{Rules: serviceRules(), Config: c}); err == nil {
			t.Errorf("NewGuard(%+v) accepted", c)
		}
		for _, err := range errs {
			if strings.Contains(err.Error(), "short\"") || strings.Contains(err.Error(), operatorToken) {
				t.Errorf("the error shows the value: %v", err)
			}
		}
	}
}

// TestSignedDecideWithoutAttemptIDIsRefused plays the replay of a captured
// signed Decide: the signature binds the request, not the moment, so a call
// without an attempt id could be sent again within the skew window and
// count as another push. It is refused before the handler; a signed call
// with an attempt id (whose replay is the same attempt) is answered, and a
// token-authenticated call needs none.
func TestSignedDecideWithoutAttemptIDIsRefused(t *testing.T) {
	h := newHarness(t, auth.Options{Rules: serviceRules(), Config: fullConfig()}, nil)
	dc := decisionv1.NewDecisionServiceClient(h.dial(t, rpc.ClientOptions{}))
	decide := decisionv1.DecisionService_Decide_FullMethodName
	now := time.Now()
	bare := &decisionv1.DecideRequest{UserId: "mallory"}
	before := h.calls.Load()
	for range 2 { // the capture, then its replay
		_, err := dc.Decide(signed(hookSecret, decide, bare, now), bare)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "attempt_id") {
			t.Fatalf("signed Decide without attempt id: %v, want InvalidArgument naming attempt_id", err)
		}
	}
	if h.calls.Load() != before {
		t.Fatal("a signed call without an attempt id reached the handler")
	}
	named := &decisionv1.DecideRequest{UserId: "mallory", AttemptId: "a-1"}
	if _, err := dc.Decide(signed(hookSecret, decide, named, now), named); err != nil {
		t.Fatalf("signed Decide with an attempt id: %v", err)
	}
	if _, err := dc.Decide(bearer(hookToken), bare); err != nil {
		t.Fatalf("token Decide without an attempt id: %v", err)
	}
}

// A route transcoded into an RPC takes the RPC's rule from the table, and
// refusals are named by the method; the OpenAPI document's route takes
// any caller the guard knows.
func TestGuardHTTPMethodAndAnyCaller(t *testing.T) {
	var rejected []string
	g, err := auth.NewGuard(auth.Options{Rules: serviceRules(), Config: fullConfig(), OnReject: func(m string) { rejected = append(rejected, m) }})
	if err != nil {
		t.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	get := func(h http.Handler, tok string) int {
		r := httptest.NewRequest(http.MethodGet, "/v1/x", nil)
		if tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 && !strings.Contains(w.Body.String(), "ERROR_REASON_") {
			t.Errorf("refusal without the JSON error: %s", w.Body)
		}
		return w.Code
	}
	for _, tc := range []struct {
		name, method, token string
		code                int
	}{
		{"GetDecision, operator", decisionv1.DecisionService_GetDecision_FullMethodName, operatorToken, 200},
		{"GetDecision, rotated operator token", decisionv1.DecisionService_GetDecision_FullMethodName, operatorToken2, 200},
		{"GetDecision, no token", decisionv1.DecisionService_GetDecision_FullMethodName, "", 401},
		{"GetDecision, wrong token", decisionv1.DecisionService_GetDecision_FullMethodName, "not-a-configured-token-000", 401},
		{"GetDecision, hook", decisionv1.DecisionService_GetDecision_FullMethodName, hookToken, 403},
		{"GetDecision, risk reader", decisionv1.DecisionService_GetDecision_FullMethodName, riskToken, 403},
		{"GetRisk, risk reader", scoringv1.ScoringService_GetRisk_FullMethodName, riskToken, 200},
		{"GetRisk, operator", scoringv1.ScoringService_GetRisk_FullMethodName, operatorToken, 200},
		{"Notify, operator", notifyv1.NotificationService_Notify_FullMethodName, operatorToken, 403},
		{"health, anyone", healthpb.Health_Check_FullMethodName, "", 200},
		{"a method without a rule", "/pushback.decision.v1.DecisionService/Nothing", operatorToken, 403},
	} {
		rejected = nil
		if code := get(g.HTTPMethod(tc.method, ok), tc.token); code != tc.code {
			t.Errorf("%s: %d, want %d", tc.name, code, tc.code)
		}
		if tc.code != 200 && (len(rejected) != 1 || rejected[0] != tc.method) {
			t.Errorf("%s: refusal named %v, want %s", tc.name, rejected, tc.method)
		}
	}
	doc := g.HTTPAnyCaller("GET /v1/openapi.json", ok)
	for _, tok := range []string{hookToken, intakeToken, riskToken, operatorToken} {
		if code := get(doc, tok); code != 200 {
			t.Errorf("any caller with %s...: %d", tok[:6], code)
		}
	}
	if code := get(doc, ""); code != 401 {
		t.Errorf("any caller, anonymous: %d, want 401", code)
	}
	open, err := auth.NewGuard(auth.Options{Rules: serviceRules(), Config: auth.Default(), Open: true})
	if err != nil {
		t.Fatal(err)
	}
	if get(open.HTTPMethod(decisionv1.DecisionService_GetDecision_FullMethodName, ok), "") != 200 || get(open.HTTPAnyCaller("doc", ok), "") != 200 {
		t.Error("the open guard refused")
	}
}

// serviceRules is a table of the services' methods for the guard to
// enforce in these tests, as the services declare theirs.
func serviceRules() map[string]auth.Rule {
	return map[string]auth.Rule{
		decisionv1.DecisionService_Decide_FullMethodName:        {Roles: []auth.Role{auth.Hook, auth.Mesh}},
		decisionv1.DecisionService_GetDecision_FullMethodName:   {Roles: []auth.Role{auth.Operator}},
		decisionv1.DecisionService_ListDecisions_FullMethodName: {Roles: []auth.Role{auth.Operator}},
		decisionv1.DecisionService_ClearCooldown_FullMethodName: {Roles: []auth.Role{auth.Operator}},
		intakev1.IntakeService_Ingest_FullMethodName:            {Roles: []auth.Role{auth.LogShipper, auth.Mesh}},
		intakev1.IntakeService_IngestStream_FullMethodName:      {Roles: []auth.Role{auth.LogShipper}},
		intakev1.IntakeService_ListEvents_FullMethodName:        {Roles: []auth.Role{auth.Operator}},
		scoringv1.ScoringService_Assess_FullMethodName:          {Roles: []auth.Role{auth.Decision, auth.Mesh}},
		scoringv1.ScoringService_Observe_FullMethodName:         {Roles: []auth.Role{auth.Decision, auth.Intake, auth.Mesh}},
		scoringv1.ScoringService_GetRisk_FullMethodName:         {Roles: []auth.Role{auth.RiskReader, auth.Operator}},
		scoringv1.ScoringService_WatchRisk_FullMethodName:       {Roles: []auth.Role{auth.RiskReader, auth.Operator, auth.Mesh}},
		scoringv1.ScoringService_ListRiskChanges_FullMethodName: {Roles: []auth.Role{auth.Decision, auth.Mesh, auth.RiskReader}},
	}
}

// A service cannot loosen a rule of the server's own methods.
func TestTwoRulesForOneMethodAreRefused(t *testing.T) {
	for m := range auth.ServerRules() {
		if _, err := auth.NewGuard(auth.Options{Config: auth.Default(), Rules: map[string]auth.Rule{m: {Anyone: true}}}); err == nil {
			t.Errorf("a second rule for %s was taken", m)
		}
	}
}
