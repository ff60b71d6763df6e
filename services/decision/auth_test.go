package decision_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/httpapi"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"github.com/pushbackhq/pushback/services/decision"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const testSecret = "hmac-secret-0123456789abcdef"

// signedCtx signs msg for method with secret at ts, as a hook would.
func signedCtx(secret, method string, msg proto.Message, ts time.Time) context.Context {
	body, _ := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	stamp := strconv.FormatInt(ts.Unix(), 10)
	sig := "v1=" + hex.EncodeToString(decision.Sign([]byte(secret), stamp, method, body))
	return metadata.AppendToOutgoingContext(context.Background(), decision.HeaderTimestamp, stamp, decision.HeaderSignature, sig)
}

func TestGRPCAuthentication(t *testing.T) {
	e := newEnv(t, envOptions{policy: testPolicy, auth: decision.AuthOptions{Tokens: []string{testToken, "second-token-for-rotation"}, HMACSecrets: []string{testSecret}}})
	anon := decisionv1.NewDecisionServiceClient(e.conn)
	const decide = "/pushback.decision.v1.DecisionService/Decide"
	now := time.Now()
	r := req("mallory", "mail", "a-1", t0)
	other := req("mallory", "mail", "a-2", t0)
	bearer := func(tok string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", tok)
	}
	tests := []struct {
		name string
		ctx  context.Context
		ok   bool
	}{
		{"no credentials", context.Background(), false},
		{"wrong token", bearer("Bearer not-the-token-at-all-000"), false},
		{"token with the wrong scheme", bearer("Basic " + testToken), false},
		{"empty bearer", bearer("Bearer "), false},
		{"signature over another request", signedCtx(testSecret, decide, other, now), false},
		{"signature with another secret", signedCtx("another-secret-0123456789", decide, r, now), false},
		{"signature for another method", signedCtx(testSecret, "/pushback.decision.v1.DecisionService/GetDecision", r, now), false},
		{"stale signature", signedCtx(testSecret, decide, r, now.Add(-10*time.Minute)), false},
		{"signature from the future", signedCtx(testSecret, decide, r, now.Add(10*time.Minute)), false},
		{"signature without timestamp", metadata.AppendToOutgoingContext(context.Background(), decision.HeaderSignature, "v1=00"), false},
		{"second token", bearer("Bearer second-token-for-rotation"), true},
		{"valid signature", signedCtx(testSecret, decide, r, now), true},
	}
	var failures int64
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := anon.Decide(tc.ctx, r)
			if tc.ok {
				if err != nil {
					t.Fatalf("Decide: %v", err)
				}
				return
			}
			failures++
			if status.Code(err) != codes.Unauthenticated || apierr.Reason(err) != "ERROR_REASON_UNAUTHENTICATED" {
				t.Fatalf("Decide = %v, %v; want Unauthenticated", resp, err)
			}
			if strings.Contains(status.Convert(err).Message(), testToken) || strings.Contains(status.Convert(err).Message(), testSecret) {
				t.Fatalf("error leaks a credential: %v", err)
			}
		})
	}
	// Only the accepted calls were recorded (both for attempt a-1).
	if recs := e.list(t, "mallory"); len(recs) != 1 {
		t.Fatalf("%d decisions recorded, want 1", len(recs))
	}
	if n := e.counters.AuthFailures.Load(); n != failures {
		t.Fatalf("AuthFailures = %d, want %d", n, failures)
	}
	risk, err := e.scoring.GetRisk(context.Background(), &scoringv1.GetRiskRequest{UserId: "mallory", Time: timestamppb.New(t0)})
	if err != nil {
		t.Fatal(err)
	}
	if got := risk.GetAssessment().GetWindows()[0].GetAttempts(); got != 1 {
		t.Fatalf("scoring counted %d attempts, want 1: rejected calls must not count", got)
	}

	// Every decision RPC is guarded; scoring on the same server is not.
	ctx := context.Background()
	calls := map[string]func() error{
		"GetDecision": func() error {
			_, err := anon.GetDecision(ctx, &decisionv1.GetDecisionRequest{DecisionId: "x"})
			return err
		},
		"ListDecisions": func() error {
			_, err := anon.ListDecisions(ctx, &decisionv1.ListDecisionsRequest{UserId: "mallory"})
			return err
		},
		"ClearCooldown": func() error {
			_, err := anon.ClearCooldown(ctx, &decisionv1.ClearCooldownRequest{UserId: "mallory"})
			return err
		},
	}
	for name, call := range calls {
		if err := call(); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s without credentials: %v", name, err)
		}
	}
	if _, err := e.scoring.GetRisk(ctx, &scoringv1.GetRiskRequest{UserId: "mallory"}); err != nil {
		t.Errorf("scoring call was guarded: %v", err)
	}
}

