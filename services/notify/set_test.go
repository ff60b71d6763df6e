package notify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/services/notify"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// setReceiver is an RFC 8935 push receiver: it fetches the transmitter's
// published key set over HTTP, verifies every SET, and drops duplicates by
// jti.
type setReceiver struct {
	t       *testing.T
	jwksURL string
	aud     string
	// fail answers the n-th request (1-based) itself when it returns true.
	fail func(n int, w http.ResponseWriter) bool

	mu       sync.Mutex
	requests int
	sets     map[string]*notify.SETClaims
	order    []string
	srv      *httptest.Server
}

func newSETReceiver(t *testing.T, jwksURL, aud string) *setReceiver {
	r := &setReceiver{t: t, jwksURL: jwksURL, aud: aud, sets: map[string]*notify.SETClaims{}}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *setReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.requests++
	n := r.requests
	r.mu.Unlock()
	if r.fail != nil && r.fail(n, w) {
		return
	}
	badRequest := func(code, desc string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"err": code, "description": desc})
	}
	if req.Header.Get("Content-Type") != "application/secevent+jwt" || req.Header.Get("Authorization") != "Bearer receiver-token" {
		badRequest("authentication_failed", "content type or credentials")
		return
	}
	body, _ := io.ReadAll(req.Body)
	resp, err := http.Get(r.jwksURL)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	var keys jose.JSONWebKeySet
	err = json.NewDecoder(resp.Body).Decode(&keys)
	_ = resp.Body.Close()
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	c, err := notify.VerifySET(string(body), keys)
	if err != nil {
		badRequest("invalid_key", err.Error())
		return
	}
	if c.Audience != r.aud {
		badRequest("invalid_audience", c.Audience)
		return
	}
	r.mu.Lock()
	if _, dup := r.sets[c.ID]; !dup {
		r.order = append(r.order, c.ID)
	}
	r.sets[c.ID] = c
	r.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (r *setReceiver) received() []*notify.SETClaims {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*notify.SETClaims
	for _, id := range r.order {
		out = append(out, r.sets[id])
	}
	return out
}

func newSigner(t testing.TB) *notify.Signer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := notify.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func setChannel(signer *notify.Signer, url, aud string, clk *clock) *notify.SecurityEvents {
	return &notify.SecurityEvents{URL: url, Issuer: "https://pushback.example.com", Audience: aud, Signer: signer,
		Authorization: "Bearer receiver-token", Now: clk.Now}
}

