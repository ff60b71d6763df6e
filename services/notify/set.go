package notify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
)

// SETType is the JWS "typ" of a Security Event Token (RFC 8417 section
// 2.3): a receiver that insists on it cannot be handed an ID token or an
// access token signed by the same key as if it were an event.
const SETType = "secevent+jwt"

// MaxSETBytes bounds a token VerifySET reads: a SET is a few hundred
// bytes, and nothing a receiver is handed should cost more than this to
// parse.
const MaxSETBytes = 64 << 10

// JWKSPath is where the mesh publishes the key that signs security events.
const JWKSPath = "/.well-known/jwks.json"

// Signer signs Security Event Tokens with ES256 (ECDSA P-256, SHA-256)
// through go-jose.
type Signer struct {
	signer jose.Signer
	public jose.JSONWebKey
}

// NewSigner returns a signer for a P-256 key; its key id is the RFC 7638
// thumbprint of the public key, so it stays the same across restarts with
// the same key file.
func NewSigner(key *ecdsa.PrivateKey) (*Signer, error) {
	if key == nil || key.Curve != elliptic.P256() {
		return nil, errors.New("notify: the security event signing key must be ECDSA P-256")
	}
	pub := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.ES256), Use: "sig"}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("notify: the security event signing key: %w", err)
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: pub.KeyID}},
		(&jose.SignerOptions{}).WithType(SETType))
	if err != nil {
		return nil, fmt.Errorf("notify: the security event signing key: %w", err)
	}
	return &Signer{signer: signer, public: pub}, nil
}

// KeyID is the signing key's id ("kid").
func (s *Signer) KeyID() string { return s.public.KeyID }

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

// JWKS is the public key set receivers verify with (RFC 7517).
func (s *Signer) JWKS() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{s.public}}
}

// JWKSHandler serves the signer's public keys.
func JWKSHandler(s *Signer) http.Handler {
	body, _ := json.Marshal(s.JWKS())
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(body)
	})
}

// Sign returns the compact JWS of claims, header {"alg": "ES256", "kid":
// <key id>, "typ": "secevent+jwt"}.
func (s *Signer) Sign(claims any) (string, error) {
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := s.signer.Sign(body)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
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

// VerifySET checks a compact JWS against keys and returns its claims. It
// is what a receiver does with the published key set: ES256 only (an
// "alg" of none or HS256 fails before any key is tried), typ secevent+jwt
// and kid in the protected header, the key the kid names (EC P-256, for
// signing), and jti, iss and events present.
func VerifySET(token string, keys jose.JSONWebKeySet) (*SETClaims, error) {
	if len(token) > MaxSETBytes {
		return nil, errors.New("set: token too large")
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, fmt.Errorf("set: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("set: want exactly one signature")
	}
	hdr := jws.Signatures[0].Protected
	if typ, _ := hdr.ExtraHeaders[jose.HeaderType].(string); typ != SETType {
		return nil, fmt.Errorf("set: typ %q, want %s", typ, SETType)
	}
	if hdr.KeyID == "" {
		return nil, errors.New("set: no kid in the header")
	}
	var payload []byte
	for _, k := range keys.Key(hdr.KeyID) {
		pub, ok := k.Key.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() || (k.Use != "" && k.Use != "sig") || (k.Algorithm != "" && k.Algorithm != string(jose.ES256)) {
			continue
		}
		if payload, err = jws.Verify(pub); err == nil {
			break
		}
	}
	if payload == nil {
		return nil, fmt.Errorf("set: no key %q in the key set verifies the signature", hdr.KeyID)
	}
	c := &SETClaims{}
	if err := json.Unmarshal(payload, c); err != nil {
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
