package radius

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"google.golang.org/grpc"
	layeh "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
)

// A VPN retransmits an Access-Request while the push waits for the phone,
// and again when an answer is lost. Every copy must get the same answer
// from one decision and one upstream request: a second upstream request
// would be a second push.
func TestRetransmitsAreOneDecisionAndOnePush(t *testing.T) {
	m := startMesh(t, "")
	up := startFakeUpstream(t, "correct-horse", func(f *fakeUpstream) { f.delay = 700 * time.Millisecond })
	g := startGate(t, m.decider, m.intake, up.addr, nil)

	wire := signed(t, accessRequest(t, "alice", "correct-horse", "vpn", "203.0.113.5"))
	// layeh's client sends the packet as parsed, so the signed one goes
	// out unchanged, every 50ms until the answer, from one local port.
	pkt, err := layeh.Parse(wire, []byte(vpnSecret))
	must(t, err)
	local := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: freeUDPPort(t)}
	client := &layeh.Client{Retry: 50 * time.Millisecond, Dialer: net.Dialer{LocalAddr: local}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first, err := client.Exchange(ctx, pkt, g.addr)
	must(t, err)
	if first.Code != layeh.CodeAccessAccept {
		t.Fatalf("answer %v (%s), want Access-Accept", first.Code, replyMessage(first))
	}
	if n := g.counters.Retransmits.Load(); n < 3 {
		t.Fatalf("the gate saw %d retransmits while the push waited; the test expects several", n)
	}
	// The answer was lost: the VPN sends the same packet again, from the
	// same port, after the answer went out.
	again, err := (&layeh.Client{Dialer: net.Dialer{LocalAddr: local}}).Exchange(ctx, pkt, g.addr)
	must(t, err)
	a, _ := first.MarshalBinary()
	b, _ := again.MarshalBinary()
	if !bytes.Equal(a, b) {
		t.Fatal("a retransmit after the answer got a different answer")
	}
	if n := up.calls.Load(); n != 1 {
		t.Fatalf("the MFA proxy got %d requests (pushes), want 1", n)
	}
	if n := g.counters.Decides.Load(); n != 1 {
		t.Fatalf("the gate asked Decide %d times, want 1", n)
	}
	if n := m.counters.Decisions.Load(); n != 1 {
		t.Fatalf("the mesh made %d decisions, want 1", n)
	}

	// The same identifier with a new authenticator is a new login.
	other := accessRequest(t, "alice", "correct-horse", "vpn", "203.0.113.5")
	other.Identifier = pkt.Identifier
	v := newVPN(t, g.addr)
	if ans := v.exchange(signed(t, other), 20*time.Second); ans.Code != layeh.CodeAccessAccept {
		t.Fatalf("a new login got %v", ans.Code)
	}
	if n := up.calls.Load(); n != 2 {
		t.Fatalf("the MFA proxy got %d requests, want 2", n)
	}
}

func freeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	must(t, err)
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// Proxy-State attributes come back unchanged and in order, in answers the
// MFA proxy made and in those the gate made itself (RFC 2865 5.33).
func TestProxyStateIsPreserved(t *testing.T) {
	m := startMesh(t, numberMatchPolicy)
	up := startFakeUpstream(t, "correct-horse", nil)
	g := startGate(t, m.decider, m.intake, up.addr, nil)
	v := newVPN(t, g.addr)
	states := [][]byte{{0x01}, []byte("second proxy")}
	withStates := func(p *layeh.Packet) *layeh.Packet {
		for _, s := range states {
			p.Add(rfc2865.ProxyState_Type, s)
		}
		return p
	}
	check := func(name string, ans *layeh.Packet) {
		t.Helper()
		got, _ := rfc2865.ProxyState_Gets(ans)
		if len(got) != len(states) || !bytes.Equal(got[0], states[0]) || !bytes.Equal(got[1], states[1]) {
			t.Fatalf("%s: Proxy-State %q, want %q", name, got, states)
		}
	}
	proxied := v.exchange(signed(t, withStates(accessRequest(t, "dave", "correct-horse", "vpn", ""))), 20*time.Second)
	if proxied.Code != layeh.CodeAccessAccept {
		t.Fatalf("proxied answer %v", proxied.Code)
	}
	check("the MFA proxy's Access-Accept", proxied)

	challenge := v.exchange(signed(t, withStates(accessRequest(t, "dave", "correct-horse", "vpn-number-match", ""))), 20*time.Second)
	if challenge.Code != layeh.CodeAccessChallenge {
		t.Fatalf("answer %v, want the gate's Access-Challenge", challenge.Code)
	}
	check("the gate's Access-Challenge", challenge)

	forged := withStates(accessRequest(t, "dave", "123456", "vpn", ""))
	must(t, rfc2865.State_SetString(forged, "a state nobody issued"))
	reject := v.exchange(signed(t, forged), 20*time.Second)
	if reject.Code != layeh.CodeAccessReject {
		t.Fatalf("answer %v, want the gate's Access-Reject", reject.Code)
	}
	check("the gate's Access-Reject", reject)
	if n := up.calls.Load(); n != 1 {
		t.Fatalf("the MFA proxy got %d requests, want 1", n)
	}
}