func TestSecurityEventTokensVerifyWithThePublishedKey(t *testing.T) {
	clk := newClock()
	signer := newSigner(t)
	jwks := httptest.NewServer(notify.JWKSHandler(signer))
	defer jwks.Close()
	rcv := newSETReceiver(t, jwks.URL, "https://idp.example.com")
	rcv.fail = func(n int, w http.ResponseWriter) bool {
		if n == 1 {
			http.Error(w, "restarting", http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	s := newService(t, newStore(t), clk, notify.Options{Channels: []notify.Channel{setChannel(signer, rcv.srv.URL, "https://idp.example.com", clk)}})
	notifyOK(t, s, &notifyv1.NotifyRequest{
		Kind: notifyv1.Kind_KIND_SECURITY_EVENT, IdempotencyKey: "alc:1", UserId: "alice", UserEmail: "alice@example.com",
		Tenant: "acme", SessionId: "sess-9", Time: timestamppb.New(clk.Now()),
		SecurityEvent: &notifyv1.SecurityEvent{
			Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_ASSURANCE_LEVEL_CHANGE, Namespace: "NIST-AAL",
			CurrentLevel: "nist-aal1", PreviousLevel: "nist-aal2", ChangeDirection: "decrease", ReasonAdmin: "push factor under attack",
		},
	})
	settle(t, s, clk, 5)
	got := rcv.received()
	if len(got) != 1 {
		t.Fatalf("receiver verified %d SETs, want 1", len(got))
	}
	c := got[0]
	ev, ok := c.Events[notify.EventAssuranceLevelChange]
	if !ok || c.Issuer != "https://pushback.example.com" || c.Subject.Format != "complex" || c.Subject.User.Email != "alice@example.com" ||
		c.Subject.Session.ID != "sess-9" || c.Subject.Tenant.ID != "acme" {
		t.Fatalf("claims %+v", c)
	}
	var body map[string]any
	_ = json.Unmarshal(ev, &body)
	if body["current_level"] != "nist-aal1" || body["change_direction"] != "decrease" || body["event_timestamp"] != float64(newClock().Now().Unix()) {
		t.Fatalf("event %s", ev)
	}
	if d := list(t, s, notifyv1.Status_STATUS_DELIVERED); len(d) != 1 || d[0].GetAttempts() != 2 || d[0].GetDeliveryId() != c.ID {
		t.Fatalf("delivery %v: the retried SET must keep its jti", d)
	}
}

// newSETService is a notify service that logs and pushes SETs to a
// receiver verifying them with the signer's published key set.
func newSETService(t *testing.T) (*clock, *notify.Service, *setReceiver) {
	t.Helper()
	clk := newClock()
	signer := newSigner(t)
	jwks := httptest.NewServer(notify.JWKSHandler(signer))
	t.Cleanup(jwks.Close)
	rcv := newSETReceiver(t, jwks.URL, "aud-1")
	s := newService(t, newStore(t), clk, notify.Options{Channels: []notify.Channel{
		notify.LogChannel{Logger: (&logBuffer{}).logger()}, setChannel(signer, rcv.srv.URL, "aud-1", clk),
	}})
	return clk, s, rcv
}

// TestSessionRevokedOncePerIncidentAfterAFatigueApproval: a response
// rule's revoke_sessions sends one session-revoked per incident, however
// often the rule matches while the attack goes on; a signal alone (without
// a rule asking) revokes nothing.
func TestSessionRevokedOncePerIncidentAfterAFatigueApproval(t *testing.T) {
	clk, s, rcv := newSETService(t)
	notifyOK(t, s, alert("deny:1", "alice", clk.Now()))
	notifyOK(t, s, alert("deny:1b", "alice", clk.Now(), notify.RevokeSignal))
	for _, key := range []string{"deny:2", "deny:3"} {
		r := alert(key, "alice", clk.Now(), notify.RevokeSignal)
		r.SessionId = "okta-sess-1"
		r.ResponseActions = []*notifyv1.ResponseAction{{Action: "revoke_sessions", Rule: "fatigue-success"}}
		notifyOK(t, s, r)
	}
	settle(t, s, clk, 5)
	got := rcv.received()
	if len(got) != 1 {
		t.Fatalf("receiver got %d SETs, want one session-revoked for the incident", len(got))
	}
	if _, ok := got[0].Events[notify.EventSessionRevoked]; !ok || got[0].Subject.Session.ID != "okta-sess-1" || got[0].TxnID != "dec-deny:2" {
		t.Fatalf("SET %+v", got[0])
	}
}

func TestSETReceiverRejectionIsPermanent(t *testing.T) {
	clk := newClock()
	signer := newSigner(t)
	jwks := httptest.NewServer(notify.JWKSHandler(signer))
	defer jwks.Close()
	rcv := newSETReceiver(t, jwks.URL, "the-right-audience")
	s := newService(t, newStore(t), clk, notify.Options{Channels: []notify.Channel{setChannel(signer, rcv.srv.URL, "a-wrong-audience", clk)}})
	notifyOK(t, s, &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_SECURITY_EVENT, IdempotencyKey: "rev:1", UserId: "alice",
		SecurityEvent: &notifyv1.SecurityEvent{Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_SESSION_REVOKED}})
	deliverDue(t, s)
	dead := list(t, s, notifyv1.Status_STATUS_DEAD)
	if len(dead) != 1 || dead[0].GetAttempts() != 1 || !strings.Contains(dead[0].GetLastError(), "invalid_audience") {
		t.Fatalf("dead letters %v, want the rejected SET dead after one attempt", dead)
	}
}

// TestVerifySETRejectsForgeries plays the tokens an attacker hands a
// receiver: each must fail VerifySET, and only the transmitter's own
// token may pass.
func TestVerifySETRejectsForgeries(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := notify.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := notify.NewSigner(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	d := &notifyv1.Delivery{DeliveryId: "d1", Notification: &notifyv1.NotifyRequest{UserId: "u",
		SecurityEvent: &notifyv1.SecurityEvent{Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_SESSION_REVOKED}}}
	claims, err := notify.BuildSET(d, "iss", "aud", newClock().Now())
	if err != nil {
		t.Fatal(err)
	}
	good, err := signer.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := other.Sign(claims)
	altered := *claims
	altered.Audience = "somebody-else"
	tampered, _ := signer.Sign(&altered)
	parts := strings.Split(good, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	jsonB64 := func(v any) string {
		b, _ := json.Marshal(v)
		return b64(b)
	}
	kid := signer.KeyID()

	// HS256 keyed with the published key: a verifier that let the token
	// choose the algorithm would check an HMAC with public material.
	jwksJSON, _ := json.Marshal(signer.JWKS())
	pubBytes, _ := key.PublicKey.Bytes()
	hs256 := func(secret []byte) string {
		in := jsonB64(map[string]string{"alg": "HS256", "typ": notify.SETType, "kid": kid}) + "." + parts[1]
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(in))
		return in + "." + b64(mac.Sum(nil))
	}
	// signWith signs payload with key k, naming keyID in the header.
	signWithKey := func(k *ecdsa.PrivateKey, opts *jose.SignerOptions, keyID string, payload []byte) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: keyID}}, opts)
		if err != nil {
			t.Fatal(err)
		}
		obj, err := s.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		c, err := obj.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	signWith := func(opts *jose.SignerOptions, keyID string, payload []byte) string {
		return signWithKey(key, opts, keyID, payload)
	}
	body, _ := json.Marshal(claims)
	setType := (&jose.SignerOptions{}).WithType(notify.SETType)
	// An attacker's key published under the transmitter's kid does not
	// help: the set the receiver fetched holds the real key.
	impostor := signWithKey(otherKey, setType, kid, body)
	// A token far larger than any SET, signed properly.
	huge := *claims
	huge.TxnID = strings.Repeat("x", notify.MaxSETBytes)
	oversized, err := signer.Sign(&huge)
	if err != nil {
		t.Fatal(err)
	}
	// The JSON serialization of a valid signature is not a SET.
	jsonSerialized := func() string {
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, setType)
		obj, _ := s.Sign(body)
		return obj.FullSerialize()
	}()
	// The key set's key marked for encryption only.
	encKeys := signer.JWKS()
	encKeys.Keys[0].Use = "enc"

	cases := []struct {
		name  string
		token string
		keys  jose.JSONWebKeySet
		ok    bool
	}{
		{"signed by the published key", good, signer.JWKS(), true},
		{"signed by another key", forged, signer.JWKS(), false},
		{"signed by another key under the published kid", impostor, signer.JWKS(), false},
		{"claims swapped", parts[0] + "." + strings.Split(tampered, ".")[1] + "." + parts[2], signer.JWKS(), false},
		{"claims edited", parts[0] + "." + jsonB64(altered) + "." + parts[2], signer.JWKS(), false},
		{"alg none", jsonB64(map[string]string{"alg": "none", "typ": notify.SETType, "kid": kid}) + "." + parts[1] + ".", signer.JWKS(), false},
		{"alg none with the real signature", jsonB64(map[string]string{"alg": "none", "typ": notify.SETType, "kid": kid}) + "." + parts[1] + "." + parts[2], signer.JWKS(), false},
		{"HS256 keyed with the published key set", hs256(jwksJSON), signer.JWKS(), false},
		{"HS256 keyed with the public point", hs256(pubBytes), signer.JWKS(), false},
		{"wrong kid", signWith(setType, "another-key", body), signer.JWKS(), false},
		{"no kid", signWith(setType, "", body), signer.JWKS(), false},
		{"typ JWT", signWith((&jose.SignerOptions{}).WithType("JWT"), kid, body), signer.JWKS(), false},
		{"no typ", signWith(&jose.SignerOptions{}, kid, body), signer.JWKS(), false},
		{"key for encryption only", good, encKeys, false},
		{"unknown key", good, other.JWKS(), false},
		{"oversized", oversized, signer.JWKS(), false},
		{"JSON serialization", jsonSerialized, signer.JWKS(), false},
		{"no events", signWith(setType, kid, []byte(`{"iss":"iss","jti":"j","iat":1}`)), signer.JWKS(), false},
		{"garbage", "a.b", signer.JWKS(), false},
		{"empty", "", signer.JWKS(), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := notify.VerifySET(tc.token, tc.keys)
			if (err == nil) != tc.ok {
				t.Fatalf("VerifySET: %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (c.Audience != "aud" || c.ID != "d1") {
				t.Fatalf("claims %+v", c)
			}
		})
	}
}

