package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/httpapi"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
)

// Options configures a Guard.
type Options struct {
	// Config holds the outside callers' credentials.
	Config Config
	// Rules say who may call the services' methods, by full gRPC method
	// name; the guard adds ServerRules.
	Rules map[string]Rule
	// Open lets every caller call every method in the table without
	// credentials. The mesh sets it only when no credential of any kind is
	// configured and nothing listens or dials beyond loopback: the
	// newcomer's `pushback serve`.
	Open bool
	// Logger receives one line per refused call, never a credential.
	Logger *slog.Logger
	// Meter records pushback.rpc.auth_failures (no metrics when nil).
	Meter metric.Meter
	// OnReject, when set, is told the method (a full gRPC method, or an
	// HTTP endpoint's name) of each refused call.
	OnReject func(method string)
	// Now is the clock of signatures (time.Now when nil).
	Now func() time.Time
}

// Guard authenticates every call and authorizes it by the table: the
// services' rules (Options.Rules) and ServerRules.
type Guard struct {
	rules     map[string]rule
	tokens    []token
	secrets   [][]byte
	maxSkew   time.Duration
	now       func() time.Time
	mesh      string
	open      bool
	anonymous roleSet
	log       *slog.Logger
	failures  metric.Int64Counter
	onReject  func(string)
}

// token is a configured bearer token, kept as its hash so that comparing
// takes the same time whatever the presented token's length.
type token struct {
	sum   [sha256.Size]byte
	roles roleSet
}

// meshHeader carries the mesh's in-process credential.
const meshHeader = "x-pushback-mesh"

// NewGuard checks the credentials and makes the process's mesh credential.
func NewGuard(o Options) (*Guard, error) {
	if errs := o.Config.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("auth: mesh credential: %w", err)
	}
	rules := ServerRules()
	for m, r := range o.Rules {
		if _, ok := rules[m]; ok {
			return nil, fmt.Errorf("auth: two rules for %s", m)
		}
		rules[m] = r
	}
	g := &Guard{
		rules: compile(rules), maxSkew: o.Config.MaxSkew, now: o.Now, open: o.Open,
		anonymous: setOf(o.Config.Anonymous()...), log: o.Logger, onReject: o.OnReject,
		mesh: base64.RawURLEncoding.EncodeToString(secret),
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	meter := o.Meter
	if meter == nil {
		meter = noop.NewMeterProvider().Meter("auth")
	}
	var err error
	if g.failures, err = meter.Int64Counter("pushback.rpc.auth_failures", metric.WithUnit("{call}"),
		metric.WithDescription("Calls refused by the authorization table, by transport, method and code (unauthenticated: no or a wrong credential; permission_denied: a valid credential of another role).")); err != nil {
		return nil, err
	}
	for v, roles := range o.Config.tokens() {
		g.tokens = append(g.tokens, token{sum: sha256.Sum256([]byte(v)), roles: roles})
	}
	for _, s := range o.Config.HookHMACSecrets {
		g.secrets = append(g.secrets, []byte(s))
	}
	return g, nil
}

// String never shows a credential.
func (g *Guard) String() string {
	return fmt.Sprintf("Guard{open: %v, tokens: %d, hmac secrets: %d}", g.open, len(g.tokens), len(g.secrets))
}

// GoString never shows a credential either.
func (g *Guard) GoString() string { return g.String() }

// LogValue keeps credentials out of logs.
func (g *Guard) LogValue() slog.Value { return slog.StringValue(g.String()) }

// MeshCredentials is what the process's own clients present on their
// in-memory connections to its server. Dial only in-process connections
// with it: it must never cross the network.
func (g *Guard) MeshCredentials() credentials.PerRPCCredentials { return meshCredentials{g.mesh} }

type meshCredentials struct{ value string }

func (m meshCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{meshHeader: m.value}, nil
}

// RequireTransportSecurity is false: the in-memory connection is in-process.
func (meshCredentials) RequireTransportSecurity() bool { return false }

// String and GoString never show the credential.
func (meshCredentials) String() string   { return "mesh credential" }
func (meshCredentials) GoString() string { return "mesh credential" }

var (
	errNoCredentials = errors.New("missing credentials: present a bearer token, a signature or a service certificate")
	errBadToken      = errors.New("invalid bearer token")
	errBadSignature  = errors.New("invalid signature")
	errStale         = errors.New("signature timestamp outside the allowed window")
	errStreamSigned  = errors.New("signatures cover unary calls only; present a bearer token")
	errBadMesh       = errors.New("invalid mesh credential")
	errNoRule        = errors.New("no authorization rule for this method")
)

