package notify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
)

// CAEP event type URIs (OpenID Continuous Access Evaluation Profile 1.0).
const (
	EventSessionRevoked       = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	EventAssuranceLevelChange = "https://schemas.openid.net/secevent/caep/event-type/assurance-level-change"
)

// JWKSPath is where the mesh publishes the key that signs security events.
const JWKSPath = "/.well-known/jwks.json"

// Signer signs Security Event Tokens with ES256 (ECDSA P-256, SHA-256).
type Signer struct {
	key *ecdsa.PrivateKey
	kid string
}

// NewSigner returns a signer for a P-256 key; its key id is the RFC 7638
// thumbprint of the public key.
func NewSigner(key *ecdsa.PrivateKey) (*Signer, error) {
	if key == nil || key.Curve != elliptic.P256() {
		return nil, errors.New("notify: the security event signing key must be ECDSA P-256")
	}
	jwk := publicJWK(&key.PublicKey, "")
	thumb := sha256.Sum256(fmt.Appendf(nil, `{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}`, jwk.X, jwk.Y))
	return &Signer{key: key, kid: base64.RawURLEncoding.EncodeToString(thumb[:])}, nil
}

// KeyID is the signing key's id ("kid").
func (s *Signer) KeyID() string { return s.kid }

// LoadOrCreateSigningKey reads a PEM P-256 private key (SEC 1 or PKCS #8)
// from path, or creates one there (mode 0600) when the file does not exist,
// so the key id stays stable across restarts.
func LoadOrCreateSigningKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, err
		}
		if err := errors.Join(pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}), f.Close()); err != nil {
			return nil, err
		}
		return key, nil
	}
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", filepath.Base(path))
	}
	switch blk.Type {
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(blk.Bytes)
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, err
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%s: not an ECDSA key", filepath.Base(path))
		}
		return ek, nil
	}
	return nil, fmt.Errorf("%s: unexpected PEM block %q", filepath.Base(path), blk.Type)
}

// JWK is a public EC key (RFC 7517).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid,omitempty"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
}

// JWKS is a key set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

func publicJWK(pub *ecdsa.PublicKey, kid string) JWK {
	pt, _ := pub.Bytes() // 0x04 || x || y for a valid P-256 key
	if len(pt) != 65 {
		pt = make([]byte, 65)
	}
	x, y := pt[1:33], pt[33:]
	return JWK{Kty: "EC", Crv: "P-256", X: base64.RawURLEncoding.EncodeToString(x), Y: base64.RawURLEncoding.EncodeToString(y),
		Kid: kid, Use: "sig", Alg: "ES256"}
}

// JWKS is the public key set receivers verify with.
func (s *Signer) JWKS() JWKS { return JWKS{Keys: []JWK{publicJWK(&s.key.PublicKey, s.kid)}} }

// JWKSHandler serves the signer's public keys.
func JWKSHandler(s *Signer) http.Handler {
	body, _ := json.Marshal(s.JWKS())
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(body)
	})
}

