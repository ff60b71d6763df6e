package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/services/notify"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/set")

// TestUserSubjectFormats: an id is sent as an email only when it is one
// plain address; an id spelled to pass for one is opaque, so a receiver
// that matches users by email never matches it to somebody's mailbox.
func TestUserSubjectFormats(t *testing.T) {
	cases := []struct {
		name, id, email string
		format, value   string
	}{
		{"plain address", "alice@example.com", "", "email", "alice@example.com"},
		{"subaddress and dots", "a.b+tag@mail.example.co.uk", "", "email", "a.b+tag@mail.example.co.uk"},
		{"known email wins over the id", "00u1abc", "alice@example.com", "email", "alice@example.com"},
		{"opaque id", "00u1abc", "", "opaque", "00u1abc"},
		{"broken known email, email id", "alice@example.com", "Alice <alice@example.com>", "email", "alice@example.com"},
		{"broken known email, opaque id", "00u1abc", "not an address", "opaque", "00u1abc"},
		{"only a broken email", "", "Alice <alice@example.com>", "opaque", "Alice <alice@example.com>"},
		{"dotless domain", "a@b", "", "opaque", "a@b"},
		{"display name", "Alice <a@b.com>", "", "opaque", "Alice <a@b.com>"},
		{"angle brackets", "<a@b.com>", "", "opaque", "<a@b.com>"},
		{"list", "a@b.com,c@d.com", "", "opaque", "a@b.com,c@d.com"},
		{"list with space", "a@b.com, c@d.com", "", "opaque", "a@b.com, c@d.com"},
		{"comment", "a@b.com (admin)", "", "opaque", "a@b.com (admin)"},
		{"quoted local part", `"a b"@example.com`, "", "opaque", `"a b"@example.com`},
		{"leading space", " a@b.com", "", "opaque", " a@b.com"},
		{"trailing newline", "a@b.com\n", "", "opaque", "a@b.com\n"},
		{"Cyrillic a in the local part", "\u0430dmin@example.com", "", "opaque", "\u0430dmin@example.com"},
		{"Cyrillic o in the domain", "admin@ex\u0430mple.com", "", "opaque", "admin@ex\u0430mple.com"},
		{"fullwidth at sign", "admin\uff20example.com", "", "opaque", "admin\uff20example.com"},
		{"zero-width space", "ad\u200bmin@example.com", "", "opaque", "ad\u200bmin@example.com"},
		{"punycode domain", "a@xn--exmple-cua.com", "", "email", "a@xn--exmple-cua.com"},
		{"address literal", "a@[192.0.2.1]", "", "opaque", "a@[192.0.2.1]"},
		{"IP without brackets", "a@192.0.2.1", "", "opaque", "a@192.0.2.1"},
		{"two at signs", "a@b@example.com", "", "opaque", "a@b@example.com"},
		{"empty label", "a@example..com", "", "opaque", "a@example..com"},
		{"hyphen at a label's edge", "a@-example.com", "", "opaque", "a@-example.com"},
		{"trailing dot", "a@example.com.", "", "opaque", "a@example.com."},
		{"local part too long", strings.Repeat("a", 65) + "@example.com", "", "opaque", strings.Repeat("a", 65) + "@example.com"},
		{"longest local part", strings.Repeat("a", 64) + "@example.com", "", "email", strings.Repeat("a", 64) + "@example.com"},
		{"address too long", "a@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("e", 63) + ".com", "",
			"opaque", "a@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("e", 63) + ".com"},
		{"very long id", strings.Repeat("x", 10000) + "@example.com", "", "opaque", strings.Repeat("x", 10000) + "@example.com"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := notify.UserSubject(tc.id, tc.email)
			got := s.ID
			if s.Format == "email" {
				got = s.Email
			}
			if s.Format != tc.format || got != tc.value {
				t.Fatalf("UserSubject(%q, %q) = %+v, want %s %q", tc.id, tc.email, s, tc.format, tc.value)
			}
			if s.Format == "email" && s.ID != "" || s.Format == "opaque" && s.Email != "" {
				t.Fatalf("subject %+v mixes formats", s)
			}
		})
	}
}