// UnaryServerInterceptor enforces the table on unary calls.
func (g *Guard) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		body := func() ([]byte, error) {
			m, ok := req.(proto.Message)
			if !ok {
				return nil, errors.New("not a protobuf message")
			}
			return proto.MarshalOptions{Deterministic: true}.Marshal(m)
		}
		if err := g.checkRPC(ctx, info.FullMethod, body); err != nil {
			return nil, err
		}
		if signedOnly(incoming(ctx)) {
			if n, ok := req.(attemptNamer); ok {
				if err := needAttemptID(n.GetAttemptId()); err != nil {
					return nil, err
				}
			}
		}
		return handler(ctx, req)
	}
}

// attemptNamer is a request that names its attempt (DecideRequest).
type attemptNamer interface{ GetAttemptId() string }

// incoming reads the values of one key of the call's incoming metadata,
// without copying the whole of it for every lookup (which
// metadata.FromIncomingContext does).
func incoming(ctx context.Context) func(string) []string {
	return func(name string) []string { return metadata.ValueFromIncomingContext(ctx, name) }
}

// signedOnly reports whether a call authenticates by signature alone.
func signedOnly(get func(string) []string) bool {
	return len(get(HeaderSignature)) > 0 && len(get("authorization")) == 0
}

// needAttemptID refuses a signed attempt without an attempt id. A signature
// binds the request, not the moment: a captured call replays within the
// skew window, and only its attempt id makes the replay the same attempt
// (answered from the record, counted once) instead of another push.
func needAttemptID(id string) error {
	if id != "" {
		return nil
	}
	var v apierr.Violations
	v.Add("attempt_id", "is required in a signed call: a signature can be replayed within the skew window, and the attempt id makes a replay count once")
	return v.Err()
}

// StreamServerInterceptor enforces the table on streaming calls, before
// the first message is read.
func (g *Guard) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := g.checkRPC(ss.Context(), info.FullMethod, nil); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

func (g *Guard) checkRPC(ctx context.Context, method string, body func() ([]byte, error)) error {
	r, ok := g.rules[method]
	if !ok {
		// A registered method the table forgot: a bug, refused until fixed.
		return g.refuse(ctx, "grpc", method, codes.PermissionDenied, errNoRule.Error(), 0)
	}
	if r.anyone || g.open {
		return nil
	}
	h := func(name string) string {
		// Not through incoming: a closure held by one that escapes (to
		// verify) is one more allocation per call.
		if v := metadata.ValueFromIncomingContext(ctx, name); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	got, presented, err := g.verify(h, method, body)
	if err != nil {
		return g.refuse(ctx, "grpc", method, codes.Unauthenticated, err.Error(), 0)
	}
	if v := h(meshHeader); v != "" {
		if subtle.ConstantTimeCompare([]byte(v), []byte(g.mesh)) != 1 {
			return g.refuse(ctx, "grpc", method, codes.Unauthenticated, errBadMesh.Error(), got)
		}
		got |= Mesh.bit()
		presented = true
	}
	if p, ok := peer.FromContext(ctx); ok {
		// The server required and verified the client's chain; its leaf
		// names the services the peer runs.
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 && len(ti.State.VerifiedChains[0]) > 0 {
			got |= servicesOf(ti.State.VerifiedChains[0][0])
		}
	}
	return g.authorize(ctx, "grpc", method, r, got, presented)
}

// authorize admits a caller holding got when the rule names one of its
// roles. A caller that presented nothing takes the anonymous roles, and is
// told to authenticate when they do not suffice.
func (g *Guard) authorize(ctx context.Context, transport, method string, r rule, got roleSet, presented bool) error {
	anonymous := got == 0 && !presented
	if anonymous {
		got = g.anonymous
	}
	switch {
	case got&r.roles != 0, r.anyCaller && got != 0:
		return nil
	case got == 0, anonymous:
		return g.refuse(ctx, transport, method, codes.Unauthenticated, errNoCredentials.Error(), 0)
	}
	return g.refuse(ctx, transport, method, codes.PermissionDenied, fmt.Sprintf("%s is not open to %s", method, got), got)
}

// verify reads the caller's token or signature: the roles it grants, and
// whether one was presented at all. A presented credential that does not
// verify is an error, never a fall back to anonymous.
func (g *Guard) verify(h func(string) string, target string, body func() ([]byte, error)) (roleSet, bool, error) {
	if authz := h("authorization"); authz != "" {
		sum := sha256.Sum256([]byte(BearerToken(authz)))
		var got roleSet
		for _, t := range g.tokens {
			if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 {
				got |= t.roles
			}
		}
		if got == 0 {
			return 0, true, errBadToken
		}
		return got, true, nil
	}
	sig, ts := h(HeaderSignature), h(HeaderTimestamp)
	if sig == "" && ts == "" {
		return 0, false, nil
	}
	if body == nil {
		return 0, true, errStreamSigned
	}
	if len(g.secrets) == 0 {
		return 0, true, errBadSignature
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return 0, true, errStale
	}
	if d := g.now().Sub(time.Unix(sec, 0)); d > g.maxSkew || d < -g.maxSkew {
		return 0, true, errStale
	}
	version, hexSig, ok := strings.Cut(sig, "=")
	want, herr := hex.DecodeString(hexSig)
	if !ok || version != signatureVersion || herr != nil || len(want) != sha256.Size {
		return 0, true, errBadSignature
	}
	b, err := body()
	if err != nil {
		return 0, true, errBadSignature
	}
	for _, s := range g.secrets {
		if hmac.Equal(want, Sign(s, ts, target, b)) {
			return Hook.bit(), true, nil
		}
	}
	return 0, true, errBadSignature
}

// BearerToken is the token in an Authorization value: after "Bearer " (any
// case), or the whole value, as an Okta Event Hook sends its configured
// header. Any other scheme ("Basic ...") is kept whole and matches nothing.
func BearerToken(authz string) string {
	v := strings.TrimSpace(authz)
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return v
}

// HTTP guards an HTTP endpoint, named name in logs and metrics: a request
// without a credential of role answers 401 (no or a wrong credential) or
// 403 (another role's) with the JSON error body, and never reaches next.
// A signature covers the request's method and path and its raw body.
func (g *Guard) HTTP(name string, role Role, next http.Handler) http.Handler {
	return g.http(name, rule{roles: role.bit()}, role == Hook, next)
}

// HTTPAnyCaller guards an HTTP endpoint as HTTP does, letting in every
// caller that holds some role (as gRPC reflection does).
func (g *Guard) HTTPAnyCaller(name string, next http.Handler) http.Handler {
	return g.http(name, rule{anyCaller: true}, false, next)
}

// HTTPMethod guards an HTTP route that stands for the gRPC method (a route
// transcoded into a call of it): the table's rule for method decides, as
// for the RPC, and logs and metrics name the method. The RPC's own check
// still runs behind it; this one answers before anything reads the request,
// so that a caller without credentials learns nothing about its request.
func (g *Guard) HTTPMethod(method string, next http.Handler) http.Handler {
	r, ok := g.rules[method]
	if !ok {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			httpapi.WriteError(w, g.refuse(withRemote(req.Context(), req.RemoteAddr), "http", method, codes.PermissionDenied, errNoRule.Error(), 0))
		})
	}
	return g.http(method, r, false, next)
}