// Blast-RADIUS (CVE-2024-3596) forges answers by an MD5 collision, which a
// Message-Authenticator defeats; and without one an Access-Request is not
// authenticated at all: anyone could make the gate push. The gate drops,
// silently (RFC 3579 3.2), requests without one, with a wrong one or with a
// tampered body, before anything is decided or pushed.
func TestMessageAuthenticatorIsRequired(t *testing.T) {
	m := startMesh(t, "")
	up := startFakeUpstream(t, "correct-horse", nil)
	g := startGate(t, m.decider, m.intake, up.addr, nil)

	// layeh's client sends no Message-Authenticator.
	unsigned := accessRequest(t, "erin", "correct-horse", "vpn", "")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if ans, err := layeh.Exchange(ctx, unsigned, g.addr); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an unsigned request got %v, %v; want no answer", ans, err)
	}

	v := newVPN(t, g.addr)
	wrongSecret := accessRequest(t, "erin", "correct-horse", "vpn", "")
	wrongSecret.Secret = []byte("not-the-vpn-secret-0123456789")
	v.send(signed(t, wrongSecret))
	if b := v.read(500 * time.Millisecond); b != nil {
		t.Fatal("a request signed with another secret was answered")
	}
	tampered := signed(t, accessRequest(t, "erin", "correct-horse", "vpn", ""))
	i := bytes.Index(tampered, []byte("erin"))
	copy(tampered[i:], "evil")
	v.send(tampered)
	if b := v.read(500 * time.Millisecond); b != nil {
		t.Fatal("a tampered request was answered")
	}
	status := layeh.New(layeh.CodeStatusServer, []byte(vpnSecret))
	sw, _ := status.Encode()
	v.send(sw)
	if b := v.read(500 * time.Millisecond); b != nil {
		t.Fatal("a Status-Server without Message-Authenticator was answered")
	}
	if n := g.counters.Dropped.Load(); n != 4 {
		t.Fatalf("dropped %d packets, want 4", n)
	}
	if g.counters.Decides.Load() != 0 || m.counters.Decisions.Load() != 0 || up.calls.Load() != 0 {
		t.Fatal("a dropped request reached Decide or the MFA proxy")
	}

	// Status-Server with a Message-Authenticator is answered (RFC 5997).
	if ans := v.exchange(signed(t, layeh.New(layeh.CodeStatusServer, []byte(vpnSecret))), 5*time.Second); ans.Code != layeh.CodeAccessAccept {
		t.Fatalf("Status-Server got %v", ans.Code)
	}

	// A VPN that cannot send one is let in only by choice.
	lax := startGate(t, m.decider, m.intake, up.addr, func(c *Config) { c.RequireMessageAuthenticator = false })
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel2()
	ans, err := layeh.Exchange(ctx2, accessRequest(t, "erin", "correct-horse", "vpn", ""), lax.addr)
	must(t, err)
	if ans.Code != layeh.CodeAccessAccept {
		t.Fatalf("unsigned request with require-message-authenticator=false: %v", ans.Code)
	}
	lv := newVPN(t, lax.addr)
	lv.send(signed(t, wrongSecret))
	if b := lv.read(500 * time.Millisecond); b != nil {
		t.Fatal("a wrong Message-Authenticator was accepted because none is required")
	}
}

