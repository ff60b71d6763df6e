package mesh_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	defaultpolicy "github.com/pushbackhq/pushback/deploy/policy"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	"github.com/pushbackhq/pushback/services/mesh"
	"github.com/pushbackhq/pushback/services/notify"
)

// A click on a report link served by the mesh becomes a FRAUD_REPORTED
// event in intake, and a session-revoked security event reaches the
// configured receiver, verifiable with the key the mesh publishes.
func TestReportLinkAndSecurityEventsOnTheMesh(t *testing.T) {
	sets := make(chan string, 4)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/secevent+jwt" || r.Header.Get("Authorization") != "Bearer rcv-token" {
			http.Error(w, `{"err":"authentication_failed"}`, http.StatusBadRequest)
			return
		}
		sets <- string(b)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer receiver.Close()

	const key = "a report link key of at least 32 bytes"
	cfg := mesh.Default()
	cfg.Notify.ReportLinkKey = key
	cfg.Notify.PublicURL = "https://pushback.example.com"
	cfg.Notify.SETReceiver = receiver.URL
	cfg.Notify.SETReceiverToken = "rcv-token"
	cfg.Notify.SETAudience = "https://idp.example.com"
	m := start(t, cfg)
	base := "http://" + m.httpAddr

	links := &notify.ReportLinks{Key: []byte(key), BaseURL: base}
	tok := links.Token(notify.ReportClaims{UserID: "zoe", Nonce: "incident-7"}, time.Now())
	resp, err := http.PostForm(base+notify.ReportPath, url.Values{"t": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("report: %d %s", resp.StatusCode, body)
	}
	ev, err := intakev1.NewIntakeServiceClient(m.conn).ListEvents(context.Background(), &intakev1.ListEventsRequest{UserId: "zoe"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.GetEvents()) != 1 || ev.GetEvents()[0].GetType() != eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED || ev.GetEvents()[0].GetEventId() != "report:incident-7" {
		t.Fatalf("intake events %v", ev.GetEvents())
	}

	var token string
	select {
	case token = <-sets:
	case <-time.After(20 * time.Second):
		t.Fatal("no security event reached the receiver")
	}
	// The receiver discovers the transmitter from its issuer and checks
	// the token with go-jose itself, as an RFC 8935 receiver would: the
	// well-known document first, then the key set it names (the public
	// URL is a proxy in front of this mesh, so its paths map onto base).
	cfgDoc := getJSON[map[string]any](t, base+notify.SSFConfigurationPath)
	if cfgDoc["issuer"] != cfg.Notify.PublicURL || cfgDoc["jwks_uri"] != cfg.Notify.PublicURL+notify.JWKSPath {
		t.Fatalf("ssf-configuration %v", cfgDoc)
	}
	jwksURL := strings.Replace(cfgDoc["jwks_uri"].(string), cfg.Notify.PublicURL, base, 1)
	keys := getJSON[jose.JSONWebKeySet](t, jwksURL)
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.Signatures[0].Protected
	if hdr.ExtraHeaders[jose.HeaderType] != "secevent+jwt" {
		t.Fatalf("header %+v", hdr)
	}
	found := keys.Key(hdr.KeyID)
	if len(found) != 1 {
		t.Fatalf("kid %q names %d keys in the published set", hdr.KeyID, len(found))
	}
	payload, err := jws.Verify(found[0].Key)
	if err != nil {
		t.Fatalf("the SET does not verify with the published key set: %v", err)
	}
	var c notify.SETClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Events[notify.EventSessionRevoked]; !ok || c.Audience != cfg.Notify.SETAudience || c.Issuer != cfgDoc["issuer"] || c.Subject.ID != "zoe" {
		t.Fatalf("SET claims %+v", c)
	}
	if _, err := notify.VerifySET(token, keys); err != nil {
		t.Fatalf("VerifySET: %v", err)
	}
}

func getJSON[T any](t *testing.T, url string) T {
	t.Helper()
	var v T
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return v
}

func TestNotifySettingsAreValidated(t *testing.T) {
	cases := []struct {
		name string
		set  func(c *mesh.Config)
		want string
	}{
		{"short report key", func(c *mesh.Config) { c.Notify.ReportLinkKey, c.Notify.PublicURL = "short", "https://p.example.com" }, "report-link-key"},
		{"report key without public url", func(c *mesh.Config) { c.Notify.ReportLinkKey = strings.Repeat("k", 32) }, "public-url"},
		{"security events without an issuer", func(c *mesh.Config) { c.Notify.SETReceiver = "https://receiver.example.com/events" }, "public-url"},
		{"relative slack url", func(c *mesh.Config) { c.Notify.SlackWebhook = "/hooks/x" }, "slack-webhook"},
		{"bad smtp port", func(c *mesh.Config) {
			c.Notify.SMTPHost, c.Notify.SMTPFrom, c.Notify.SMTPPort = "mail", "a@b.c", "smtp"
		}, "smtp-port"},
		{"smtp without sender", func(c *mesh.Config) { c.Notify.SMTPHost = "mail" }, "smtp-from"},
		{"sender with a display name", func(c *mesh.Config) { c.Notify.SMTPHost, c.Notify.SMTPFrom = "mail", "Pushback <alerts@example.com>" }, "smtp-from"},
		{"recipient not an address", func(c *mesh.Config) {
			c.Notify.SMTPHost, c.Notify.SMTPFrom, c.Notify.SMTPTo = "mail", "a@b.c", "soc@example.com, nope"
		}, "smtp-to"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := mesh.Default()
			tc.set(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

// TestSSFDiscoveryOnTheMesh: a transmitter whose issuer has a path is
// discovered where SSF says (the well-known path with the issuer's path
// appended) and at the bare well-known path; a mesh that sends no security
// events publishes no transmitter.
func TestSSFDiscoveryOnTheMesh(t *testing.T) {
	cfg := mesh.Default()
	cfg.Notify.PublicURL = "https://idp.example.com/pushback"
	cfg.Notify.SETReceiver = "https://receiver.example.com/events"
	m := start(t, cfg)
	base := "http://" + m.httpAddr
	for _, p := range []string{notify.SSFConfigurationPath, notify.SSFConfigurationPath + "/pushback"} {
		doc := getJSON[map[string]any](t, base+p)
		if doc["issuer"] != cfg.Notify.PublicURL || doc["jwks_uri"] != cfg.Notify.PublicURL+notify.JWKSPath {
			t.Fatalf("%s: %v", p, doc)
		}
	}

	plain := start(t, mesh.Default())
	for _, p := range []string{notify.SSFConfigurationPath, notify.JWKSPath} {
		resp, err := http.Get("http://" + plain.httpAddr + p)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s without a security event receiver: %d", p, resp.StatusCode)
		}
	}
}

// TestFatigueSuccessSendsCAEPSignals: a policy whose fatigue-success rule
// asks for a credential-change and a risk-level-change besides the
// session revocation; an Okta fatigue success posted to intake ends in the
// three security events at the SSF receiver, each verified with go-jose
// against the key set the mesh publishes, the user named by email.
func TestFatigueSuccessSendsCAEPSignals(t *testing.T) {
	src := string(defaultpolicy.Default)
	const old = "      actions: [alert, revoke_sessions]\n      reason: a push was approved after a burst"
	if strings.Count(src, old) != 1 {
		t.Fatal("the default fatigue-success rule's actions are not [alert, revoke_sessions]")
	}
	src = strings.Replace(src, old, `      actions: [alert, revoke_sessions, caep_credential_change, caep_risk_level_change]
      credential_change: {credential_type: password, change_type: revoke}
      risk_level_change: {current_level: HIGH, previous_level: LOW, risk_reason: MFA_FATIGUE_SUCCEEDED}
      reason: a push was approved after a burst`, 1)
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var tokens []string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, notify.MaxSETBytes+1))
		if r.Header.Get("Authorization") != "Bearer rcv-token" {
			http.Error(w, `{"err":"authentication_failed"}`, http.StatusBadRequest)
			return
		}
		mu.Lock()
		tokens = append(tokens, string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer receiver.Close()
	received := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), tokens...)
	}

	cfg := mesh.Default()
	cfg.Decision.PolicyFile = policyFile
	cfg.Notify.PublicURL = "https://pushback.example.com"
	cfg.Notify.SETReceiver = receiver.URL
	cfg.Notify.SETReceiverToken = "rcv-token"
	cfg.Notify.SETAudience = "https://idp.example.com"
	m := start(t, cfg)
	base := "http://" + m.httpAddr

	postIngest(t, m, "okta", oktaFatigueSuccess("Ada@Example.com", time.Now().UTC().Add(-time.Second)))
	eventually(t, 30*time.Second, "three security events at the receiver", func() bool { return len(received()) >= 3 })

	keys := getJSON[jose.JSONWebKeySet](t, base+notify.JWKSPath)
	events := map[string]map[string]any{}
	for _, tok := range received() {
		jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		found := keys.Key(jws.Signatures[0].Protected.KeyID)
		if len(found) != 1 {
			t.Fatalf("kid %q not in the published key set", jws.Signatures[0].Protected.KeyID)
		}
		payload, err := jws.Verify(found[0].Key)
		if err != nil {
			t.Fatalf("a delivered SET does not verify: %v", err)
		}
		var c struct {
			Issuer  string                    `json:"iss"`
			Subject notify.SubjectID          `json:"sub_id"`
			Events  map[string]map[string]any `json:"events"`
		}
		if err := json.Unmarshal(payload, &c); err != nil {
			t.Fatal(err)
		}
		user := &c.Subject
		if c.Subject.Format == "complex" {
			user = c.Subject.User
		}
		if c.Issuer != cfg.Notify.PublicURL || user == nil || user.Format != "email" || user.Email != "ada@example.com" {
			t.Fatalf("SET %s", payload)
		}
		for uri, body := range c.Events {
			if _, dup := events[uri]; dup {
				t.Fatalf("%s sent twice", uri)
			}
			events[uri] = body
		}
	}
	if _, ok := events[notify.EventSessionRevoked]; !ok {
		t.Fatalf("no session-revoked among %v", events)
	}
	if cc := events[notify.EventCredentialChange]; cc["credential_type"] != "password" || cc["change_type"] != "revoke" {
		t.Fatalf("credential-change %v", cc)
	}
	if rl := events[notify.EventRiskLevelChange]; rl["current_level"] != "HIGH" || rl["previous_level"] != "LOW" || rl["principal"] != "USER" ||
		rl["risk_reason"] != "MFA_FATIGUE_SUCCEEDED" {
		t.Fatalf("risk-level-change %v", rl)
	}
}
