package notify_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"net/mail"
	"testing"
	"time"
	"unicode"

	"github.com/pushbackhq/pushback/services/notify"
)

// FuzzReportLinkVerify feeds outside input (the t parameter of a clicked
// link) to Verify: it never panics, and what verifies re-signs to the same
// claims.
func FuzzReportLinkVerify(f *testing.F) {
	links := &notify.ReportLinks{Key: []byte("0123456789abcdef0123456789abcdef"), TTL: time.Hour}
	now := time.Date(2025, 3, 4, 9, 0, 0, 0, time.UTC)
	f.Add(links.Token(notify.ReportClaims{Tenant: "acme", UserID: "alice", Nonce: "inc-1"}, now))
	f.Add("e30.AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := links.Verify(token, now)
		if err != nil {
			return
		}
		if c.UserID == "" || c.Nonce == "" || c.Expires <= now.Unix() {
			t.Fatalf("verified claims %+v", c)
		}
	})
}

// FuzzVerifySET feeds a receiver's input to VerifySET: it never panics and
// nothing but a token signed by the key verifies.
func FuzzVerifySET(f *testing.F) {
	// A fixed key keeps the seed corpus meaningful across runs.
	key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), []byte("pushback fuzz key, 32 bytes long"))
	if err != nil {
		f.Fatal(err)
	}
	signer, err := notify.NewSigner(key)
	if err != nil {
		f.Fatal(err)
	}
	good, err := signer.Sign(&notify.SETClaims{Issuer: "iss", ID: "jti-1", Subject: &notify.SubjectID{Format: "opaque", ID: "u"},
		Events: map[string]json.RawMessage{notify.EventSessionRevoked: json.RawMessage(`{"event_timestamp":1}`)}})
	if err != nil {
		f.Fatal(err)
	}
	keys := signer.JWKS()
	f.Add(good)
	f.Add("eyJhbGciOiJFUzI1NiIsInR5cCI6InNlY2V2ZW50K2p3dCJ9.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := notify.VerifySET(token, keys)
		if err == nil && (c.ID == "" || c.Issuer == "") {
			t.Fatalf("verified claims %+v", c)
		}
	})
}

// FuzzUserSubject feeds user ids and emails as IdPs and hooks spell them:
// it never panics, the id always reaches the receiver unchanged, and
// whatever is sent as an email is one bare ASCII address net/mail reads
// back as itself.
func FuzzUserSubject(f *testing.F) {
	for _, s := range []string{"alice@example.com", "a@b", "Alice <a@b.com>", "a@b.com,c@d.com", "\u0430dmin@example.com", `"a b"@example.com`, "a@[192.0.2.1]", ""} {
		f.Add(s, "")
		f.Add("00u1abc", s)
	}
	f.Fuzz(func(t *testing.T, id, email string) {
		s := notify.UserSubject(id, email)
		switch s.Format {
		case "email":
			a, err := mail.ParseAddress(s.Email)
			if err != nil || a.Address != s.Email || a.Name != "" || (s.Email != id && s.Email != email) {
				t.Fatalf("email subject %q from (%q, %q): %v", s.Email, id, email, err)
			}
			for _, r := range s.Email {
				if r > unicode.MaxASCII || unicode.IsSpace(r) || unicode.IsControl(r) {
					t.Fatalf("email subject %q holds %q", s.Email, r)
				}
			}
		case "opaque":
			if want := id; want == "" && s.ID != email || want != "" && s.ID != id {
				t.Fatalf("opaque subject %q from (%q, %q)", s.ID, id, email)
			}
		default:
			t.Fatalf("format %q", s.Format)
		}
	})
}
