// Package apierr builds gRPC status errors that carry a google.rpc.ErrorInfo
// whose reason is a pushback.event.v1.ErrorReason, and BadRequest field
// violations for invalid input. Callers see a stable, machine-readable reason
// and never an internal error text.
package apierr

import (
	"errors"
	"fmt"
	"strings"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domain is the ErrorInfo domain of every Pushback error.
const Domain = "pushback"

// New returns a status error with an ErrorInfo carrying reason and metadata.
func New(code codes.Code, reason eventv1.ErrorReason, msg string, metadata map[string]string) error {
	st := status.New(code, msg)
	withInfo, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   reason.String(),
		Domain:   Domain,
		Metadata: metadata,
	})
	if err != nil {
		return st.Err()
	}
	return withInfo.Err()
}

// FieldViolation names one invalid request field.
type FieldViolation struct {
	Field       string
	Description string
}

// Violations collects field violations while validating a request.
type Violations struct {
	list []FieldViolation
}

// Add records that field is invalid.
func (v *Violations) Add(field, format string, args ...any) {
	v.list = append(v.list, FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
}

// Len reports how many violations were recorded.
func (v *Violations) Len() int { return len(v.list) }

// List returns the recorded violations.
func (v *Violations) List() []FieldViolation { return v.list }

// Err returns an InvalidArgument error naming every violation, or nil.
func (v *Violations) Err() error {
	if len(v.list) == 0 {
		return nil
	}
	return InvalidArgument(v.list...)
}

// InvalidArgument returns an InvalidArgument error with BadRequest field
// violations and an ErrorInfo whose metadata names the first field.
func InvalidArgument(violations ...FieldViolation) error {
	parts := make([]string, 0, len(violations))
	br := &errdetails.BadRequest{}
	for _, fv := range violations {
		parts = append(parts, fv.Field+": "+fv.Description)
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field:       fv.Field,
			Description: fv.Description,
		})
	}
	meta := map[string]string{}
	if len(violations) > 0 {
		meta["field"] = violations[0].Field
	}
	st := status.New(codes.InvalidArgument, "invalid request: "+strings.Join(parts, "; "))
	withDetails, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   eventv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT.String(),
		Domain:   Domain,
		Metadata: meta,
	}, br)
	if err != nil {
		return st.Err()
	}
	return withDetails.Err()
}

// TooLarge reports that field holds more than limit items.
func TooLarge(field string, got, limit int) error {
	return New(codes.InvalidArgument, eventv1.ErrorReason_ERROR_REASON_TOO_LARGE,
		fmt.Sprintf("%s: %d items exceed the limit of %d", field, got, limit),
		map[string]string{"field": field, "limit": fmt.Sprint(limit)})
}

// NotFound reports that the named record does not exist.
func NotFound(kind, id string) error {
	return New(codes.NotFound, eventv1.ErrorReason_ERROR_REASON_NOT_FOUND,
		fmt.Sprintf("%s %q not found", kind, id), map[string]string{"kind": kind})
}

// StoreUnavailable reports that the store failed; the cause is not exposed.
func StoreUnavailable() error {
	return New(codes.Unavailable, eventv1.ErrorReason_ERROR_REASON_STORE_UNAVAILABLE,
		"the store is unavailable; retry later", nil)
}

// PeerUnavailable reports that a peer service did not answer.
func PeerUnavailable(peer string) error {
	return New(codes.Unavailable, eventv1.ErrorReason_ERROR_REASON_PEER_UNAVAILABLE,
		peer+" is unavailable; retry later", map[string]string{"peer": peer})
}

// Unauthenticated reports missing or wrong credentials.
func Unauthenticated(msg string) error {
	return New(codes.Unauthenticated, eventv1.ErrorReason_ERROR_REASON_UNAUTHENTICATED, msg, nil)
}

// PermissionDenied reports valid credentials that do not permit the call.
func PermissionDenied(msg string) error {
	return New(codes.PermissionDenied, eventv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED, msg, nil)
}

// AttemptReused reports that an attempt id was already decided for a
// different request.
func AttemptReused(field, id string) error {
	return New(codes.AlreadyExists, eventv1.ErrorReason_ERROR_REASON_ATTEMPT_REUSED,
		fmt.Sprintf("%s: attempt %q was already decided for a different request (application, factor, session or client); use a new attempt id", field, id),
		map[string]string{"field": field})
}

// Internal reports an unexpected failure without exposing its cause.
func Internal() error {
	return New(codes.Internal, eventv1.ErrorReason_ERROR_REASON_INTERNAL, "internal error", nil)
}

// Reason extracts the ErrorInfo reason of err, or "" when it has none.
func Reason(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// Fields extracts the field names of BadRequest violations in err.
func Fields(err error) []string {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	var out []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, fv := range br.GetFieldViolations() {
				out = append(out, fv.GetField())
			}
		}
	}
	return out
}

// IsStatus reports whether err already is a gRPC status error.
func IsStatus(err error) bool {
	var se interface{ GRPCStatus() *status.Status }
	return errors.As(err, &se)
}