func TestHMACClientCredentials(t *testing.T) {
	e := newEnv(t, envOptions{policy: testPolicy, auth: decision.AuthOptions{HMACSecrets: []string{testSecret}}})
	if r := e.decide(t, req("nina", "mail", "h-1", t0)); r.GetOutcome() != decisionv1.Outcome_OUTCOME_ALLOW {
		t.Fatalf("%v", r.GetOutcome())
	}
	if _, err := e.dc.ListDecisions(context.Background(), &decisionv1.ListDecisionsRequest{UserId: "nina"}); err != nil {
		t.Fatalf("ListDecisions with a signature: %v", err)
	}
}

func TestAuthenticatorRejectsShortSecrets(t *testing.T) {
	for _, o := range []decision.AuthOptions{{Tokens: []string{"short"}}, {HMACSecrets: []string{"short"}}} {
		if _, err := decision.NewAuthenticator(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	a, err := decision.NewAuthenticator(decision.AuthOptions{Tokens: []string{testToken}})
	if err != nil {
		t.Fatal(err)
	}
	if s := a.String(); strings.Contains(s, testToken) {
		t.Fatalf("String shows the token: %s", s)
	}
	if s := (decision.Credentials{Token: testToken}).String(); strings.Contains(s, testToken) {
		t.Fatalf("Credentials.String shows the token: %s", s)
	}
}

func TestHTTPAuthentication(t *testing.T) {
	e := newEnv(t, envOptions{policy: testPolicy, auth: decision.AuthOptions{Tokens: []string{testToken}, HMACSecrets: []string{testSecret}}})
	authn, err := decision.NewAuthenticator(decision.AuthOptions{Tokens: []string{testToken}, HMACSecrets: []string{testSecret}, Counters: e.counters})
	if err != nil {
		t.Fatal(err)
	}
	// The gateway reaches the service in memory with the mesh's own credential.
	mc := decision.Credentials{Token: testToken}
	conn, err := e.inproc.Dial(rpc.ClientOptions{Unary: []grpc.UnaryClientInterceptor{mc.UnaryClientInterceptor()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	srv := httptest.NewServer(authn.HTTP(decision.HTTPHandler(decisionv1.NewDecisionServiceClient(conn))))
	t.Cleanup(srv.Close)

	body := func(attempt string) []byte {
		b, _ := protojson.Marshal(req("oscar", "mail", attempt, t0))
		return b
	}
	post := func(b []byte, sign func(*http.Request)) (int, []byte) {
		r, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/decide", bytes.NewReader(b))
		r.Header.Set("Content-Type", "application/json")
		if sign != nil {
			sign(r)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	hmacSign := func(secret string, signed []byte, at time.Time) func(*http.Request) {
		return func(r *http.Request) {
			decision.Credentials{HMACSecret: secret, Now: func() time.Time { return at }}.SignHTTP(r, signed)
		}
	}
	now := time.Now()
	tests := []struct {
		name    string
		body    []byte
		sign    func(*http.Request)
		code    int
		attempt string
	}{
		{"no credentials", body("h-1"), nil, 401, ""},
		{"wrong token", body("h-2"), func(r *http.Request) { r.Header.Set("Authorization", "Bearer wrong-token-0123456789") }, 401, ""},
		{"tampered body", body("h-3"), hmacSign(testSecret, body("h-other"), now), 401, ""},
		{"stale signature", body("h-4"), hmacSign(testSecret, body("h-4"), now.Add(-time.Hour)), 401, ""},
		{"wrong secret", body("h-5"), hmacSign("not-the-secret-0123456789", body("h-5"), now), 401, ""},
		{"bearer token", body("ok-1"), func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+testToken) }, 200, "ok-1"},
		{"signature", body("ok-2"), hmacSign(testSecret, body("ok-2"), now), 200, "ok-2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out := post(tc.body, tc.sign)
			if code != tc.code {
				t.Fatalf("status %d (%s), want %d", code, out, tc.code)
			}
			if code == 401 {
				var eb httpapi.ErrorBody
				if err := json.Unmarshal(out, &eb); err != nil || eb.Error.Code != "UNAUTHENTICATED" || eb.Error.Reason != "ERROR_REASON_UNAUTHENTICATED" {
					t.Fatalf("401 body %s", out)
				}
				return
			}
			var resp decisionv1.DecideResponse
			if err := protojson.Unmarshal(out, &resp); err != nil || resp.GetDecisionId() == "" {
				t.Fatalf("body %s: %v", out, err)
			}
		})
	}
	recs := e.list(t, "oscar")
	if len(recs) != 2 {
		t.Fatalf("%d decisions recorded, want the 2 authenticated ones", len(recs))
	}
	for _, rec := range recs {
		if a := rec.GetRequest().GetAttemptId(); a != "ok-1" && a != "ok-2" {
			t.Fatalf("recorded a rejected call: %s", a)
		}
	}
}
