package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/httpapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestCodeNameAndStatus(t *testing.T) {
	cases := map[codes.Code]struct {
		name string
		http int
	}{
		codes.InvalidArgument:  {"INVALID_ARGUMENT", 400},
		codes.Unauthenticated:  {"UNAUTHENTICATED", 401},
		codes.NotFound:         {"NOT_FOUND", 404},
		codes.Unavailable:      {"UNAVAILABLE", 503},
		codes.DeadlineExceeded: {"DEADLINE_EXCEEDED", 504},
		codes.Internal:         {"INTERNAL", 500},
		codes.OK:               {"OK", 200},
	}
	for c, want := range cases {
		if got := httpapi.CodeName(c); got != want.name {
			t.Errorf("CodeName(%v) = %q, want %q", c, got, want.name)
		}
		if got := httpapi.HTTPStatus(c); got != want.http {
			t.Errorf("HTTPStatus(%v) = %d, want %d", c, got, want.http)
		}
	}
}

func TestUnary(t *testing.T) {
	h := httpapi.Unary(func() *structpb.Struct { return &structpb.Struct{} },
		func(_ context.Context, in *structpb.Struct) (*structpb.Struct, error) {
			if _, ok := in.GetFields()["bad"]; ok {
				return nil, apierr.InvalidArgument(apierr.FieldViolation{Field: "bad", Description: "is not allowed"})
			}
			if _, ok := in.GetFields()["down"]; ok {
				return nil, apierr.StoreUnavailable()
			}
			return in, nil
		})
	cases := []struct {
		name, method, body string
		code               int
		errCode, field     string
	}{
		{"echo", "POST", `{"a":1}`, 200, "", ""},
		{"get", "GET", ``, 405, "METHOD_NOT_ALLOWED", ""},
		{"malformed", "POST", `{"a":`, 400, "INVALID_ARGUMENT", ""},
		{"violation", "POST", `{"bad":1}`, 400, "INVALID_ARGUMENT", "bad"},
		{"unavailable", "POST", `{"down":1}`, 503, "UNAVAILABLE", ""},
		{"too large", "POST", `{"a":"` + strings.Repeat("x", httpapi.MaxBodyBytes) + `"}`, 413, "INVALID_ARGUMENT", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, "/x", strings.NewReader(tc.body)))
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("content type %q", ct)
			}
			if tc.errCode == "" {
				return
			}
			var body httpapi.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if body.Error.Code != tc.errCode {
				t.Fatalf("error code %q, want %q", body.Error.Code, tc.errCode)
			}
			if tc.field != "" && (len(body.Error.FieldViolations) == 0 || body.Error.FieldViolations[0].Field != tc.field) {
				t.Fatalf("field violations %v do not name %s", body.Error.FieldViolations, tc.field)
			}
			if tc.code == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
		})
	}
}
