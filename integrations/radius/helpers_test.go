package radius

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"github.com/pushbackhq/pushback/services/decision"
	"github.com/pushbackhq/pushback/services/mesh"
	"google.golang.org/grpc"
	layeh "layeh.com/radius"
	"layeh.com/radius/rfc2865"
)

// Credentials of the tests' mesh and RADIUS peers. They are test values,
// long enough for the checks on them.
const (
	hookToken      = "radius-test-hook-token-0123456789"
	intakeToken    = "radius-test-intake-token-0123456789"
	operatorToken  = "radius-test-operator-token-012345"
	vpnSecret      = "vpn-shared-secret-0123456789"
	upstreamSecret = "upstream-shared-secret-0123456789"
)

// numberMatchPolicy asks for number matching on the application
// "vpn-number-match", for a phishing-resistant factor on
// "vpn-phishing-resistant", and otherwise is a plain push-burst policy.
const numberMatchPolicy = `version: radius-test
default_tier: standard
tiers:
  standard:
    failure_mode: number_match
rules:
  - name: number-match-app
    when: app == "vpn-number-match"
    outcome: REQUIRE_NUMBER_MATCH
    reason: this VPN always asks for number matching
  - name: phishing-resistant-app
    when: app == "vpn-phishing-resistant" && !phishing_resistant
    outcome: REQUIRE_PHISHING_RESISTANT
    reason: this VPN takes security keys only
  - name: burst-deny
    when: pushes["10m"] >= 5
    outcome: DENY
    reason: 5 or more push attempts in 10 minutes look like push bombing
`

// testMesh is the whole mesh in this process, with authentication on.
type testMesh struct {
	addr     string
	counters *decision.Counters
	// decider is a hook's client, intake a log shipper's, events and
	// decisions an operator's.
	decider   decisionv1.DecisionServiceClient
	intake    intakev1.IntakeServiceClient
	events    intakev1.IntakeServiceClient
	decisions decisionv1.DecisionServiceClient
}