func TestSigningKeyIsCreatedOnceAndReloaded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "set.pem")
	k1, err := notify.LoadOrCreateSigningKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v: %v", fi, err)
	}
	k2, err := notify.LoadOrCreateSigningKey(path)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("reloaded key differs: %v", err)
	}
	s1, _ := notify.NewSigner(k1)
	s2, _ := notify.NewSigner(k2)
	if s1.KeyID() != s2.KeyID() || s1.KeyID() == "" {
		t.Fatalf("key ids %q %q", s1.KeyID(), s2.KeyID())
	}
}

// TestCAEPSignalsOncePerIncident: response rules asking for a
// credential-change and a risk-level-change send each once per incident,
// however often they match while the attack goes on, with the user alone
// (not the session the alert names) as an email subject; a dry run records
// them and sends nothing.
func TestCAEPSignalsOncePerIncident(t *testing.T) {
	clk, s, rcv := newSETService(t)
	signals := func(dry bool) []*notifyv1.ResponseAction {
		return []*notifyv1.ResponseAction{
			{Action: "caep_credential_change", Rule: "fatigue-success", DryRun: dry, SecurityEvent: &notifyv1.SecurityEvent{
				Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_CREDENTIAL_CHANGE, CredentialType: "password", ChangeType: "revoke"}},
			{Action: "caep_risk_level_change", Rule: "fatigue-success", DryRun: dry, SecurityEvent: &notifyv1.SecurityEvent{
				Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_RISK_LEVEL_CHANGE, Principal: "USER", CurrentLevel: "HIGH", RiskReason: "MFA_FATIGUE_SUCCEEDED"}},
		}
	}
	for _, key := range []string{"deny:1", "deny:2", "deny:3"} {
		r := alert(key, "alice@example.com", clk.Now(), notify.RevokeSignal)
		r.SessionId = "okta-sess-1"
		r.ResponseActions = signals(false)
		notifyOK(t, s, r)
	}
	dry := alert("deny:9", "bob@example.com", clk.Now(), notify.RevokeSignal)
	dry.ResponseActions = signals(true)
	notifyOK(t, s, dry)
	settle(t, s, clk, 5)

	got := rcv.received()
	if len(got) != 2 {
		t.Fatalf("receiver got %d SETs, want one credential-change and one risk-level-change for alice's incident", len(got))
	}
	byType := map[string]map[string]any{}
	for _, c := range got {
		if c.Subject.Format != "email" || c.Subject.Email != "alice@example.com" || c.TxnID != "dec-deny:1" {
			t.Fatalf("SET %+v", c)
		}
		for uri, raw := range c.Events {
			var body map[string]any
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatal(err)
			}
			byType[uri] = body
		}
	}
	cc, rl := byType[notify.EventCredentialChange], byType[notify.EventRiskLevelChange]
	if cc["credential_type"] != "password" || cc["change_type"] != "revoke" || !strings.Contains(fmt.Sprint(cc["reason_admin"]), "fatigue-success") {
		t.Fatalf("credential-change %v", cc)
	}
	if rl["current_level"] != "HIGH" || rl["principal"] != "USER" || rl["risk_reason"] != "MFA_FATIGUE_SUCCEEDED" || rl["previous_level"] != nil {
		t.Fatalf("risk-level-change %v", rl)
	}
	var dryRuns int
	for _, d := range list(t, s, notifyv1.Status_STATUS_DELIVERED) {
		if d.GetNotification().GetUserId() == "bob@example.com" && d.GetNotification().GetKind() == notifyv1.Kind_KIND_SECURITY_EVENT {
			if !strings.HasPrefix(d.GetResult(), "dry run: would caep_") {
				t.Fatalf("dry-run delivery %v", d)
			}
			dryRuns++
		}
	}
	if dryRuns != 2 {
		t.Fatalf("%d dry-run security events recorded, want 2", dryRuns)
	}
}