// Sign returns the compact JWS of claims with typ "secevent+jwt".
func (s *Signer) Sign(claims any) (string, error) {
	hdr, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "secevent+jwt", "kid": s.kid})
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(body)
	h := sha256.Sum256([]byte(input))
	r, ss, err := ecdsa.Sign(rand.Reader, s.key, h[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	ss.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// SubjectID is an SSF subject identifier (RFC 9493 formats, plus the
// "complex" format of the Shared Signals Framework).
type SubjectID struct {
	Format  string     `json:"format"`
	Email   string     `json:"email,omitempty"`
	ID      string     `json:"id,omitempty"`
	User    *SubjectID `json:"user,omitempty"`
	Session *SubjectID `json:"session,omitempty"`
	Tenant  *SubjectID `json:"tenant,omitempty"`
}

// SETClaims are the claims of a Security Event Token (RFC 8417).
type SETClaims struct {
	Issuer   string                     `json:"iss"`
	ID       string                     `json:"jti"`
	IssuedAt int64                      `json:"iat"`
	Audience string                     `json:"aud,omitempty"`
	TxnID    string                     `json:"txn,omitempty"`
	Subject  *SubjectID                 `json:"sub_id"`
	Events   map[string]json.RawMessage `json:"events"`
}

// caepEvent is the body of a CAEP event.
type caepEvent struct {
	EventTimestamp   int64             `json:"event_timestamp"`
	InitiatingEntity string            `json:"initiating_entity"`
	ReasonAdmin      map[string]string `json:"reason_admin,omitempty"`
	ReasonUser       map[string]string `json:"reason_user,omitempty"`
	Namespace        string            `json:"namespace,omitempty"`
	CurrentLevel     string            `json:"current_level,omitempty"`
	PreviousLevel    string            `json:"previous_level,omitempty"`
	ChangeDirection  string            `json:"change_direction,omitempty"`
}

// BuildSET turns a security event notification into SET claims. The jti is
// the delivery id: a retried SET is the same SET, which a receiver drops.
func BuildSET(d *notifyv1.Delivery, issuer, audience string, now time.Time) (*SETClaims, error) {
	n := d.GetNotification()
	se := n.GetSecurityEvent()
	user := &SubjectID{Format: "opaque", ID: n.GetUserId()}
	if n.GetUserEmail() != "" {
		user = &SubjectID{Format: "email", Email: n.GetUserEmail()}
	}
	sub := user
	if n.GetSessionId() != "" || n.GetTenant() != "" {
		sub = &SubjectID{Format: "complex", User: user}
		if n.GetSessionId() != "" {
			sub.Session = &SubjectID{Format: "opaque", ID: n.GetSessionId()}
		}
		if n.GetTenant() != "" {
			sub.Tenant = &SubjectID{Format: "opaque", ID: n.GetTenant()}
		}
	}
	at := now
	if n.GetTime() != nil {
		at = n.GetTime().AsTime()
	}
	ev := caepEvent{EventTimestamp: at.Unix(), InitiatingEntity: "policy"}
	if r := se.GetReasonAdmin(); r != "" {
		ev.ReasonAdmin = map[string]string{"en": r}
	}
	if r := se.GetReasonUser(); r != "" {
		ev.ReasonUser = map[string]string{"en": r}
	}
	var uri string
	switch se.GetType() {
	case notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_SESSION_REVOKED:
		uri = EventSessionRevoked
	case notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_ASSURANCE_LEVEL_CHANGE:
		uri = EventAssuranceLevelChange
		ev.Namespace, ev.CurrentLevel, ev.PreviousLevel, ev.ChangeDirection = se.GetNamespace(), se.GetCurrentLevel(), se.GetPreviousLevel(), se.GetChangeDirection()
	default:
		return nil, fmt.Errorf("security event type %v is not supported", se.GetType())
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	return &SETClaims{
		Issuer: issuer, ID: d.GetDeliveryId(), IssuedAt: now.Unix(), Audience: audience, TxnID: n.GetDecisionId(),
		Subject: sub, Events: map[string]json.RawMessage{uri: body},
	}, nil
}

// VerifySET checks a compact JWS against keys (ES256 only, typ
// secevent+jwt) and returns its claims. It is what a receiver does with
// the published key set.
func VerifySET(token string, keys JWKS) (*SETClaims, error) {
	if len(token) > 64<<10 {
		return nil, errors.New("set: token too large")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("set: not a compact JWS")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, errors.New("set: bad header encoding")
	}
	var hdr struct{ Alg, Typ, Kid string }
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return nil, errors.New("set: bad header")
	}
	if hdr.Alg != "ES256" || hdr.Typ != "secevent+jwt" {
		return nil, fmt.Errorf("set: alg %q typ %q, want ES256 secevent+jwt", hdr.Alg, hdr.Typ)
	}
	var key *ecdsa.PublicKey
	for _, k := range keys.Keys {
		if k.Kid == hdr.Kid && k.Kty == "EC" && k.Crv == "P-256" {
			x, err1 := base64.RawURLEncoding.DecodeString(k.X)
			y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
			if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
				continue
			}
			pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
			if err != nil {
				continue
			}
			key = pub
		}
	}
	if key == nil {
		return nil, fmt.Errorf("set: no key %q in the key set", hdr.Kid)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, errors.New("set: bad signature encoding")
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(key, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return nil, errors.New("set: signature does not verify")
	}
	cb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errors.New("set: bad claims encoding")
	}
	c := &SETClaims{}
	if err := json.Unmarshal(cb, c); err != nil {
		return nil, errors.New("set: bad claims")
	}
	if c.ID == "" || c.Issuer == "" || len(c.Events) == 0 {
		return nil, errors.New("set: jti, iss and events are required")
	}
	return c, nil
}

// SecurityEvents pushes signed SETs to a receiver per RFC 8935.
type SecurityEvents struct {
	// ChannelName names the channel (default "set").
	ChannelName string
	// URL is the receiver's push endpoint.
	URL string
	// Issuer ("iss") and Audience ("aud") of every SET.
	Issuer, Audience string
	Signer           *Signer
	// Authorization, when set, is sent as the Authorization header (for
	// example "Bearer <token>" as the receiver's stream configuration
	// demands). It is a secret.
	Authorization string
	Client        *http.Client
	Now           func() time.Time
}

// Name implements Channel.
func (c *SecurityEvents) Name() string {
	if c.ChannelName == "" {
		return "set"
	}
	return c.ChannelName
}

// Accepts implements Channel.
func (c *SecurityEvents) Accepts(kind notifyv1.Kind) bool {
	return kind == notifyv1.Kind_KIND_SECURITY_EVENT
}

// Deliver implements Channel. A 400 answer names an error in the SET or its
// signature (RFC 8935 section 2.4): sending it again cannot succeed, so it
// is permanent; other failures are retried.
func (c *SecurityEvents) Deliver(ctx context.Context, d *notifyv1.Delivery) error {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	claims, err := BuildSET(d, c.Issuer, c.Audience, now())
	if err != nil {
		return Permanent(err)
	}
	token, err := c.Signer.Sign(claims)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, strings.NewReader(token))
	if err != nil {
		return Permanent(err)
	}
	req.Header.Set("Content-Type", "application/secevent+jwt")
	req.Header.Set("Accept", "application/json")
	if c.Authorization != "" {
		req.Header.Set("Authorization", c.Authorization)
	}
	req.Header.Set("User-Agent", "pushback-notify/1")
	client := c.Client
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return redact(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	serr := &StatusError{Code: resp.StatusCode, Status: resp.Status, URL: redactURL(c.URL)}
	if resp.StatusCode == http.StatusBadRequest {
		var e struct {
			Err         string `json:"err"`
			Description string `json:"description"`
		}
		if json.Unmarshal(bytes.TrimSpace(body), &e) == nil && e.Err != "" {
			return Permanent(fmt.Errorf("%w: %s", serr, e.Err))
		}
		return Permanent(serr)
	}
	return serr
}
