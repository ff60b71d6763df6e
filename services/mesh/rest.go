package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"

	"connectrpc.com/connect"
	"connectrpc.com/vanguard"
	"github.com/pushbackhq/pushback/api/openapi"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/httpapi"
	"google.golang.org/genproto/googleapis/api/annotations"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// The RPCs that people and scripts call (GetDecision, ListDecisions,
// ClearCooldown, GetRisk, ListEvents, ListDeliveries, ListIncidents,
// GetIncident, ReleaseActions) are also JSON over HTTP, on the routes their
// google.api.http annotations in proto/ declare. Vanguard transcodes each
// request into a gRPC call to this process's own gRPC server, which runs
// the interceptors a gRPC call runs: the guard, which reads the
// Authorization header as the authorization metadata and checks it against
// the method's rule in pkg/auth's table, telemetry, the codec's refusals,
// then the handler and its validation. Errors keep the JSON shape of every
// other HTTP endpoint (pkg/httpapi), field violations included.
//
// Each route is also a pattern of the HTTP mux whose handler checks the
// method's rule before the transcoder reads the request, so that, as over
// gRPC, a caller without credentials is answered 401 whatever it sent.

// openAPIRoute is where the OpenAPI document of these routes is served.
const openAPIRoute = "GET /v1/openapi.json"

// restPrefix catches what no route matches under /v1/: the transcoder
// answers it 404, or 405 for a route's path with another method. The
// hand-written routes beside them (/v1/decide, /v1/ingest, ...) are more
// specific patterns and keep their handlers.
const restPrefix = "/v1/"

// restRoutes mounts on mux the transcoded routes of the services srv
// serves, and the OpenAPI document. A service this process does not run
// has no route here: its routes are on the HTTP address of the process
// that runs it.
func restRoutes(mux *http.ServeMux, srv *grpc.Server, guard *auth.Guard) error {
	routes, err := httpRoutes(srv)
	if err != nil {
		return err
	}
	h, err := restHandler(srv, routes)
	if err != nil {
		return err
	}
	mux.Handle(restPrefix, h)
	for _, r := range routes {
		mux.Handle(r.pattern, guard.HTTPMethod(r.method, h))
	}
	// Like reflection over gRPC, the document answers any caller the guard
	// knows: it describes the public contracts, but an anonymous scan
	// learns nothing from it.
	mux.Handle(openAPIRoute, guard.HTTPAnyCaller(openAPIRoute, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.Document)
	})))
	return nil
}

// httpRoute is one HTTP binding of an RPC.
type httpRoute struct {
	// pattern is the binding as an http.ServeMux pattern: "GET /v1/decisions/{decision_id}".
	pattern string
	// method is the RPC's full gRPC method name: /pushback.decision.v1.DecisionService/GetDecision.
	method string
	// service is the RPC's service.
	service protoreflect.ServiceDescriptor
}

// httpRoutes lists the google.api.http bindings of the methods of the
// Pushback services srv serves.
func httpRoutes(srv *grpc.Server) ([]httpRoute, error) {
	var out []httpRoute
	for _, name := range slices.Sorted(maps.Keys(srv.GetServiceInfo())) {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			continue // registered without a descriptor: not a contract of ours
		}
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if !ok {
			continue
		}
		methods := sd.Methods()
		for i := 0; i < methods.Len(); i++ {
			m := methods.Get(i)
			rule, ok := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
			if !ok || rule.GetPattern() == nil {
				continue
			}
			for _, b := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
				p, err := muxPattern(b)
				if err != nil {
					return nil, fmt.Errorf("http route of %s: %w", m.FullName(), err)
				}
				out = append(out, httpRoute{pattern: p, method: "/" + string(sd.FullName()) + "/" + string(m.Name()), service: sd})
			}
		}
	}
	return out, nil
}

// templateSegment is a path segment the mux matches as vanguard does: a
// literal, or a variable naming a top-level field; the last one may end
// in a custom verb (":clear").
var templateSegment = regexp.MustCompile(`^(?:[A-Za-z0-9._~-]+|\{[a-z][a-z0-9_]*\})(?::[A-Za-z][A-Za-z0-9]*)?$`)