// http is HTTP with rule r; attempts: the endpoint decides push attempts,
// so a signed call must name its attempt.
func (g *Guard) http(name string, r rule, attempts bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if g.open || r.anyone {
			next.ServeHTTP(w, req)
			return
		}
		var body []byte
		read := func() ([]byte, error) {
			if body != nil {
				return body, nil
			}
			b, err := io.ReadAll(http.MaxBytesReader(w, req.Body, httpapi.MaxBodyBytes))
			body = b
			return b, err
		}
		ctx := withRemote(req.Context(), req.RemoteAddr)
		got, presented, err := g.verify(req.Header.Get, req.Method+" "+req.URL.Path, read)
		if err == nil {
			err = g.authorize(ctx, "http", name, r, got, presented)
		} else {
			err = g.refuse(ctx, "http", name, codes.Unauthenticated, err.Error(), 0)
		}
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pushback"`)
			httpapi.WriteError(w, err)
			return
		}
		if attempts && signedOnly(func(k string) []string { return req.Header.Values(k) }) {
			var named struct {
				AttemptID  string `json:"attemptId"`
				AttemptID2 string `json:"attempt_id"`
			}
			_ = json.Unmarshal(body, &named)
			if err := needAttemptID(named.AttemptID + named.AttemptID2); err != nil {
				httpapi.WriteError(w, err)
				return
			}
		}
		if body != nil {
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, req)
	})
}

type remoteKey struct{}

// withRemote carries an HTTP caller's address to the refusal log line, as
// the gRPC peer does for RPCs.
func withRemote(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, remoteKey{}, addr)
}

// refuse counts and logs a refused call and returns its status. The log
// line names the method, the code, why, the roles the caller did hold and
// where it came from: never what it presented.
func (g *Guard) refuse(ctx context.Context, transport, method string, code codes.Code, why string, held roleSet) error {
	codeName := strings.ToLower(httpapi.CodeName(code))
	g.failures.Add(ctx, 1, metric.WithAttributes(attribute.String("transport", transport), attribute.String("method", method), attribute.String("code", codeName)))
	if g.onReject != nil {
		g.onReject(method)
	}
	from, _ := ctx.Value(remoteKey{}).(string)
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		from = p.Addr.String()
	}
	g.log.LogAttrs(ctx, slog.LevelWarn, "call refused", slog.String("transport", transport), slog.String("method", method),
		slog.String("code", codeName), slog.String("reason", why), slog.String("roles", held.String()), slog.String("peer", from))
	if code == codes.PermissionDenied {
		return apierr.PermissionDenied(why)
	}
	return apierr.Unauthenticated(why)
}
