package decision

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/httpapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// Credential headers (HTTP) and metadata keys (gRPC).
//
// A caller presents either a bearer token:
//
//	Authorization: Bearer <token>
//
// or an HMAC-SHA256 signature with the time it was made:
//
//	X-Pushback-Timestamp: <unix seconds>
//	X-Pushback-Signature: v1=<hex HMAC-SHA256(secret, "v1\n" + timestamp + "\n" + target + "\n" + body)>
//
// where target is "POST /v1/decide" over HTTP, or the full gRPC method
// ("/pushback.decision.v1.DecisionService/Decide"), and body is the raw HTTP
// body, or the request message in deterministic protobuf encoding.
const (
	HeaderAuthorization = "authorization"
	HeaderTimestamp     = "x-pushback-timestamp"
	HeaderSignature     = "x-pushback-signature"
	signatureVersion    = "v1"
	// MinSecretBytes is the shortest token or HMAC secret accepted.
	MinSecretBytes = 16
	// DefaultMaxSkew is how far a signature's timestamp may be from now.
	DefaultMaxSkew = 5 * time.Minute
)

// decisionMethodPrefix selects the RPCs the Authenticator guards.
var decisionMethodPrefix = "/" + decisionv1.DecisionService_ServiceDesc.ServiceName + "/"

// AuthOptions configures an Authenticator.
type AuthOptions struct {
	// Tokens are accepted bearer tokens (several allow rotation).
	Tokens []string
	// HMACSecrets are accepted signing secrets (several allow rotation).
	HMACSecrets []string
	// MaxSkew bounds the age of a signature (DefaultMaxSkew when 0).
	MaxSkew time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Counters receives AuthFailures (may be nil).
	Counters *Counters
	// Logger receives one line per rejected call, never a credential.
	Logger *slog.Logger
}

// Authenticator checks the credentials of decision API callers, over gRPC
// (an interceptor) and HTTP (a middleware). With neither tokens nor secrets
// it is disabled and lets every call through.
type Authenticator struct {
	tokens  [][sha256.Size]byte
	secrets [][]byte
	maxSkew time.Duration
	now     func() time.Time
	count   *Counters
	log     *slog.Logger
}

// NewAuthenticator checks and keeps the credentials.
func NewAuthenticator(o AuthOptions) (*Authenticator, error) {
	a := &Authenticator{maxSkew: o.MaxSkew, now: o.Now, count: o.Counters, log: o.Logger}
	if a.maxSkew <= 0 {
		a.maxSkew = DefaultMaxSkew
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.count == nil {
		a.count = &Counters{}
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	for i, t := range o.Tokens {
		if len(t) < MinSecretBytes {
			return nil, fmt.Errorf("auth token %d: shorter than %d bytes", i+1, MinSecretBytes)
		}
		a.tokens = append(a.tokens, sha256.Sum256([]byte(t)))
	}
	for i, s := range o.HMACSecrets {
		if len(s) < MinSecretBytes {
			return nil, fmt.Errorf("auth HMAC secret %d: shorter than %d bytes", i+1, MinSecretBytes)
		}
		a.secrets = append(a.secrets, []byte(s))
	}
	return a, nil
}

// Enabled reports whether any credential is configured.
func (a *Authenticator) Enabled() bool { return a != nil && (len(a.tokens) > 0 || len(a.secrets) > 0) }

// String never shows a credential.
func (a *Authenticator) String() string {
	return fmt.Sprintf("Authenticator{tokens: %d, hmac secrets: %d}", len(a.tokens), len(a.secrets))
}

// LogValue keeps credentials out of logs.
func (a *Authenticator) LogValue() slog.Value { return slog.StringValue(a.String()) }

var (
	errNoCredentials = errors.New("missing credentials: send a bearer token or an HMAC signature")
	errBadToken      = errors.New("invalid bearer token")
	errBadSignature  = errors.New("invalid signature")
	errStale         = errors.New("signature timestamp outside the allowed window")
)

// headers is what verify reads: HTTP headers or gRPC metadata.
type headers func(name string) string

// verify checks one call's credentials; body is what a signature covers.
func (a *Authenticator) verify(h headers, target string, body func() ([]byte, error)) error {
	if authz := h(HeaderAuthorization); authz != "" {
		scheme, tok, ok := strings.Cut(authz, " ")
		if !ok || !strings.EqualFold(scheme, "bearer") || len(a.tokens) == 0 {
			return errBadToken
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		match := 0
		for _, t := range a.tokens {
			match |= subtle.ConstantTimeCompare(sum[:], t[:])
		}
		if match != 1 {
			return errBadToken
		}
		return nil
	}
	sig, ts := h(HeaderSignature), h(HeaderTimestamp)
	if sig == "" && ts == "" {
		return errNoCredentials
	}
	if len(a.secrets) == 0 {
		return errBadSignature
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errStale
	}
	if d := a.now().Sub(time.Unix(sec, 0)); d > a.maxSkew || d < -a.maxSkew {
		return errStale
	}
	version, hexSig, ok := strings.Cut(sig, "=")
	got, herr := hex.DecodeString(hexSig)
	if !ok || version != signatureVersion || herr != nil || len(got) != sha256.Size {
		return errBadSignature
	}
	b, err := body()
	if err != nil {
		return errBadSignature
	}
	for _, s := range a.secrets {
		if hmac.Equal(got, Sign([]byte(s), ts, target, b)) {
			return nil
		}
	}
	return errBadSignature
}

// Sign returns the HMAC-SHA256 signature of a call (see HeaderSignature).
func Sign(secret []byte, timestamp, target string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "%s\n%s\n%s\n", signatureVersion, timestamp, target)
	m.Write(body)
	return m.Sum(nil)
}

func (a *Authenticator) reject(ctx context.Context, transport, target string, err error) {
	a.count.AuthFailures.Add(1)
	a.log.WarnContext(ctx, "decision call rejected", slog.String("transport", transport), slog.String("target", target), slog.String("reason", err.Error()))
}

// UnaryServerInterceptor guards the DecisionService RPCs; other services on
// the same server pass through. A rejected call never reaches the handler,
// so nothing is recorded.
func (a *Authenticator) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !a.Enabled() || !strings.HasPrefix(info.FullMethod, decisionMethodPrefix) {
			return handler(ctx, req)
		}
		md, _ := metadata.FromIncomingContext(ctx)
		h := func(name string) string {
			if v := md.Get(name); len(v) > 0 {
				return v[0]
			}
			return ""
		}
		body := func() ([]byte, error) {
			m, ok := req.(proto.Message)
			if !ok {
				return nil, errors.New("not a protobuf message")
			}
			return proto.MarshalOptions{Deterministic: true}.Marshal(m)
		}
		if err := a.verify(h, info.FullMethod, body); err != nil {
			a.reject(ctx, "grpc", info.FullMethod, err)
			return nil, apierr.Unauthenticated(err.Error())
		}
		return handler(ctx, req)
	}
}