// TestSETShapes builds a SET of every event type and compares its claims
// with golden files written after the CAEP 1.0 examples (go test -update
// rewrites them); the field names each event must carry are also checked
// here, so a golden file rewritten by mistake cannot drop one.
func TestSETShapes(t *testing.T) {
	at := timestamppb.New(newClock().Now())
	cases := []struct {
		name     string
		n        *notifyv1.NotifyRequest
		uri      string
		required []string
	}{
		{"session-revoked", &notifyv1.NotifyRequest{UserId: "alice@example.com", Tenant: "acme", SessionId: "sess-9", DecisionId: "dec-1", Time: at,
			SecurityEvent: &notifyv1.SecurityEvent{Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_SESSION_REVOKED,
				ReasonAdmin: "push approved after a burst of push requests (MFA fatigue)", ReasonUser: "your sessions were ended"}},
			notify.EventSessionRevoked, []string{"event_timestamp", "initiating_entity", "reason_admin", "reason_user"}},
		{"assurance-level-change", &notifyv1.NotifyRequest{UserId: "00u1abc", DecisionId: "dec-2", Time: at,
			SecurityEvent: &notifyv1.SecurityEvent{Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_ASSURANCE_LEVEL_CHANGE,
				Namespace: "NIST-AAL", CurrentLevel: "nist-aal1", PreviousLevel: "nist-aal2", ChangeDirection: "decrease"}},
			notify.EventAssuranceLevelChange, []string{"namespace", "current_level", "previous_level", "change_direction"}},
		{"credential-change", &notifyv1.NotifyRequest{UserId: "00u1abc", UserEmail: "jane.smith@example.com", DecisionId: "dec-3", Time: at,
			SecurityEvent: &notifyv1.SecurityEvent{Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_CREDENTIAL_CHANGE,
				CredentialType: "password", ChangeType: "revoke", ReasonAdmin: "the password was used in an MFA fatigue attack that succeeded"}},
			notify.EventCredentialChange, []string{"credential_type", "change_type", "event_timestamp", "initiating_entity"}},
		{"risk-level-change", &notifyv1.NotifyRequest{UserId: "jane.doe@example.com", DecisionId: "dec-4", Time: at,
			SecurityEvent: &notifyv1.SecurityEvent{Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_RISK_LEVEL_CHANGE,
				CurrentLevel: "HIGH", PreviousLevel: "LOW", RiskReason: "MFA_FATIGUE_SUCCEEDED"}},
			notify.EventRiskLevelChange, []string{"current_level", "previous_level", "principal", "risk_reason", "event_timestamp"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.n.Kind = notifyv1.Kind_KIND_SECURITY_EVENT
			d := &notifyv1.Delivery{DeliveryId: "07efd930f0977e4fcc1149a733ce7f78", Notification: tc.n}
			c, err := notify.BuildSET(d, "https://pushback.example.com", "https://sp.example2.net/caep", newClock().Now())
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(c, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", "set", tc.name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -run TestSETShapes -update writes it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("SET differs from %s:\n%s", path, got)
			}
			var claims struct {
				Events map[string]map[string]json.RawMessage `json:"events"`
			}
			if err := json.Unmarshal(want, &claims); err != nil {
				t.Fatal(err)
			}
			ev, ok := claims.Events[tc.uri]
			if !ok || len(claims.Events) != 1 {
				t.Fatalf("events %v, want one %s", claims.Events, tc.uri)
			}
			for _, f := range tc.required {
				if _, ok := ev[f]; !ok {
					t.Errorf("%s lacks %s", tc.uri, f)
				}
			}
		})
	}
}

// TestSETRefusesEventsCAEPForbids: a credential-change without its
// required claims, or a risk level outside LOW, MEDIUM and HIGH, is not
// signed (and not accepted by Notify).
func TestSETRefusesEventsCAEPForbids(t *testing.T) {
	cases := []struct {
		name string
		se   *notifyv1.SecurityEvent
	}{
		{"credential-change without credential_type", &notifyv1.SecurityEvent{Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_CREDENTIAL_CHANGE, ChangeType: "revoke"}},
		{"credential-change without change_type", &notifyv1.SecurityEvent{Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_CREDENTIAL_CHANGE, CredentialType: "password"}},
		{"risk level in lower case", &notifyv1.SecurityEvent{Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_RISK_LEVEL_CHANGE, CurrentLevel: "high"}},
		{"risk level missing", &notifyv1.SecurityEvent{Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_RISK_LEVEL_CHANGE}},
		{"previous risk level unknown word", &notifyv1.SecurityEvent{Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_RISK_LEVEL_CHANGE, CurrentLevel: "HIGH", PreviousLevel: "CRITICAL"}},
	}
	clk := newClock()
	s := newService(t, newStore(t), clk, notify.Options{Channels: []notify.Channel{setChannel(newSigner(t), "http://127.0.0.1:1/", "aud", clk)}})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &notifyv1.Delivery{DeliveryId: "d1", Notification: &notifyv1.NotifyRequest{UserId: "u", SecurityEvent: tc.se}}
			if c, err := notify.BuildSET(d, "iss", "aud", clk.Now()); err == nil {
				t.Fatalf("BuildSET signed %+v", c)
			}
			_, err := s.Notify(context.Background(), &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_SECURITY_EVENT, IdempotencyKey: "k:" + tc.name, UserId: "u", SecurityEvent: tc.se})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("Notify: %v, want InvalidArgument", err)
			}
		})
	}
}
