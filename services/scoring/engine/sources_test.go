package engine

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestObserveCountsSpraysOverSources: Observe counts the users a source
// pushes to through Sources, per tenant, and a user who approves on their
// own device stops counting; Inspect reads the same count and writes
// nothing.
func TestObserveCountsSpraysOverSources(t *testing.T) {
	c := DefaultConfig()
	src := NewMemSources()
	attacker := ClientInfo{IP: "203.0.113.66", ASN: 64496}
	states := map[string]*UserState{}
	push := func(tenant, user string, at time.Time) *SprayCount {
		t.Helper()
		st := states[tenant+"/"+user]
		if st == nil {
			st = &UserState{}
			c.Apply(st, Observation{ID: "home", Kind: ObsLoginSucceeded, At: after(-24 * time.Hour), Client: nyc})
			states[tenant+"/"+user] = st
		}
		ra, applied, err := c.Observe(src, tenant, user, st, Observation{ID: fmt.Sprint("push-", at.UnixMilli()), Kind: ObsAttempt, At: at, Client: attacker})
		if err != nil || !applied {
			t.Fatalf("observe: %v, applied %v", err, applied)
		}
		if sig := signal(ra, SignalPushSpray); sig != nil {
			return &SprayCount{IP: sig.GetSpray().GetSourceIp(), Users: int(sig.GetSpray().GetDistinctUsers())}
		}
		return nil
	}
	for i := range 4 {
		if sc := push("acme", fmt.Sprint("user", i), after(time.Duration(i)*time.Minute)); sc != nil {
			t.Fatalf("user %d: spray below the threshold: %+v", i, sc)
		}
	}
	// Another tenant's pushes from the same IP are another source.
	for i := range 4 {
		if sc := push("globex", fmt.Sprint("user", i), after(time.Duration(i)*time.Minute)); sc != nil {
			t.Fatalf("globex user %d: tenants share a source: %+v", i, sc)
		}
	}
	// Inspect sees four users and a fifth would cross: it writes no mark.
	fifth := &UserState{}
	c.Apply(fifth, Observation{ID: "home", Kind: ObsLoginSucceeded, At: after(-24 * time.Hour), Client: nyc})
	ra, err := c.Inspect(src, "acme", "user4", fifth, Observation{Kind: ObsAttempt, At: after(4 * time.Minute), Client: attacker})
	if err != nil || signal(ra, SignalPushSpray) != nil {
		t.Fatalf("inspect: %v, %v", err, ra.GetSignals())
	}
	if sc := push("acme", "user4", after(4*time.Minute)); sc == nil || sc.IP != attacker.IP || sc.Users != 5 {
		t.Fatalf("fifth user: %+v, want PUSH_SPRAY from %s over 5 users", sc, attacker.IP)
	}

	// user0 approves on its own device from the source: it vouches, so
	// the next user finds four counted, not six.
	st := states["acme/user0"]
	c.Apply(st, Observation{ID: "enrol", Kind: ObsFactorEnrolled, At: after(-23 * time.Hour), Client: nyc, Responder: ClientInfo{DeviceID: "phone-0"}})
	if _, _, err := c.Observe(src, "acme", "user0", st, Observation{ID: "ok", Kind: ObsPushApproved, At: after(5 * time.Minute), Client: attacker,
		Responder: ClientInfo{DeviceID: "phone-0", IP: attacker.IP, ASN: attacker.ASN}}); err != nil {
		t.Fatal(err)
	}
	m, ok, _ := src.Mark(SourceKey{Tenant: "acme", IP: attacker.IP}, hashID("user0"))
	if !ok || !m.Vouched {
		t.Fatalf("user0's mark after its approval: %+v, %v", m, ok)
	}
	if sc := push("acme", "user5", after(5*time.Minute)); sc == nil || sc.Users != 5 {
		t.Fatalf("sixth user after one vouch: %+v, want 5 counted", sc)
	}
}

// TestMemSourcesExpireAndBound: marks expire on the clock of the marks
// written, and past its limit Recent returns the lowest user hashes, as a
// store's ordered scan does.
func TestMemSourcesExpireAndBound(t *testing.T) {
	src := NewMemSources()
	k := SourceKey{IP: "192.0.2.1"}
	for i := range 10 {
		if err := src.SetMark(k, SourceUser{User: uint64(100 - i), At: int64(i * 1000)}, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// The clock is 9s: marks written at 0-4s have expired.
	got, _ := src.Recent(k, 100)
	if len(got) != 5 {
		t.Fatalf("Recent = %d marks, want the 5 not expired", len(got))
	}
	got, _ = src.Recent(k, 3)
	if users := []uint64{got[0].User, got[1].User, got[2].User}; !slices.Equal(users, []uint64{91, 92, 93}) {
		t.Fatalf("Recent past its limit = %v, want the lowest hashes", users)
	}
	if _, ok, _ := src.Mark(k, 100); ok {
		t.Fatal("an expired mark is still read")
	}
	if m, ok, _ := src.Mark(k, 91); !ok || m.At != 9000 {
		t.Fatalf("Mark = %+v, %v", m, ok)
	}
}

// TestMarkCodec: a mark decodes to what was encoded, and marks written
// before dormant accounts were flagged (0 or 1) decode as they did.
func TestMarkCodec(t *testing.T) {
	for _, m := range []SourceUser{{User: 7, At: 1_700_000_000_000}, {User: 7, At: 5, Vouched: true}, {User: 7, At: -3, Dormant: true}, {User: 7, At: 9, Vouched: true, Dormant: true}} {
		if back, ok := DecodeMark(7, EncodeMark(m)); !ok || back != m {
			t.Errorf("DecodeMark(EncodeMark(%+v)) = %+v, %v", m, back, ok)
		}
	}
	if m, ok := DecodeMark(7, []byte{0x02, 1}); !ok || m != (SourceUser{User: 7, At: 1, Vouched: true}) {
		t.Errorf("a version one vouched mark = %+v, %v", m, ok)
	}
	for _, b := range [][]byte{nil, {0x02}, {0x02, 0, 0}} {
		if _, ok := DecodeMark(7, b); ok {
			t.Errorf("DecodeMark(%v) accepted", b)
		}
	}
}