// HTTPTarget is the signed target of POST /v1/decide.
const HTTPTarget = "POST /v1/decide"

// HTTP guards an HTTP endpoint: without valid credentials it answers 401
// with a JSON error and never calls next.
func (a *Authenticator) HTTP(next http.Handler) http.Handler {
	if !a.Enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		read := func() ([]byte, error) {
			if body != nil {
				return body, nil
			}
			b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, httpapi.MaxBodyBytes))
			body = b
			return b, err
		}
		target := r.Method + " " + r.URL.Path
		if err := a.verify(r.Header.Get, target, read); err != nil {
			a.reject(r.Context(), "http", target, err)
			w.Header().Set("WWW-Authenticate", `Bearer realm="pushback"`)
			httpapi.WriteError(w, apierr.Unauthenticated(err.Error()))
			return
		}
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
}

// Credentials are what a client of the decision API presents: the mesh's own
// HTTP gateway, a peer in the split topology, `pushback explain`.
type Credentials struct {
	// Token is sent as a bearer token when set.
	Token string
	// HMACSecret signs each call when set and Token is not.
	HMACSecret string
	// Now is the clock of signatures (time.Now when nil).
	Now func() time.Time
}

// Empty reports whether no credential is set.
func (c Credentials) Empty() bool { return c.Token == "" && c.HMACSecret == "" }

// String never shows a credential.
func (c Credentials) String() string {
	switch {
	case c.Token != "":
		return "Credentials{bearer token}"
	case c.HMACSecret != "":
		return "Credentials{hmac}"
	}
	return "Credentials{}"
}

// LogValue keeps credentials out of logs.
func (c Credentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

// UnaryClientInterceptor adds the credentials to DecisionService calls only,
// so a connection shared with other services never hands them on.
func (c Credentials) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if c.Empty() || !strings.HasPrefix(method, decisionMethodPrefix) {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		if c.Token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, HeaderAuthorization, "Bearer "+c.Token)
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		m, ok := req.(proto.Message)
		if !ok {
			return fmt.Errorf("decision auth: %T is not a protobuf message", req)
		}
		body, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			return err
		}
		now := time.Now
		if c.Now != nil {
			now = c.Now
		}
		ts := strconv.FormatInt(now().Unix(), 10)
		sig := signatureVersion + "=" + hex.EncodeToString(Sign([]byte(c.HMACSecret), ts, method, body))
		ctx = metadata.AppendToOutgoingContext(ctx, HeaderTimestamp, ts, HeaderSignature, sig)
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// SignHTTP adds the credentials to an HTTP request whose body is body.
func (c Credentials) SignHTTP(r *http.Request, body []byte) {
	if c.Token != "" {
		r.Header.Set("Authorization", "Bearer "+c.Token)
		return
	}
	if c.HMACSecret == "" {
		return
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	ts := strconv.FormatInt(now().Unix(), 10)
	r.Header.Set(HeaderTimestamp, ts)
	r.Header.Set(HeaderSignature, signatureVersion+"="+hex.EncodeToString(Sign([]byte(c.HMACSecret), ts, r.Method+" "+r.URL.Path, body)))
}
