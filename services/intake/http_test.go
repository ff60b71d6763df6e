package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	"github.com/pushbackhq/pushback/pkg/httpapi"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
	"google.golang.org/grpc"
)

// direct calls the service as the in-process gRPC client would.
type direct struct{ s *Service }

func (d direct) Ingest(ctx context.Context, in *intakev1.IngestRequest, _ ...grpc.CallOption) (*intakev1.IngestResponse, error) {
	return d.s.Ingest(ctx, in)
}

// flaky fails every write while down is set.
type flaky struct {
	store.Store
	down bool
}

func (f *flaky) Update(ctx context.Context, fn func(tx store.Txn) error) error {
	if f.down {
		return errors.New("disk full")
	}
	return f.Store.Update(ctx, fn)
}

func newTestService(t *testing.T) (*Service, *flaky) {
	t.Helper()
	fs := &flaky{Store: storetest.Memory(t, Keyspaces()...)}
	s, err := New(Options{Store: fs})
	if err != nil {
		t.Fatal(err)
	}
	return s, fs
}

func fixture(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("formats", "testdata", path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func do(t *testing.T, h http.Handler, method, target string, body []byte, header map[string]string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec, out
}

func TestAdapterOktaVerification(t *testing.T) {
	s, _ := newTestService(t)
	h := AdapterHandler(direct{s}, AdapterOptions{Token: "s3cret"})
	tests := []struct {
		name   string
		header map[string]string
		code   int
		want   string
	}{
		{"echoes the challenge", map[string]string{"Authorization": "s3cret", "X-Okta-Verification-Challenge": "abc123"}, 200, `{"verification":"abc123"}`},
		{"bearer form", map[string]string{"Authorization": "Bearer s3cret", "X-Okta-Verification-Challenge": "xyz"}, 200, `{"verification":"xyz"}`},
		{"missing challenge", map[string]string{"Authorization": "s3cret"}, 400, "x-okta-verification-challenge"},
		{"wrong secret", map[string]string{"Authorization": "nope", "X-Okta-Verification-Challenge": "abc"}, 401, "ERROR_REASON_UNAUTHENTICATED"},
		{"no secret", map[string]string{"X-Okta-Verification-Challenge": "abc"}, 401, "ERROR_REASON_UNAUTHENTICATED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, _ := do(t, h, http.MethodGet, "/v1/ingest/okta", nil, tt.header)
			if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.want) {
				t.Fatalf("got %d %s, want %d containing %s", rec.Code, rec.Body.String(), tt.code, tt.want)
			}
		})
	}
}

func TestAdapterFormats(t *testing.T) {
	tests := []struct {
		path, fixture                 string
		accepted, duplicates, skipped int
	}{
		{"/v1/ingest/okta", "okta/event_hook.json", 11, 0, 1},
		{"/v1/ingest/okta", "okta/panther_okta_login_signal.ndjson", 1, 1, 1},
		{"/v1/ingest/entra", "entra/event_hub_records.json", 12, 0, 2},
		{"/v1/ingest/duo", "duo/authlogs_v2_response.json", 13, 0, 1},
		{"/v1/ingest/auth0", "auth0/log_stream_batch.json", 7, 0, 1},
		{"/v1/ingest/auth0", "auth0/panther_auth0_push_notification_fatigue.ndjson", 1, 0, 1},
		{"/v1/ingest/pingid", "pingid/webhooks.ndjson", 7, 0, 1},
		{"/v1/ingest/ocsf?tenant=acme", "ocsf/authentication_3002.ndjson", 8, 0, 2},
		{"/v1/ingest/native", "native/ingest_request.json", 3, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			s, _ := newTestService(t)
			h := AdapterHandler(direct{s}, AdapterOptions{})
			body := fixture(t, tt.fixture)
			rec, out := do(t, h, http.MethodPost, tt.path, body, nil)
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
			}
			// Panther's samples reuse one uuid for two logins: the second is a duplicate.
			if out["accepted"] != float64(tt.accepted) || out["duplicates"] != float64(tt.duplicates) || out["skipped"] != float64(tt.skipped) {
				t.Fatalf("got %s, want accepted %d duplicates %d skipped %d", rec.Body.String(), tt.accepted, tt.duplicates, tt.skipped)
			}
			// The IdP retries the delivery: nothing is stored twice.
			rec, out = do(t, h, http.MethodPost, tt.path, body, nil)
			if rec.Code != 200 || out["accepted"] != float64(0) || out["duplicates"] != float64(tt.accepted+tt.duplicates) {
				t.Fatalf("redelivery: %d %s", rec.Code, rec.Body.String())
			}
		})
	}
}