// TestCAEPSignalClaimsAreChecked: an action's event must be the one its
// action names, complete, and only on the signalling actions.
func TestCAEPSignalClaimsAreChecked(t *testing.T) {
	clk := newClock()
	s := newService(t, newStore(t), clk, notify.Options{Channels: []notify.Channel{notify.LogChannel{Logger: (&logBuffer{}).logger()}}})
	cases := []struct {
		name  string
		a     *notifyv1.ResponseAction
		field string
	}{
		{"no event", &notifyv1.ResponseAction{Action: "caep_credential_change", Rule: "r"}, "response_actions[0].security_event.type"},
		{"the other event", &notifyv1.ResponseAction{Action: "caep_credential_change", Rule: "r", SecurityEvent: &notifyv1.SecurityEvent{
			Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_SESSION_REVOKED}}, "response_actions[0].security_event.type"},
		{"no change type", &notifyv1.ResponseAction{Action: "caep_credential_change", Rule: "r", SecurityEvent: &notifyv1.SecurityEvent{
			Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_CREDENTIAL_CHANGE, CredentialType: "password"}}, "response_actions[0].security_event.change_type"},
		{"level in lower case", &notifyv1.ResponseAction{Action: "caep_risk_level_change", Rule: "r", SecurityEvent: &notifyv1.SecurityEvent{
			Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_RISK_LEVEL_CHANGE, CurrentLevel: "high"}}, "response_actions[0].security_event.current_level"},
		{"event on an IdP action", &notifyv1.ResponseAction{Action: "revoke_sessions", Rule: "r", SecurityEvent: &notifyv1.SecurityEvent{
			Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_CREDENTIAL_CHANGE, CredentialType: "password", ChangeType: "revoke"}}, "response_actions[0].security_event"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := alert("k:"+tc.name, "alice", clk.Now())
			r.ResponseActions = []*notifyv1.ResponseAction{tc.a}
			_, err := s.Notify(context.Background(), r)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("Notify: %v, want InvalidArgument naming %s", err, tc.field)
			}
		})
	}
}