// muxPattern turns a binding into an http.ServeMux pattern. The templates
// this takes (literals, {field}, a final :verb) mean the same to both;
// another form is refused rather than matched differently.
func muxPattern(r *annotations.HttpRule) (string, error) {
	var method, path string
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		method, path = http.MethodGet, p.Get
	case *annotations.HttpRule_Post:
		method, path = http.MethodPost, p.Post
	case *annotations.HttpRule_Put:
		method, path = http.MethodPut, p.Put
	case *annotations.HttpRule_Delete:
		method, path = http.MethodDelete, p.Delete
	case *annotations.HttpRule_Patch:
		method, path = http.MethodPatch, p.Patch
	default:
		return "", errors.New("only get, post, put, delete and patch bindings are served")
	}
	rest, ok := strings.CutPrefix(path, restPrefix)
	if !ok {
		return "", fmt.Errorf("%s is not under %s", path, restPrefix)
	}
	segs := strings.Split(rest, "/")
	for i, s := range segs {
		if !templateSegment.MatchString(s) || (strings.HasPrefix(s, "{") && strings.Contains(s, ":")) || (i < len(segs)-1 && strings.Contains(s, ":")) {
			return "", fmt.Errorf("path template %s: segment %q is not a literal or a {field}", path, s)
		}
	}
	return method + " " + path, nil
}

// restHandler is the transcoder for the routes, answering errors as
// pkg/httpapi does.
func restHandler(srv *grpc.Server, routes []httpRoute) (http.Handler, error) {
	target := readErrors(srv)
	var services []*vanguard.Service
	seen := map[protoreflect.FullName]bool{}
	for _, r := range routes {
		if !seen[r.service.FullName()] {
			seen[r.service.FullName()] = true
			services = append(services, vanguard.NewServiceWithSchema(r.service, target))
		}
	}
	t, err := vanguard.NewTranscoder(services,
		vanguard.WithDefaultServiceOptions(
			// The gRPC server reads protobuf only (rpc.NewServer).
			vanguard.WithTargetProtocols(vanguard.ProtocolGRPC),
			vanguard.WithTargetCodecs(vanguard.CodecProto),
			vanguard.WithMaxMessageBufferBytes(httpapi.MaxBodyBytes),
		),
		// JSON as POST /v1/decide reads and writes it: unknown fields are
		// refused, unset fields left out.
		vanguard.WithCodec(func(res vanguard.TypeResolver) vanguard.Codec {
			return &vanguard.JSONCodec{
				MarshalOptions:   protojson.MarshalOptions{Resolver: res},
				UnmarshalOptions: protojson.UnmarshalOptions{Resolver: res},
			}
		}),
		// jsonErrors makes this the JSON 404 of every other endpoint.
		vanguard.WithUnknownHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path), http.StatusNotFound)
		})),
	)
	if err != nil {
		return nil, fmt.Errorf("http routes: %w", err)
	}
	return jsonErrors(t), nil
}

// restCall is what one HTTP call learns on its way through the
// transcoder: whether the server could read its request message.
type restCall struct {
	mu sync.Mutex
	// read counts the bytes the server read; ended: the request ended
	// (EOF) or failed (readErr) as it read.
	read    int64
	ended   bool
	readErr error
}

// unreadable reports whether the server got no request message: the
// transcoder makes the message (an envelope of at least 5 bytes, even for
// an empty message) as the server reads, and ends the request instead when
// a path variable, query parameter or body does not decode.
func (c *restCall) unreadable() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr != nil || (c.ended && c.read == 0), c.readErr
}

type restCallKey struct{}

// readErrors hands the transcoded calls to srv, noting how reading the
// request went, so that a request the transcoder could not decode is
// answered as the caller's 400, not as the server's complaint that no
// message came.
func readErrors(srv http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if call, ok := r.Context().Value(restCallKey{}).(*restCall); ok {
			r.Body = &noteReads{ReadCloser: r.Body, call: call}
		}
		srv.ServeHTTP(w, r)
	})
}

type noteReads struct {
	io.ReadCloser
	call *restCall
}

func (n *noteReads) Read(p []byte) (int, error) {
	k, err := n.ReadCloser.Read(p)
	n.call.mu.Lock()
	n.call.read += int64(k)
	if err != nil {
		n.call.ended = true
		if n.call.readErr == nil && !errors.Is(err, io.EOF) {
			n.call.readErr = err
		}
	}
	n.call.mu.Unlock()
	return k, err
}

// jsonErrors rewrites the transcoder's errors (a google.rpc.Status as JSON,
// or a plain-text HTTP error for a request it could not route) into the
// JSON error of pkg/httpapi: the same code names, reason and
// fieldViolations as every other HTTP endpoint.
func jsonErrors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		call := &restCall{}
		ew := &errorWriter{ResponseWriter: w, call: call}
		next.ServeHTTP(ew, r.WithContext(context.WithValue(r.Context(), restCallKey{}, call)))
		ew.finish()
	})
}

// errorWriter passes a success through and holds back an error's body.
type errorWriter struct {
	http.ResponseWriter
	call *restCall
	code int
	body bytes.Buffer
}

func (e *errorWriter) WriteHeader(code int) {
	if e.code != 0 {
		return
	}
	e.code = code
	if code < http.StatusBadRequest {
		// The gRPC side's empty Date would keep net/http from adding one.
		if d, ok := e.Header()["Date"]; ok && len(d) == 0 {
			delete(e.Header(), "Date")
		}
		e.ResponseWriter.WriteHeader(code)
	}
}

