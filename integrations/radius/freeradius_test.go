package radius

import (
	"fmt"
	"strings"
	"testing"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/integrations/radius/radiustest"
)

// The acceptance test of the gate, against real RADIUS software: FreeRADIUS
// is the MFA proxy, radclient the VPN, and the whole mesh with the default
// policy decides. A user's own logins go through to the MFA proxy; an
// attacker with the stolen password pushes in a burst, gets number
// matching (a passcode prompt the attacker cannot answer) and, at the
// fifth push in ten minutes, an Access-Reject from the gate itself that
// FreeRADIUS never sees; a wrong password still gets FreeRADIUS's own
// reject; and what the MFA proxy answered is reported to intake.
func TestAcceptanceBurstIsStoppedAtTheGate(t *testing.T) {
	radiustest.Need(t, "freeradius", "radclient")
	fr := radiustest.StartFreeRADIUS(t, upstreamSecret, []radiustest.User{
		{Name: "alice", Password: "correct-horse", Reply: "freeradius: welcome alice"},
		{Name: "bob", Password: "battery-staple", Reply: "freeradius: welcome bob"},
	})
	m := startMesh(t, "")
	g := startGate(t, m.decider, m.intake, fr.Addr, nil)

	login := func(user, password, ip, session string) radiustest.Answer {
		t.Helper()
		return radiustest.Radclient(t, g.addr, vpnSecret, fmt.Sprintf(
			"User-Name=%s,User-Password=%s,NAS-Identifier=vpn,Calling-Station-Id=%s,Acct-Session-Id=%s,Proxy-State=0x%x",
			user, password, ip, session, session), 30*time.Second)
	}
	sawSession := func(session string) bool {
		return strings.Contains(fr.Log(), fmt.Sprintf("Acct-Session-Id = %q", session))
	}
	expect := func(a radiustest.Answer, code, session string) {
		t.Helper()
		if a.Code != code {
			t.Fatalf("%s: answer %q, want %s; radclient said:\n%s", session, a.Code, code, a.Output)
		}
		// radclient checked the Message-Authenticator; Proxy-State comes back.
		if ps := a.Get("Proxy-State"); len(ps) != 1 || ps[0] != fmt.Sprintf("0x%x", session) {
			t.Fatalf("%s: Proxy-State %q", session, ps)
		}
		if len(a.Get("Message-Authenticator")) != 1 {
			t.Fatalf("%s: no Message-Authenticator in the answer:\n%s", session, a.Output)
		}
	}

	// The user signs in twice from home: both proxied, both accepted.
	for _, s := range []string{"alice-1", "alice-2"} {
		a := login("alice", "correct-horse", "203.0.113.5", s)
		expect(a, "Access-Accept", s)
		if a.ReplyMessage() != "freeradius: welcome alice" || !sawSession(s) {
			t.Fatalf("%s was not FreeRADIUS's answer: %q", s, a.ReplyMessage())
		}
	}
	// The attacker's burst from elsewhere: the third and fourth pushes in
	// five minutes need number matching, which over RADIUS is a passcode
	// prompt; no push goes out.
	for _, s := range []string{"attack-3", "attack-4"} {
		a := login("alice", "correct-horse", "198.51.100.66", s)
		expect(a, "Access-Challenge", s)
		if !strings.Contains(a.ReplyMessage(), "passcode") || len(a.Get("State")) != 1 {
			t.Fatalf("%s: %q", s, a.ReplyMessage())
		}
		if sawSession(s) {
			t.Fatalf("%s reached FreeRADIUS", s)
		}
	}
	// The fifth push in ten minutes: the gate rejects it itself.
	a := login("alice", "correct-horse", "198.51.100.66", "attack-5")
	expect(a, "Access-Reject", "attack-5")
	msg := a.ReplyMessage()
	if !strings.Contains(msg, "push bombing") || !strings.Contains(msg, "No push was sent") {
		t.Fatalf("attack-5: Reply-Message %q", msg)
	}
	if sawSession("attack-5") {
		t.Fatal("FreeRADIUS saw the request the gate denied")
	}
	if n := fr.Requests(); n != 2 {
		t.Fatalf("FreeRADIUS received %d Access-Requests, want 2", n)
	}

	// A wrong password is FreeRADIUS's to reject, and its reject comes back.
	a = login("bob", "wrong-password", "203.0.113.7", "bob-1")
	expect(a, "Access-Reject", "bob-1")
	if a.ReplyMessage() != radiustest.RejectReply || !sawSession("bob-1") {
		t.Fatalf("bob-1: %q is not FreeRADIUS's reject", a.ReplyMessage())
	}

	// Scoring hears what the MFA proxy answered.
	for _, e := range m.waitForEvents(t, "alice", eventv1.EventType_EVENT_TYPE_PUSH_APPROVED) {
		if e.GetSource().GetIdp() == sourceIdP && e.GetClient().GetIp() != "203.0.113.5" {
			t.Fatalf("event %v", e)
		}
	}
	m.waitForEvents(t, "bob", eventv1.EventType_EVENT_TYPE_PUSH_DENIED)
}

// Number matching through real software: radclient answers the gate's
// passcode prompt with the State it got, and FreeRADIUS, holding
// password,passcode as Duo's append mode would see it, accepts.
func TestNumberMatchingThroughFreeRADIUS(t *testing.T) {
	radiustest.Need(t, "freeradius", "radclient")
	fr := radiustest.StartFreeRADIUS(t, upstreamSecret, []radiustest.User{
		{Name: "carol", Password: "correct-horse,246810", Reply: "freeradius: welcome carol"},
	})
	m := startMesh(t, numberMatchPolicy)
	g := startGate(t, m.decider, m.intake, fr.Addr, nil)

	c := radiustest.Radclient(t, g.addr, vpnSecret,
		"User-Name=carol,User-Password=correct-horse,NAS-Identifier=vpn-number-match,Calling-Station-Id=203.0.113.8", 30*time.Second)
	if c.Code != "Access-Challenge" || len(c.Get("State")) != 1 || !strings.Contains(c.ReplyMessage(), "passcode") {
		t.Fatalf("answer %q:\n%s", c.Code, c.Output)
	}
	if fr.Requests() != 0 {
		t.Fatal("FreeRADIUS was asked before the passcode came")
	}
	a := radiustest.Radclient(t, g.addr, vpnSecret, fmt.Sprintf(
		"User-Name=carol,User-Password=246810,NAS-Identifier=vpn-number-match,Calling-Station-Id=203.0.113.8,State=%s", c.Get("State")[0]), 30*time.Second)
	if a.Code != "Access-Accept" || a.ReplyMessage() != "freeradius: welcome carol" {
		t.Fatalf("answer %q:\n%s", a.Code, a.Output)
	}
	if fr.Requests() != 1 {
		t.Fatalf("FreeRADIUS received %d requests, want 1", fr.Requests())
	}
}