// TestJWKSPublishesOnlyThePublicKey: the key set holds the signing key's
// public half, for ES256 signatures, under the kid tokens name; no private
// member ("d") ever leaves the process.
func TestJWKSPublishesOnlyThePublicKey(t *testing.T) {
	signer := newSigner(t)
	srv := httptest.NewServer(notify.JWKSHandler(signer))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Content-Type") != "application/jwk-set+json" || len(raw.Keys) != 1 {
		t.Fatalf("key set %v (%s)", raw, resp.Header.Get("Content-Type"))
	}
	k := raw.Keys[0]
	if _, private := k["d"]; private {
		t.Fatal("the published key set holds the private key")
	}
	if k["kty"] != "EC" || k["crv"] != "P-256" || k["alg"] != "ES256" || k["use"] != "sig" || k["kid"] != signer.KeyID() {
		t.Fatalf("published key %v", k)
	}
	tok, err := signer.Sign(map[string]any{"iss": "i", "jti": "j", "events": map[string]any{notify.EventSessionRevoked: map[string]any{}}})
	if err != nil {
		t.Fatal(err)
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if string(hdr) != `{"alg":"ES256","kid":"`+signer.KeyID()+`","typ":"secevent+jwt"}` {
		t.Fatalf("header %s", hdr)
	}
}
