package apierr_test

import (
	"errors"
	"testing"

	"github.com/pushbackhq/pushback/pkg/apierr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestErrorsCarryCodeReasonAndFields(t *testing.T) {
	var v apierr.Violations
	if v.Err() != nil {
		t.Fatal("no violations must be no error")
	}
	v.Add("user_id", "is required")
	v.Add("client.ip", "%q is not an address", "1.2.3")
	cases := []struct {
		name   string
		err    error
		code   codes.Code
		reason string
		fields []string
	}{
		{"violations", v.Err(), codes.InvalidArgument, "ERROR_REASON_INVALID_ARGUMENT", []string{"user_id", "client.ip"}},
		{"too large", apierr.TooLarge("events", 1001, 1000), codes.InvalidArgument, "ERROR_REASON_TOO_LARGE", nil},
		{"not found", apierr.NotFound("decision", "x"), codes.NotFound, "ERROR_REASON_NOT_FOUND", nil},
		{"store", apierr.StoreUnavailable(), codes.Unavailable, "ERROR_REASON_STORE_UNAVAILABLE", nil},
		{"peer", apierr.PeerUnavailable("scoring"), codes.Unavailable, "ERROR_REASON_PEER_UNAVAILABLE", nil},
		{"auth", apierr.Unauthenticated("no token"), codes.Unauthenticated, "ERROR_REASON_UNAUTHENTICATED", nil},
		{"permission", apierr.PermissionDenied("not for hooks"), codes.PermissionDenied, "ERROR_REASON_PERMISSION_DENIED", nil},
		{"internal", apierr.Internal(), codes.Internal, "ERROR_REASON_INTERNAL", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := status.Code(tc.err); got != tc.code {
				t.Errorf("code = %v, want %v", got, tc.code)
			}
			if got := apierr.Reason(tc.err); got != tc.reason {
				t.Errorf("reason = %q, want %q", got, tc.reason)
			}
			if got := apierr.Fields(tc.err); len(got) != len(tc.fields) || (len(got) > 0 && got[0] != tc.fields[0]) {
				t.Errorf("fields = %v, want %v", got, tc.fields)
			}
			if !apierr.IsStatus(tc.err) {
				t.Error("not a status error")
			}
		})
	}
	if apierr.Reason(errors.New("plain")) != "" || apierr.IsStatus(errors.New("plain")) {
		t.Error("a plain error has no reason and is not a status")
	}
	if st, _ := status.FromError(apierr.Internal()); st.Message() != "internal error" {
		t.Errorf("internal error leaks %q", st.Message())
	}
}