func (e *errorWriter) Write(b []byte) (int, error) {
	if e.code == 0 {
		e.WriteHeader(http.StatusOK)
	}
	if e.code >= http.StatusBadRequest {
		// An error body is small; the rest of a huge one is not needed.
		if e.body.Len() < httpapi.MaxBodyBytes {
			e.body.Write(b)
		}
		return len(b), nil
	}
	return e.ResponseWriter.Write(b)
}

// Flush flushes a success once its status is known; an error is written
// whole by finish.
func (e *errorWriter) Flush() {
	if e.code != 0 && e.code < http.StatusBadRequest {
		if f, ok := e.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (e *errorWriter) Unwrap() http.ResponseWriter { return e.ResponseWriter }

func (e *errorWriter) finish() {
	if e.code < http.StatusBadRequest {
		return
	}
	err := e.err()
	h := e.ResponseWriter.Header()
	// Only the error's own headers stay (Allow for a 405): not the gRPC
	// call's, nor the held-back body's.
	for k := range h {
		if k != "Allow" {
			delete(h, k)
		}
	}
	if e.code == http.StatusMethodNotAllowed {
		httpapi.WriteJSON(e.ResponseWriter, e.code, httpapi.ErrorBody{Error: httpapi.ErrorDetail{
			Code: "METHOD_NOT_ALLOWED", Message: "use " + strings.ReplaceAll(h.Get("Allow"), ",", " or ")}})
		return
	}
	if status.Code(err) == codes.Unauthenticated {
		h.Set("WWW-Authenticate", `Bearer realm="pushback"`)
	}
	if apierr.Reason(err) == eventv1.ErrorReason_ERROR_REASON_TOO_LARGE.String() {
		httpapi.WriteJSON(e.ResponseWriter, http.StatusRequestEntityTooLarge, httpapi.ErrorBody{Error: httpapi.ErrorDetail{
			Code: httpapi.CodeName(codes.InvalidArgument), Reason: apierr.Reason(err), Message: status.Convert(err).Message()}})
		return
	}
	httpapi.WriteError(e.ResponseWriter, err)
}

// err is the error to answer: the caller's, when its request could not be
// decoded, else the status the held-back body carries.
func (e *errorWriter) err() error {
	var st statuspb.Status
	isStatus := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(e.body.Bytes(), &st) == nil && st.GetCode() != 0
	if unreadable, readErr := e.call.unreadable(); unreadable {
		var ce *connect.Error
		if (errors.As(readErr, &ce) && ce.Code() == connect.CodeResourceExhausted) || codes.Code(st.GetCode()) == codes.ResourceExhausted {
			return apierr.New(codes.InvalidArgument, eventv1.ErrorReason_ERROR_REASON_TOO_LARGE,
				fmt.Sprintf("the request exceeds %d bytes", httpapi.MaxBodyBytes), nil)
		}
		switch {
		case isStatus:
			return invalidRequest(st.GetMessage())
		case readErr != nil:
			return invalidRequest(readMessage(readErr))
		}
		return invalidRequest("the request could not be read")
	}
	if isStatus {
		return status.FromProto(&st).Err()
	}
	// A request the transcoder refused before any call, as plain text.
	msg := strings.TrimSpace(e.body.String())
	switch e.code {
	case http.StatusNotFound:
		return apierr.New(codes.NotFound, eventv1.ErrorReason_ERROR_REASON_NOT_FOUND, msg, nil)
	case http.StatusBadRequest, http.StatusUnsupportedMediaType:
		return invalidRequest(msg)
	case http.StatusRequestEntityTooLarge:
		return apierr.New(codes.InvalidArgument, eventv1.ErrorReason_ERROR_REASON_TOO_LARGE, msg, nil)
	}
	return apierr.Internal()
}

// readMessage is a read error's text without the Connect code's prefix.
func readMessage(err error) string {
	if ce := new(connect.Error); errors.As(err, &ce) {
		return ce.Message()
	}
	return err.Error()
}

// violatedField finds the field a transcoder's or protojson's refusal
// names: `invalid parameter "page_size"`, `field path "colour"`,
// `unknown field "bogus"`.
var violatedField = regexp.MustCompile(`(?:invalid parameter|field path|unknown field) "([^"]+)"`)

// invalidRequest is an InvalidArgument for a request the transcoder could
// not read, naming the field when the message does.
func invalidRequest(msg string) error {
	field := httpapi.JSONField(msg)
	if m := violatedField.FindStringSubmatch(msg); m != nil {
		field = m[1]
	}
	if field != "" {
		return apierr.InvalidArgument(apierr.FieldViolation{Field: field, Description: msg})
	}
	return apierr.New(codes.InvalidArgument, eventv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT, "invalid request: "+msg, nil)
}
