package radius

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	layeh "layeh.com/radius"
)

func TestDupCache(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := newDupCache(30*time.Second, 3)
	k := dupKey{src: "192.0.2.1:4000", id: 7}
	if _, st := c.begin(k, now); st != dupNew {
		t.Fatal("a new request is not new")
	}
	if _, st := c.begin(k, now); st != dupInFlight {
		t.Fatal("a retransmit in flight is not seen")
	}
	c.finish(k, []byte("answer"), now)
	if a, st := c.begin(k, now.Add(29*time.Second)); st != dupAnswered || string(a) != "answer" {
		t.Fatalf("a retransmit within the window: %q %v", a, st)
	}
	// Another port, identifier or authenticator is another request.
	for _, other := range []dupKey{{src: "192.0.2.1:4001", id: 7}, {src: k.src, id: 8}, {src: k.src, id: 7, auth: [16]byte{1}}} {
		if _, st := c.begin(other, now); st != dupNew {
			t.Fatalf("%v taken for a retransmit", other)
		}
		c.finish(other, nil, now)
	}
	if _, st := c.begin(k, now.Add(30*time.Second)); st != dupNew {
		t.Fatal("an answer outlived its window")
	}
	// A dropped request is forgotten, so that its retransmit is worked on.
	c.finish(k, nil, now)
	if _, st := c.begin(k, now); st != dupNew {
		t.Fatal("a dropped request is still in flight")
	}
	// Past its bound the oldest answer goes first.
	for i := range 5 {
		ki := dupKey{src: "192.0.2.2:1", id: byte(i)}
		c.begin(ki, now)
		c.finish(ki, []byte{byte(i)}, now)
	}
	if n := c.len(); n != 3+1 { // three answers and k in flight
		t.Fatalf("%d entries, want 4", n)
	}
	if _, st := c.begin(dupKey{src: "192.0.2.2:1", id: 0}, now); st != dupNew {
		t.Fatal("the oldest answer was kept past the bound")
	}
}

func TestPendingStore(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := newPendingStore(2*time.Minute, 2)
	ip := netip.MustParseAddr("192.0.2.1")
	p := &pending{user: "alice", srcIP: ip, nasID: "vpn", password: []byte("correct-horse")}
	a, b := newState(), newState()
	if a == b || !strings.HasPrefix(a, statePrefix) {
		t.Fatalf("states %q %q", a, b)
	}
	must(t, s.put(a, p, now))
	must(t, s.put(b, &pending{password: []byte("x")}, now))
	if err := s.put(newState(), &pending{}, now); err != errTooManyPending || s.len() != 2 {
		t.Fatalf("a third challenge: %v, %d waiting", err, s.len())
	}
	got, ok := s.take(a, now.Add(time.Minute))
	if !ok || got != p || !got.matches("alice", ip, "vpn") || got.matches("alice", ip, "vpn-2") || got.matches("Alice", ip, "vpn") {
		t.Fatal("take")
	}
	got.wipe()
	if !bytes.Equal(p.password, make([]byte, len("correct-horse"))) {
		t.Fatal("the password was not wiped")
	}
	if _, ok := s.take(a, now); ok {
		t.Fatal("a challenge answered twice")
	}
	held := s.m[b]
	if _, ok := s.take(b, now.Add(2*time.Minute)); ok {
		t.Fatal("an expired challenge was answered")
	}
	if held.password[0] != 0 {
		t.Fatal("an expired challenge's password was not wiped")
	}
}

func TestAttemptID(t *testing.T) {
	p := layeh.New(layeh.CodeAccessRequest, []byte(vpnSecret))
	id := attemptID("vpn", p, "alice")
	if id != attemptID("vpn", p, "alice") || !strings.HasPrefix(id, "radius:") || len(id) != len("radius:")+32 {
		t.Fatalf("attempt id %q", id)
	}
	q := *p
	q.Authenticator[0] ^= 1
	for _, other := range []string{attemptID("vpn-2", p, "alice"), attemptID("vpn", p, "bob"), attemptID("vpn", &q, "alice")} {
		if other == id {
			t.Fatal("two logins share an attempt id")
		}
	}
}

func TestCallingIP(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.5": "203.0.113.5", " 203.0.113.5 ": "203.0.113.5", "203.0.113.5:51234": "203.0.113.5",
		"2001:db8::1": "2001:db8::1", "[2001:db8::1]:443": "2001:db8::1", "::ffff:203.0.113.5": "203.0.113.5",
		"00-11-22-33-44-55": "", "00:11:22:33:44:55": "", "": "", "vpn-client": "",
	} {
		if got := callingIP(in); got != want {
			t.Errorf("callingIP(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReplyMessage(t *testing.T) {
	p := layeh.New(layeh.CodeAccessReject, []byte(vpnSecret))
	msg := strings.Repeat("é", 300) + "\x1b[2J\n"
	addReplyMessage(p, msg)
	var joined string
	for _, a := range p.Attributes {
		if len(a.Attribute) > 253 {
			t.Fatalf("an attribute of %d bytes", len(a.Attribute))
		}
		joined += string(a.Attribute)
	}
	if joined != strings.Repeat("é", 300)+" [2J " {
		t.Fatalf("joined %q", joined)
	}
	long := layeh.New(layeh.CodeAccessReject, []byte(vpnSecret))
	addReplyMessage(long, strings.Repeat("x", 5000))
	if replyMessage(long) != strings.Repeat("x", maxReply) {
		t.Fatal("a long message was not cut")
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		15 * time.Minute: "15 minutes", time.Minute: "1 minute", 2 * time.Hour: "2 hours", 90 * time.Minute: "1 hour 30 minutes",
		61 * time.Minute: "1 hour 1 minute", 10 * time.Second: "1 minute", 14*time.Minute + time.Second: "15 minutes",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestAppOf(t *testing.T) {
	g := &Gate{cfg: Config{AppMap: map[string]string{"asa-1": "vpn-prod"}}}
	if g.appOf("asa-1") != "vpn-prod" || g.appOf("asa-2") != "asa-2" || g.appOf("") != "" {
		t.Fatal("without --app")
	}
	g.cfg.App = "vpn"
	if g.appOf("asa-1") != "vpn-prod" || g.appOf("asa-2") != "vpn" || g.appOf("") != "vpn" {
		t.Fatal("with --app")
	}
}