func TestAdapterErrors(t *testing.T) {
	var many strings.Builder
	many.WriteString(`{"events":[`)
	for i := range MaxBatch + 1 {
		if i > 0 {
			many.WriteByte(',')
		}
		fmt.Fprintf(&many, `{"eventId":"e%d","userId":"u","type":"EVENT_TYPE_PUSH_SENT","time":"2024-01-01T00:00:00Z"}`, i)
	}
	many.WriteString(`]}`)
	tests := []struct {
		name, method, path string
		body               []byte
		down               bool
		code               int
		want               []string
	}{
		{"malformed record names the record and field", "POST", "/v1/ingest/okta", fixture(t, "okta/malformed_records.ndjson"), false, 400,
			[]string{`"field":"[0].published"`, `"field":"[1].actor.alternateId"`, "ERROR_REASON_INVALID_ARGUMENT"}},
		{"broken JSON", "POST", "/v1/ingest/entra", []byte(`{"records":[{"time":`), false, 400, []string{`"field":"body"`, "malformed JSON"}},
		{"wrong shape", "POST", "/v1/ingest/duo", []byte(`{"response":{"authlogs":"nope"}}`), false, 400, []string{`"field":"[0].response"`}},
		{"too many events", "POST", "/v1/ingest/native", []byte(many.String()), false, 400, []string{"ERROR_REASON_TOO_LARGE", "1001"}},
		{"body too large", "POST", "/v1/ingest/okta", bytes.Repeat([]byte(" "), httpapi.MaxBodyBytes+1), false, 413, []string{"ERROR_REASON_TOO_LARGE"}},
		{"bad tenant", "POST", "/v1/ingest/okta?tenant=" + strings.Repeat("t", 300), []byte(`[]`), false, 400, []string{`"field":"tenant"`}},
		{"unknown format", "POST", "/v1/ingest/onelogin", []byte(`[]`), false, 404, []string{"ERROR_REASON_NOT_FOUND"}},
		{"GET on a POST adapter", "GET", "/v1/ingest/duo", nil, false, 405, []string{"METHOD_NOT_ALLOWED"}},
		{"store down", "POST", "/v1/ingest/okta", fixture(t, "okta/event_hook.json"), true, 503, []string{"ERROR_REASON_STORE_UNAVAILABLE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, fs := newTestService(t)
			fs.down = tt.down
			h := AdapterHandler(direct{s}, AdapterOptions{})
			rec, _ := do(t, h, tt.method, tt.path, tt.body, nil)
			if rec.Code != tt.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.code, rec.Body.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(rec.Body.String(), w) {
					t.Errorf("body %s lacks %s", rec.Body.String(), w)
				}
			}
			if tt.code == 503 && rec.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

// TestNativeEndpointRequiresTheIntakeToken: POST /v1/ingest is guarded by
// the same token as the adapters, and stores nothing without it.
func TestNativeEndpointRequiresTheIntakeToken(t *testing.T) {
	body := []byte(`{"events":[{"eventId":"n1","userId":"u","type":"EVENT_TYPE_LOGIN_SUCCEEDED","time":"2024-01-01T00:00:00Z"}]}`)
	tests := []struct {
		name   string
		header map[string]string
		code   int
	}{
		{"no header", nil, 401},
		{"wrong token", map[string]string{"Authorization": "Bearer nope"}, 401},
		{"bearer token", map[string]string{"Authorization": "Bearer s3cret"}, 200},
		{"bare token", map[string]string{"Authorization": "s3cret"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestService(t)
			rec, _ := do(t, NativeHandler(direct{s}, "s3cret"), "POST", "/v1/ingest", body, tt.header)
			if rec.Code != tt.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.code, rec.Body.String())
			}
			resp, err := s.ListEvents(context.Background(), &intakev1.ListEventsRequest{UserId: "u"})
			if err != nil {
				t.Fatal(err)
			}
			if stored := len(resp.GetEvents()) == 1; stored != (tt.code == 200) {
				t.Fatalf("stored %v after status %d", stored, rec.Code)
			}
		})
	}
}

// TestAdapterAllOrNothing shows a batch with one bad record stores nothing.
func TestAdapterAllOrNothing(t *testing.T) {
	s, _ := newTestService(t)
	h := AdapterHandler(direct{s}, AdapterOptions{})
	if rec, _ := do(t, h, "POST", "/v1/ingest/okta", fixture(t, "okta/malformed_records.ndjson"), nil); rec.Code != 400 {
		t.Fatalf("status %d", rec.Code)
	}
	resp, err := s.ListEvents(context.Background(), &intakev1.ListEventsRequest{UserId: "ada@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetEvents()); n != 0 {
		t.Fatalf("%d events stored from a rejected batch", n)
	}
}

func TestListEventsTenant(t *testing.T) {
	s, _ := newTestService(t)
	h := AdapterHandler(direct{s}, AdapterOptions{})
	if rec, _ := do(t, h, "POST", "/v1/ingest/ocsf?tenant=acme", fixture(t, "ocsf/authentication_3002.ndjson"), nil); rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	for tenant, want := range map[string]int{"acme": 8, "": 0} {
		resp, err := s.ListEvents(context.Background(), &intakev1.ListEventsRequest{Tenant: tenant, UserId: "alan@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(resp.GetEvents()); got != want {
			t.Errorf("tenant %q: %d events, want %d", tenant, got, want)
		}
	}
}