// startMesh runs the mesh with the production wiring; policy is a policy
// text ("" for the built-in default).
func startMesh(t testing.TB, policy string) *testMesh {
	t.Helper()
	cfg := mesh.Default()
	cfg.DataDir = t.TempDir()
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", ""
	cfg.Auth.HookTokens = []string{hookToken}
	cfg.Auth.IntakeToken = intakeToken
	cfg.Auth.OperatorTokens = []string{operatorToken}
	// These tests are not about deadlines: a loaded machine must not turn
	// decisions into failure-mode answers.
	cfg.Decision.Budget = 5 * time.Second
	if policy != "" {
		cfg.Decision.PolicyFile = filepath.Join(t.TempDir(), "policy.yaml")
		if err := os.WriteFile(cfg.Decision.PolicyFile, []byte(policy), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	counters := &decision.Counters{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- mesh.Run(ctx, cfg, mesh.Options{Getenv: func(string) string { return "" }, DecisionCounters: counters,
			Logger: slog.New(slog.DiscardHandler), Ready: func(g, _ string) { ready <- g }})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("mesh did not start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("mesh did not start within 60s")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("mesh stopped with %v", err)
		}
	})
	dial := func(token string) *grpc.ClientConn {
		conn, err := rpc.Dial(addr, rpc.ClientOptions{Unary: []grpc.UnaryClientInterceptor{auth.Credentials{Token: token}.UnaryClientInterceptor()}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	ops := dial(operatorToken)
	return &testMesh{addr: addr, counters: counters,
		decider:   decisionv1.NewDecisionServiceClient(dial(hookToken)),
		intake:    intakev1.NewIntakeServiceClient(dial(intakeToken)),
		events:    intakev1.NewIntakeServiceClient(ops),
		decisions: decisionv1.NewDecisionServiceClient(ops)}
}

// eventsOf lists a user's events as intake stored them.
func (m *testMesh) eventsOf(t testing.TB, user string) []*eventv1.AuthEvent {
	t.Helper()
	resp, err := m.events.ListEvents(context.Background(), &intakev1.ListEventsRequest{UserId: user, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetEvents()
}

// waitForEvents waits until the user's events include want (types, in
// any order, each at least once) and returns them all.
func (m *testMesh) waitForEvents(t testing.TB, user string, want ...eventv1.EventType) []*eventv1.AuthEvent {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		events := m.eventsOf(t, user)
		seen := map[eventv1.EventType]bool{}
		for _, e := range events {
			seen[e.GetType()] = true
		}
		missing := false
		for _, w := range want {
			missing = missing || !seen[w]
		}
		if !missing {
			return events
		}
		if time.Now().After(deadline) {
			t.Fatalf("events of %s: want %v among %v", user, want, events)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer collects a logger's output for a test to read.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// gateUnderTest is a gate serving on a loopback port.
type gateUnderTest struct {
	addr     string
	counters *Counters
	logs     *syncBuffer
	stop     func()
}

// startGate runs a gate in front of upstream, asking decider and
// reporting to ingester (nil: no reports).
func startGate(t testing.TB, decider Decider, ingester Ingester, upstream string, edit func(*Config)) *gateUnderTest {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Secret, cfg.UpstreamSecret = vpnSecret, upstreamSecret
	cfg.Upstream = upstream
	cfg.DecisionAddr = "127.0.0.1:1" // only validated: the tests pass decider in
	cfg.DecideTimeout = 10 * time.Second
	cfg.UpstreamTimeout = 10 * time.Second
	if edit != nil {
		edit(&cfg)
	}
	counters := &Counters{}
	logs := &syncBuffer{}
	ready := make(chan net.Addr, 1)
	g, err := New(cfg, Options{Decider: decider, Ingester: ingester, Counters: counters,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Ready:  func(a net.Addr) { ready <- a }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.ListenAndServe(ctx) }()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("gate did not start: %v", err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("gate stopped with %v", err)
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("the gate's log:\n%s", logs.String())
		}
		// Nothing secret is ever logged.
		for _, secret := range []string{vpnSecret, upstreamSecret, hookToken, intakeToken, "correct-horse"} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("the gate logged a secret (%q):\n%s", secret, logs.String())
			}
		}
	})
	return &gateUnderTest{addr: addr.String(), counters: counters, logs: logs, stop: stop}
}

// fakeUpstream is an MFA proxy written from RFC 2865 and 3579: it checks
// the secret and Message-Authenticator of each request, accepts the one
// password it knows, and signs its answers.
type fakeUpstream struct {
	addr string
	// calls counts the requests it answered.
	calls atomic.Int64
	mu    sync.Mutex
	// passwords are those it received, in order.
	passwords []string
	// delay holds each answer back (a push waiting for the phone).
	delay time.Duration
	// unsigned leaves Message-Authenticator out of the answers.
	unsigned bool
	// silent never answers.
	silent bool
	// challenge answers a request without State with Access-Challenge
	// carrying this State.
	challenge string
	password  string
}

func startFakeUpstream(t testing.TB, password string, edit func(*fakeUpstream)) *fakeUpstream {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeUpstream{addr: conn.LocalAddr().String(), password: password}
	if edit != nil {
		edit(f)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = conn.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, layeh.MaxPacketLength)
		for {
			n, src, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			b := append([]byte(nil), buf[:n]...)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if wire := f.answer(b); wire != nil {
					_, _ = conn.WriteTo(wire, src)
				}
			}()
		}
	}()
	return f
}

func (f *fakeUpstream) answer(b []byte) []byte {
	secret := []byte(upstreamSecret)
	req, err := layeh.Parse(b, secret)
	if err != nil || req.Code != layeh.CodeAccessRequest {
		return nil
	}
	if present, err := messageAuthenticator(b, secret, nil); !present || err != nil {
		return nil
	}
	pw, err := rfc2865.UserPassword_Lookup(req)
	if err != nil {
		return nil
	}
	f.mu.Lock()
	f.passwords = append(f.passwords, string(pw))
	f.mu.Unlock()
	f.calls.Add(1)
	if f.silent {
		return nil
	}
	time.Sleep(f.delay)
	code := layeh.CodeAccessReject
	_, hasState := req.Lookup(rfc2865.State_Type)
	switch {
	case f.challenge != "" && !hasState:
		code = layeh.CodeAccessChallenge
	case string(pw) == f.password:
		code = layeh.CodeAccessAccept
	}
	resp := req.Response(code)
	if code == layeh.CodeAccessChallenge {
		_ = rfc2865.State_SetString(resp, f.challenge)
		_ = rfc2865.ReplyMessage_SetString(resp, "upstream: choose a factor")
	} else {
		_ = rfc2865.ReplyMessage_SetString(resp, "upstream: "+code.String())
	}
	for _, a := range req.Attributes {
		if a.Type == rfc2865.ProxyState_Type {
			resp.Attributes = append(resp.Attributes, a)
		}
	}
	if f.unsigned {
		wire, _ := resp.Encode()
		return wire
	}
	wire, _ := encodeResponse(resp, req.Authenticator)
	return wire
}

func (f *fakeUpstream) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.passwords...)
}

// accessRequest builds an Access-Request from the VPN.
func accessRequest(t testing.TB, user, password, nasID, callingIP string) *layeh.Packet {
	t.Helper()
	p := layeh.New(layeh.CodeAccessRequest, []byte(vpnSecret))
	must(t, rfc2865.UserName_SetString(p, user))
	must(t, rfc2865.UserPassword_SetString(p, password))
	if nasID != "" {
		must(t, rfc2865.NASIdentifier_SetString(p, nasID))
	}
	if callingIP != "" {
		must(t, rfc2865.CallingStationID_SetString(p, callingIP))
	}
	return p
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// vpn is a RADIUS client socket that sends exactly the bytes a test gives
// it, retransmits included.
type vpn struct {
	t    testing.TB
	conn net.Conn
}

func newVPN(t testing.TB, gateAddr string) *vpn {
	t.Helper()
	conn, err := net.Dial("udp", gateAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &vpn{t: t, conn: conn}
}

// signed encodes p with a Message-Authenticator, as a VPN patched against
// Blast-RADIUS does.
func signed(t testing.TB, p *layeh.Packet) []byte {
	t.Helper()
	b, err := encodeRequest(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (v *vpn) send(b []byte) {
	v.t.Helper()
	if _, err := v.conn.Write(b); err != nil {
		v.t.Fatal(err)
	}
}

// read returns the next answer's bytes, or nil when none comes within d.
func (v *vpn) read(d time.Duration) []byte {
	v.t.Helper()
	_ = v.conn.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, layeh.MaxPacketLength)
	n, err := v.conn.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// exchange sends req and returns the verified answer.
func (v *vpn) exchange(req []byte, d time.Duration) *layeh.Packet {
	v.t.Helper()
	v.send(req)
	b := v.read(d)
	if b == nil {
		v.t.Fatalf("no answer within %s", d)
	}
	return verifyAnswer(v.t, b, req)
}

// verifyAnswer checks an answer as a VPN does: its Response Authenticator
// and its Message-Authenticator, which must be there, first.
func verifyAnswer(t testing.TB, b, req []byte) *layeh.Packet {
	t.Helper()
	if !layeh.IsAuthenticResponse(b, req, []byte(vpnSecret)) {
		t.Fatal("the answer's Response Authenticator is wrong")
	}
	var auth [16]byte
	copy(auth[:], req[4:20])
	present, err := messageAuthenticator(b, []byte(vpnSecret), &auth)
	if !present || err != nil {
		t.Fatalf("the answer's Message-Authenticator: present %v, %v", present, err)
	}
	if b[headerLen] != 80 {
		t.Fatalf("the answer's first attribute is %d, not Message-Authenticator", b[headerLen])
	}
	p, err := layeh.Parse(b, []byte(vpnSecret))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func replyMessage(p *layeh.Packet) string {
	msgs, _ := rfc2865.ReplyMessage_GetStrings(p)
	return strings.Join(msgs, "")
}
