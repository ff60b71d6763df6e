package intake

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"

	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/httpapi"
	"github.com/pushbackhq/pushback/pkg/validate"
	"github.com/pushbackhq/pushback/services/intake/formats"
	"google.golang.org/grpc"
)

// Ingester is the part of the intake client the HTTP endpoints call.
type Ingester interface {
	Ingest(ctx context.Context, in *intakev1.IngestRequest, opts ...grpc.CallOption) (*intakev1.IngestResponse, error)
}

// NativeHandler serves POST /v1/ingest: {"events":[AuthEvent...]}. With
// token set, a request must carry it as the adapters' do.
func NativeHandler(in Ingester, token string) http.Handler {
	h := httpapi.Unary(func() *intakev1.IngestRequest { return &intakev1.IngestRequest{} },
		func(ctx context.Context, req *intakev1.IngestRequest) (*intakev1.IngestResponse, error) {
			return in.Ingest(ctx, req)
		})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r, token) {
			httpapi.WriteError(w, apierr.Unauthenticated("missing or wrong Authorization header"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// AdapterPrefix is where the IdP adapters are served: POST
// /v1/ingest/{format} for every format of package formats, and GET
// /v1/ingest/okta for the Okta Event Hook verification.
const AdapterPrefix = "/v1/ingest/"

// AdapterOptions configures the IdP adapters.
type AdapterOptions struct {
	// Token, when set, must be presented in the Authorization header of
	// every adapter request, bare (as an Okta Event Hook's configured
	// header sends it) or as "Bearer <token>".
	Token  string
	Logger *slog.Logger
}

// AdapterResponse is the JSON answer to an adapter POST.
type AdapterResponse struct {
	// Accepted events were stored for the first time.
	Accepted int `json:"accepted"`
	// Duplicates were already stored (a re-delivery) and skipped.
	Duplicates int `json:"duplicates"`
	// Skipped records had an event type that carries no authentication
	// signal; SkippedTypes counts them by source type.
	Skipped      int            `json:"skipped"`
	SkippedTypes map[string]int `json:"skippedTypes,omitempty"`
}

// AdapterHandler serves the IdP adapters. Each POST body is parsed in the
// path's format and stored as one all-or-nothing batch: a record that
// cannot be mapped fails the request with 400 naming it; records of
// unknown event types are counted and skipped; a store failure answers 503
// with Retry-After, and the IdP's retry is de-duplicated by event id.
func AdapterHandler(in Ingester, opts AdapterOptions) http.Handler {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.Trim(strings.TrimPrefix(r.URL.Path, AdapterPrefix), "/")
		f, err := formats.ParseFormat(name)
		if err != nil || name == "" {
			httpapi.WriteJSON(w, http.StatusNotFound, httpapi.ErrorBody{Error: httpapi.ErrorDetail{
				Code: "NOT_FOUND", Reason: "ERROR_REASON_NOT_FOUND", Message: "no adapter at " + r.URL.Path + "; use /v1/ingest/{okta,entra,duo,auth0,pingid,ocsf,native}"}})
			return
		}
		if !authorized(r, opts.Token) {
			httpapi.WriteError(w, apierr.Unauthenticated("missing or wrong Authorization header"))
			return
		}
		switch {
		case r.Method == http.MethodGet && f == formats.Okta:
			oktaVerify(w, r)
			return
		case r.Method != http.MethodPost:
			allow := http.MethodPost
			if f == formats.Okta {
				allow = "GET, POST"
			}
			w.Header().Set("Allow", allow)
			httpapi.WriteJSON(w, http.StatusMethodNotAllowed, httpapi.ErrorBody{Error: httpapi.ErrorDetail{Code: "METHOD_NOT_ALLOWED", Message: "use POST"}})
			return
		}
		tenant := r.URL.Query().Get("tenant")
		var v apierr.Violations
		validate.ID(&v, "tenant", tenant, false)
		if err := v.Err(); err != nil {
			httpapi.WriteError(w, err)
			return
		}
		body, ok := httpapi.ReadBody(w, r)
		if !ok {
			return
		}
		batch, err := formats.Parse(f, body, formats.Options{Tenant: tenant})
		if err != nil {
			httpapi.WriteError(w, err)
			return
		}
		if len(batch.Events) > MaxBatch {
			httpapi.WriteError(w, apierr.TooLarge("events", len(batch.Events), MaxBatch))
			return
		}
		resp := AdapterResponse{Skipped: batch.SkippedTotal(), SkippedTypes: batch.Skipped}
		if len(batch.Events) > 0 {
			out, err := in.Ingest(r.Context(), &intakev1.IngestRequest{Events: batch.Events})
			if err != nil {
				httpapi.WriteError(w, err)
				return
			}
			resp.Accepted, resp.Duplicates = int(out.GetAccepted()), int(out.GetDuplicates())
		}
		if resp.Skipped > 0 {
			log.InfoContext(r.Context(), "skipped records of unmapped event types", slog.String("format", string(f)), slog.Int("skipped", resp.Skipped), slog.Any("types", batch.Skipped))
		}
		httpapi.WriteJSON(w, http.StatusOK, resp)
	})
}

// oktaVerify answers Okta's one-time Event Hook verification request by
// echoing the challenge header.
func oktaVerify(w http.ResponseWriter, r *http.Request) {
	challenge := r.Header.Get("X-Okta-Verification-Challenge")
	if challenge == "" {
		httpapi.BadRequest(w, "x-okta-verification-challenge", "the verification challenge header is missing")
		return
	}
	if len(challenge) > 1024 {
		httpapi.BadRequest(w, "x-okta-verification-challenge", "the verification challenge is longer than 1024 bytes")
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"verification": challenge})
}

// authorized checks the token as the mesh's guard does for gRPC ingest
// (auth.BearerToken), so both transports take the same header.
func authorized(r *http.Request, token string) bool {
	if token == "" {
		return true
	}
	got := auth.BearerToken(r.Header.Get("Authorization"))
	return subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}
