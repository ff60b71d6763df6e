package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

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
// or, as a hook, an HMAC-SHA256 signature with the time it was made:
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
)

// Sign returns the HMAC-SHA256 signature of a call (see HeaderSignature).
func Sign(secret []byte, timestamp, target string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "%s\n%s\n%s\n", signatureVersion, timestamp, target)
	m.Write(body)
	return m.Sum(nil)
}

// Credentials are what a caller outside the mesh presents: a bearer token,
// or an HMAC secret that signs each unary call. They go with every call on
// the connection they are dialled with: dial one connection per service, so
// that one service's credential is never handed to another.
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

// GoString never shows a credential either.
func (c Credentials) GoString() string { return c.String() }

// LogValue keeps credentials out of logs.
func (c Credentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

func (c Credentials) timestamp() string {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	return strconv.FormatInt(now().Unix(), 10)
}

// UnaryClientInterceptor adds the credentials to every unary call.
func (c Credentials) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		switch {
		case c.Token != "":
			ctx = metadata.AppendToOutgoingContext(ctx, HeaderAuthorization, "Bearer "+c.Token)
		case c.HMACSecret != "":
			m, ok := req.(proto.Message)
			if !ok {
				return fmt.Errorf("auth: %T is not a protobuf message", req)
			}
			body, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
			if err != nil {
				return err
			}
			ts := c.timestamp()
			sig := signatureVersion + "=" + hex.EncodeToString(Sign([]byte(c.HMACSecret), ts, method, body))
			ctx = metadata.AppendToOutgoingContext(ctx, HeaderTimestamp, ts, HeaderSignature, sig)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// StreamClientInterceptor adds the bearer token to every streaming call; a
// stream cannot be signed, so with only an HMAC secret it fails.
func (c Credentials) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		switch {
		case c.Token != "":
			ctx = metadata.AppendToOutgoingContext(ctx, HeaderAuthorization, "Bearer "+c.Token)
		case c.HMACSecret != "":
			return nil, fmt.Errorf("auth: %s is a stream, which a signature cannot cover; use a bearer token", method)
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
}

// DialOptions are the interceptors that present the credentials.
func (c Credentials) DialOptions() []grpc.DialOption {
	if c.Empty() {
		return nil
	}
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(c.UnaryClientInterceptor()), grpc.WithChainStreamInterceptor(c.StreamClientInterceptor())}
}

// SignHTTP adds the credentials to an HTTP request whose body is body.
func (c Credentials) SignHTTP(r *http.Request, body []byte) {
	switch {
	case c.Token != "":
		r.Header.Set("Authorization", "Bearer "+c.Token)
	case c.HMACSecret != "":
		ts := c.timestamp()
		r.Header.Set(HeaderTimestamp, ts)
		r.Header.Set(HeaderSignature, signatureVersion+"="+hex.EncodeToString(Sign([]byte(c.HMACSecret), ts, r.Method+" "+r.URL.Path, body)))
	}
}
