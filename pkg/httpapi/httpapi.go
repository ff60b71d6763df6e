// Package httpapi serves protobuf request/response RPCs as JSON over HTTP
// with the same validation and errors as gRPC: a gRPC status becomes an HTTP
// status and a JSON error body naming the reason and the offending fields.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// MaxBodyBytes caps a request body.
const MaxBodyBytes = 1 << 20

// ErrorBody is the JSON shape of every HTTP error.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail describes one error.
type ErrorDetail struct {
	Code            string           `json:"code"`
	Message         string           `json:"message"`
	Reason          string           `json:"reason,omitempty"`
	FieldViolations []FieldViolation `json:"fieldViolations,omitempty"`
}

// FieldViolation names one bad field.
type FieldViolation struct {
	Field       string `json:"field"`
	Description string `json:"description"`
}

// HTTPStatus maps a gRPC code to an HTTP status.
func HTTPStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.OutOfRange, codes.FailedPrecondition:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

// WriteError writes err as a JSON error. A non-status error is internal and
// its text is not exposed.
func WriteError(w http.ResponseWriter, err error) {
	body, st := errorBody(err)
	code := HTTPStatus(st.Code())
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	WriteJSON(w, code, body)
}

// ErrorBodyOf is the JSON error body of err, as WriteError writes it (for
// an error inside a stream that already answered 200).
func ErrorBodyOf(err error) ErrorBody {
	b, _ := errorBody(err)
	return b
}

func errorBody(err error) (ErrorBody, *status.Status) {
	st, ok := status.FromError(err)
	if !ok {
		st = status.New(codes.Internal, "internal error")
	}
	body := ErrorBody{Error: ErrorDetail{Code: CodeName(st.Code()), Message: st.Message()}}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			body.Error.Reason = d.GetReason()
		case *errdetails.BadRequest:
			for _, fv := range d.GetFieldViolations() {
				body.Error.FieldViolations = append(body.Error.FieldViolations, FieldViolation{Field: fv.GetField(), Description: fv.GetDescription()})
			}
		}
	}
	return body, st
}

// WriteJSON writes v as JSON with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// BadRequest writes a 400 naming field.
func BadRequest(w http.ResponseWriter, field, msg string) {
	body := ErrorBody{Error: ErrorDetail{Code: CodeName(codes.InvalidArgument), Message: msg, Reason: "ERROR_REASON_INVALID_ARGUMENT"}}
	if field != "" {
		body.Error.FieldViolations = []FieldViolation{{Field: field, Description: msg}}
	}
	WriteJSON(w, http.StatusBadRequest, body)
}

// ReadBody reads a bounded request body; it writes the error itself and
// returns false when the body is too large or unreadable.
func ReadBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			WriteJSON(w, http.StatusRequestEntityTooLarge, ErrorBody{Error: ErrorDetail{
				Code: CodeName(codes.InvalidArgument), Reason: "ERROR_REASON_TOO_LARGE", Message: "request body exceeds 1 MiB"}})
			return nil, false
		}
		BadRequest(w, "", "cannot read the request body")
		return nil, false
	}
	return body, true
}

var unmarshal = protojson.UnmarshalOptions{DiscardUnknown: false}

var marshal = protojson.MarshalOptions{EmitUnpopulated: false}

// Unary serves one RPC as POST with a JSON body (protojson field names).
func Unary[Req, Resp proto.Message](newReq func() Req, call func(ctx context.Context, req Req) (Resp, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			WriteJSON(w, http.StatusMethodNotAllowed, ErrorBody{Error: ErrorDetail{Code: "METHOD_NOT_ALLOWED", Message: "use POST"}})
			return
		}
		body, ok := ReadBody(w, r)
		if !ok {
			return
		}
		req := newReq()
		if err := unmarshal.Unmarshal(body, req); err != nil {
			BadRequest(w, jsonField(err.Error()), "malformed JSON: "+err.Error())
			return
		}
		resp, err := call(r.Context(), req)
		if err != nil {
			WriteError(w, err)
			return
		}
		out, err := marshal.Marshal(resp)
		if err != nil {
			WriteError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
}

// JSONField is the field a protojson error message names, or "".
func JSONField(msg string) string { return jsonField(msg) }

// jsonField pulls a field name out of a protojson error when it names one.
func jsonField(msg string) string {
	for _, marker := range []string{"unknown field \"", "invalid value for enum field ", "field "} {
		if i := strings.Index(msg, marker); i >= 0 {
			rest := strings.TrimLeft(msg[i+len(marker):], "\"")
			if j := strings.IndexAny(rest, "\": ,"); j > 0 {
				return rest[:j]
			}
		}
	}
	return ""
}

// CodeName renders a gRPC code as in the gRPC spec: INVALID_ARGUMENT.
func CodeName(c codes.Code) string {
	var b strings.Builder
	prevLower := false
	for _, r := range c.String() {
		upper := r >= 'A' && r <= 'Z'
		if upper && prevLower {
			b.WriteByte('_')
		}
		prevLower = r >= 'a' && r <= 'z'
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}