// An answer of the MFA proxy without a Message-Authenticator may be a
// Blast-RADIUS forgery: it is dropped, and the login rejected.
func TestUpstreamAnswerWithoutMessageAuthenticatorIsRefused(t *testing.T) {
	m := startMesh(t, "")
	up := startFakeUpstream(t, "correct-horse", func(f *fakeUpstream) { f.unsigned = true })
	g := startGate(t, m.decider, m.intake, up.addr, func(c *Config) { c.UpstreamTimeout = time.Second })
	v := newVPN(t, g.addr)
	ans := v.exchange(signed(t, accessRequest(t, "frank", "correct-horse", "vpn", "")), 20*time.Second)
	if ans.Code != layeh.CodeAccessReject || replyMessage(ans) != msgUpstreamUnverified {
		t.Fatalf("answer %v %q, want Access-Reject %q", ans.Code, replyMessage(ans), msgUpstreamUnverified)
	}
	if !strings.Contains(g.logs.String(), "no Message-Authenticator") {
		t.Fatalf("the log does not say why the answer was dropped:\n%s", g.logs.String())
	}

	lax := startGate(t, m.decider, m.intake, up.addr, func(c *Config) { c.UpstreamRequireMessageAuthenticator = false })
	lv := newVPN(t, lax.addr)
	if ans := lv.exchange(signed(t, accessRequest(t, "frank", "correct-horse", "vpn", "")), 20*time.Second); ans.Code != layeh.CodeAccessAccept {
		t.Fatalf("with upstream-require-message-authenticator=false: %v %q", ans.Code, replyMessage(ans))
	}
}

// stuckDecider never answers: a decision service that hangs.
type stuckDecider struct{}

