package radius

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	"google.golang.org/grpc"
	layeh "layeh.com/radius"
	"layeh.com/radius/rfc2865"
)

// offlineDecider answers without the network, never ALLOW (which would
// call the MFA proxy): the outcome is chosen by the request.
type offlineDecider struct{}

func (offlineDecider) Decide(_ context.Context, in *decisionv1.DecideRequest, _ ...grpc.CallOption) (*decisionv1.DecideResponse, error) {
	outcomes := []decisionv1.Outcome{decisionv1.Outcome_OUTCOME_DENY, decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH,
		decisionv1.Outcome_OUTCOME_REQUIRE_PHISHING_RESISTANT, decisionv1.Outcome_OUTCOME_UNSPECIFIED}
	return &decisionv1.DecideResponse{Outcome: outcomes[len(in.GetUserId())%len(outcomes)], Reasons: []string{in.GetUserId()},
		DecisionId: "d-1"}, nil
}

// FuzzGatePacket feeds the gate datagrams from outside: whatever arrives,
// the gate neither panics nor answers with a packet a VPN could not take.
func FuzzGatePacket(f *testing.F) {
	seed := func(p *layeh.Packet) {
		b, err := encodeRequest(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(accessRequest(f, "alice", "correct-horse", "vpn", "203.0.113.5"))
	seed(accessRequest(f, "al", "pw,123456", "", "00:11:22:33:44:55"))
	withState := accessRequest(f, "bob", "123456", "vpn", "")
	_ = rfc2865.State_SetString(withState, statePrefix+"00")
	withState.Add(rfc2865.ProxyState_Type, []byte{1, 2, 3})
	seed(withState)
	seed(layeh.New(layeh.CodeStatusServer, []byte(vpnSecret)))
	unsigned, _ := accessRequest(f, "carol", "pw", "vpn", "").Encode()
	f.Add(unsigned)
	f.Add([]byte{1, 0, 0, 20})

	cfg := validConfig()
	cfg.RequireMessageAuthenticator = false
	cfg.Upstream = "127.0.0.1:9"
	cfg.UpstreamTimeout = 100 * time.Millisecond
	g, err := New(cfg, Options{Decider: offlineDecider{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	src := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4000}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, _ := g.parse(b, src)
		if req == nil {
			return
		}
		resp := g.handle(context.Background(), req)
		if resp == nil {
			return
		}
		wire, err := encodeResponse(resp, req.pkt.Authenticator)
		if err != nil {
			t.Fatalf("the answer does not encode: %v", err)
		}
		if len(wire) > layeh.MaxPacketLength {
			t.Fatalf("an answer of %d bytes", len(wire))
		}
		switch resp.Code {
		case layeh.CodeAccessReject, layeh.CodeAccessChallenge:
		case layeh.CodeAccessAccept:
			if req.pkt.Code != layeh.CodeStatusServer {
				t.Fatal("the gate accepted a login on its own")
			}
		default:
			t.Fatalf("answer code %v", resp.Code)
		}
	})
}