func (stuckDecider) Decide(ctx context.Context, _ *decisionv1.DecideRequest, _ ...grpc.CallOption) (*decisionv1.DecideResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// When the decision service cannot be asked, the fail mode answers and
// says so; a request it refuses is rejected whatever the fail mode.
func TestDecisionServiceUnavailable(t *testing.T) {
	up := startFakeUpstream(t, "correct-horse", nil)
	conn, err := rpc.Dial("127.0.0.1:"+strconv.Itoa(freeUDPPort(t)), rpc.ClientOptions{})
	must(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	down := decisionv1.NewDecisionServiceClient(conn)

	login := func(t *testing.T, g *gateUnderTest, user string) *layeh.Packet {
		t.Helper()
		return newVPN(t, g.addr).exchange(signed(t, accessRequest(t, user, "correct-horse", "vpn", "")), 30*time.Second)
	}
	t.Run("closed, unreachable", func(t *testing.T) {
		before := up.calls.Load()
		g := startGate(t, down, nil, up.addr, nil)
		ans := login(t, g, "gina")
		if ans.Code != layeh.CodeAccessReject || replyMessage(ans) != msgUncheckedClosed {
			t.Fatalf("answer %v %q", ans.Code, replyMessage(ans))
		}
		if up.calls.Load() != before {
			t.Fatal("failing closed, the gate still asked the MFA proxy")
		}
	})
	t.Run("closed, hanging", func(t *testing.T) {
		g := startGate(t, stuckDecider{}, nil, up.addr, func(c *Config) { c.DecideTimeout = 200 * time.Millisecond })
		if ans := login(t, g, "gina"); ans.Code != layeh.CodeAccessReject || replyMessage(ans) != msgUncheckedClosed {
			t.Fatalf("answer %v %q", ans.Code, replyMessage(ans))
		}
	})
	t.Run("open", func(t *testing.T) {
		before := up.calls.Load()
		g := startGate(t, down, nil, up.addr, func(c *Config) { c.FailMode = FailOpen })
		ans := login(t, g, "gina")
		if ans.Code != layeh.CodeAccessAccept || !strings.Contains(replyMessage(ans), msgUncheckedOpen) {
			t.Fatalf("answer %v %q", ans.Code, replyMessage(ans))
		}
		if up.calls.Load() != before+1 {
			t.Fatal("failing open, the gate did not ask the MFA proxy")
		}
	})
	t.Run("open, but the request is refused", func(t *testing.T) {
		// A user id the decision service refuses (a control character)
		// must not be a way past it by failing open.
		m := startMesh(t, "")
		before := up.calls.Load()
		g := startGate(t, m.decider, nil, up.addr, func(c *Config) { c.FailMode = FailOpen })
		ans := login(t, g, "gina\x1b[2J")
		if ans.Code != layeh.CodeAccessReject || replyMessage(ans) != msgNotChecked {
			t.Fatalf("answer %v %q", ans.Code, replyMessage(ans))
		}
		if up.calls.Load() != before {
			t.Fatal("a refused request reached the MFA proxy")
		}
	})
}

// DENY and REQUIRE_PHISHING_RESISTANT are answered by the gate: an
// Access-Reject that says why and that no push was sent.
func TestGateRejectsWithoutAPush(t *testing.T) {
	m := startMesh(t, numberMatchPolicy)
	up := startFakeUpstream(t, "correct-horse", nil)
	g := startGate(t, m.decider, m.intake, up.addr, nil)
	v := newVPN(t, g.addr)

	ans := v.exchange(signed(t, accessRequest(t, "hank", "correct-horse", "vpn-phishing-resistant", "")), 20*time.Second)
	if ans.Code != layeh.CodeAccessReject || !strings.Contains(replyMessage(ans), "this VPN takes security keys only") ||
		!strings.Contains(replyMessage(ans), "No push was sent") || !strings.Contains(replyMessage(ans), "security key") {
		t.Fatalf("REQUIRE_PHISHING_RESISTANT: %v %q", ans.Code, replyMessage(ans))
	}
	// That attempt counts: three more pushes are allowed, the fifth not.
	for i := range 3 {
		if ans := v.exchange(signed(t, accessRequest(t, "hank", "correct-horse", "vpn", "198.51.100.66")), 20*time.Second); ans.Code != layeh.CodeAccessAccept {
			t.Fatalf("login %d: %v %q", i+2, ans.Code, replyMessage(ans))
		}
	}
	calls := up.calls.Load()
	ans = v.exchange(signed(t, accessRequest(t, "hank", "correct-horse", "vpn", "198.51.100.66")), 20*time.Second)
	msg := replyMessage(ans)
	if ans.Code != layeh.CodeAccessReject || !strings.Contains(msg, "push bombing") || !strings.Contains(msg, "No push was sent") ||
		!strings.Contains(msg, "paused for 15 minutes") {
		t.Fatalf("DENY: %v %q", ans.Code, msg)
	}
	if up.calls.Load() != calls {
		t.Fatal("a denied login reached the MFA proxy")
	}
}

// Number matching cannot be shown in a RADIUS push. The gate asks for the
// authenticator app's passcode instead (Access-Challenge) and sends the MFA
// proxy password,passcode. Each prompt is answered once, by the user and
// VPN it went to, with a passcode: "push" as the answer must not become a
// push.
func TestNumberMatchingAsksForThePasscode(t *testing.T) {
	m := startMesh(t, numberMatchPolicy)
	up := startFakeUpstream(t, "pw-of-ivy,123456", nil)
	g := startGate(t, m.decider, m.intake, up.addr, nil)
	v := newVPN(t, g.addr)
	login := func() *layeh.Packet {
		t.Helper()
		ans := v.exchange(signed(t, accessRequest(t, "ivy", "pw-of-ivy", "vpn-number-match", "203.0.113.9")), 20*time.Second)
		if ans.Code != layeh.CodeAccessChallenge {
			t.Fatalf("answer %v %q, want Access-Challenge", ans.Code, replyMessage(ans))
		}
		return ans
	}
	answer := func(challenge *layeh.Packet, user, passcode string) *layeh.Packet {
		t.Helper()
		req := accessRequest(t, user, passcode, "vpn-number-match", "203.0.113.9")
		must(t, rfc2865.State_Set(req, rfc2865.State_Get(challenge)))
		return v.exchange(signed(t, req), 20*time.Second)
	}

	c := login()
	if s := rfc2865.State_GetString(c); !strings.HasPrefix(s, statePrefix) {
		t.Fatalf("State %q", s)
	}
	if msg := replyMessage(c); !strings.Contains(msg, "passcode") || !strings.Contains(msg, "this VPN always asks for number matching") {
		t.Fatalf("Reply-Message %q", msg)
	}
	if st := rfc2865.SessionTimeout_Get(c); st != 120 {
		t.Fatalf("Session-Timeout %d, want 120", st)
	}
	if ans := answer(c, "ivy", "push"); ans.Code != layeh.CodeAccessReject || replyMessage(ans) != msgBadPasscode {
		t.Fatalf("answering push: %v %q", ans.Code, replyMessage(ans))
	}
	if ans := answer(c, "ivy", "123456"); ans.Code != layeh.CodeAccessReject || replyMessage(ans) != msgPromptExpired {
		t.Fatalf("a prompt answered twice: %v %q", ans.Code, replyMessage(ans))
	}
	if ans := answer(login(), "mallory", "123456"); ans.Code != layeh.CodeAccessReject || replyMessage(ans) != msgPromptExpired {
		t.Fatalf("another user answering: %v %q", ans.Code, replyMessage(ans))
	}
	if n := up.calls.Load(); n != 0 {
		t.Fatalf("the MFA proxy got %d requests before a passcode was given", n)
	}
	if ans := answer(login(), "ivy", "123 456"); ans.Code != layeh.CodeAccessAccept {
		t.Fatalf("the passcode: %v %q", ans.Code, replyMessage(ans))
	}
	// Typed with the password at once, the passcode needs no prompt.
	if ans := v.exchange(signed(t, accessRequest(t, "ivy", "pw-of-ivy,123456", "vpn-number-match", "203.0.113.9")), 20*time.Second); ans.Code != layeh.CodeAccessAccept {
		t.Fatalf("password,passcode: %v %q", ans.Code, replyMessage(ans))
	}
	if got := up.seen(); len(got) != 2 || got[0] != "pw-of-ivy,123456" || got[1] != "pw-of-ivy,123456" {
		t.Fatalf("the MFA proxy got %q", got)
	}
	events := m.waitForEvents(t, "ivy", eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED)
	for _, e := range events {
		if e.GetType() == eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED && e.GetFactor() != eventv1.Factor_FACTOR_TOTP {
			t.Fatalf("a passcode login reported as %v", e.GetFactor())
		}
		if strings.HasPrefix(e.GetType().String(), "EVENT_TYPE_PUSH_") && e.GetSource().GetIdp() == sourceIdP {
			t.Fatalf("a passcode login reported as a push: %v", e)
		}
	}

	// In reject mode the gate answers Access-Reject instead.
	r := startGate(t, m.decider, m.intake, up.addr, func(c *Config) { c.NumberMatchMode = NumberMatchReject })
	ans := newVPN(t, r.addr).exchange(signed(t, accessRequest(t, "ivy", "pw-of-ivy", "vpn-number-match", "")), 20*time.Second)
	if ans.Code != layeh.CodeAccessReject || !strings.Contains(replyMessage(ans), "No push was sent") {
		t.Fatalf("reject mode: %v %q", ans.Code, replyMessage(ans))
	}
}

// The MFA proxy's own Access-Challenge (a factor menu) goes back to the
// VPN, and the answer to it goes to the MFA proxy without a new decision.
// A State the gate did not relay is no way past the decision.
func TestUpstreamChallengeIsRelayed(t *testing.T) {
	m := startMesh(t, "")
	up := startFakeUpstream(t, "1", func(f *fakeUpstream) { f.challenge = "duo-factor-menu" })
	g := startGate(t, m.decider, m.intake, up.addr, nil)
	v := newVPN(t, g.addr)
	c := v.exchange(signed(t, accessRequest(t, "jack", "correct-horse", "vpn", "")), 20*time.Second)
	if c.Code != layeh.CodeAccessChallenge || rfc2865.State_GetString(c) != "duo-factor-menu" || replyMessage(c) != "upstream: choose a factor" {
		t.Fatalf("answer %v state %q %q", c.Code, rfc2865.State_GetString(c), replyMessage(c))
	}
	if _, ok := c.Lookup(rfc2869.MessageAuthenticator_Type); !ok {
		t.Fatal("the relayed challenge is not signed")
	}
	next := accessRequest(t, "jack", "1", "vpn", "")
	must(t, rfc2865.State_SetString(next, "duo-factor-menu"))
	if ans := v.exchange(signed(t, next), 20*time.Second); ans.Code != layeh.CodeAccessAccept {
		t.Fatalf("the answer to the challenge: %v %q", ans.Code, replyMessage(ans))
	}
	if n := g.counters.Decides.Load(); n != 1 {
		t.Fatalf("%d decisions for one login", n)
	}
	forged := accessRequest(t, "jack", "1", "vpn", "")
	must(t, rfc2865.State_SetString(forged, "duo-factor-menu"))
	calls := up.calls.Load()
	if ans := v.exchange(signed(t, forged), 20*time.Second); ans.Code != layeh.CodeAccessReject || replyMessage(ans) != msgPromptExpired {
		t.Fatalf("a State used twice: %v %q", ans.Code, replyMessage(ans))
	}
	if up.calls.Load() != calls {
		t.Fatal("a State the gate did not relay reached the MFA proxy")
	}
}

// What happened to each push goes to intake: approved, denied, timed out.
func TestOutcomesAreReported(t *testing.T) {
	// A policy without the default's number matching from the third push.
	m := startMesh(t, numberMatchPolicy)
	up := startFakeUpstream(t, "correct-horse", nil)
	g := startGate(t, m.decider, m.intake, up.addr, func(c *Config) { c.Tenant = "" })
	v := newVPN(t, g.addr)
	if ans := v.exchange(signed(t, accessRequest(t, "Kate", "correct-horse", "vpn", "203.0.113.5")), 20*time.Second); ans.Code != layeh.CodeAccessAccept {
		t.Fatal(ans.Code)
	}
	if ans := v.exchange(signed(t, accessRequest(t, "kate", "wrong", "vpn", "203.0.113.5")), 20*time.Second); ans.Code != layeh.CodeAccessReject {
		t.Fatal(ans.Code)
	}
	silent := startFakeUpstream(t, "correct-horse", func(f *fakeUpstream) { f.silent = true })
	sg := startGate(t, m.decider, m.intake, silent.addr, func(c *Config) { c.UpstreamTimeout = 300 * time.Millisecond })
	ans := newVPN(t, sg.addr).exchange(signed(t, accessRequest(t, "kate", "correct-horse", "vpn", "203.0.113.5")), 20*time.Second)
	if ans.Code != layeh.CodeAccessReject || replyMessage(ans) != msgUpstreamTimeout {
		t.Fatalf("a push nobody answered: %v %q", ans.Code, replyMessage(ans))
	}
	events := m.waitForEvents(t, "kate", eventv1.EventType_EVENT_TYPE_PUSH_APPROVED, eventv1.EventType_EVENT_TYPE_PUSH_DENIED,
		eventv1.EventType_EVENT_TYPE_PUSH_TIMED_OUT)
	for _, e := range events {
		if e.GetSource().GetIdp() != sourceIdP {
			continue
		}
		if e.GetAppId() != "vpn" || e.GetClient().GetIp() != "203.0.113.5" || e.GetFactor() != eventv1.Factor_FACTOR_PUSH ||
			!strings.HasPrefix(e.GetEventId(), "radius:") {
			t.Fatalf("event %v", e)
		}
	}
	// The counts follow Ingest's answer, which may come after intake
	// stored the events.
	for deadline := time.Now().Add(30 * time.Second); g.counters.Reported.Load() != 2 || sg.counters.Reported.Load() != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("reported %d and %d, want 2 and 1", g.counters.Reported.Load(), sg.counters.Reported.Load())
		}
	}
	if g.counters.ReportsDropped.Load() != 0 || sg.counters.ReportsDropped.Load() != 0 {
		t.Fatal("reports were dropped")
	}
}

// A gate shutting down answers what it is working on within the shutdown
// timeout, and stops.
func TestGracefulShutdown(t *testing.T) {
	m := startMesh(t, "")
	up := startFakeUpstream(t, "correct-horse", func(f *fakeUpstream) { f.delay = 500 * time.Millisecond })
	g := startGate(t, m.decider, m.intake, up.addr, nil)
	v := newVPN(t, g.addr)
	req := signed(t, accessRequest(t, "liam", "correct-horse", "vpn", ""))
	v.send(req)
	for deadline := time.Now().Add(20 * time.Second); up.calls.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the request did not reach the MFA proxy")
		}
	}
	g.stop()
	b := v.read(5 * time.Second)
	if b == nil {
		t.Fatal("the request in flight was not answered")
	}
	if ans := verifyAnswer(t, b, req); ans.Code != layeh.CodeAccessAccept {
		t.Fatalf("answer %v", ans.Code)
	}
	v.send(signed(t, accessRequest(t, "liam", "correct-horse", "vpn", "")))
	if b := v.read(300 * time.Millisecond); b != nil {
		t.Fatal("a stopped gate answered")
	}
}
