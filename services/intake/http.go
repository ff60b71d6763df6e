package intake

import (
	"context"
	"net/http"

	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	"github.com/pushbackhq/pushback/pkg/httpapi"
	"google.golang.org/grpc"
)

// Ingester is the part of the intake client the HTTP endpoints call.
type Ingester interface {
	Ingest(ctx context.Context, in *intakev1.IngestRequest, opts ...grpc.CallOption) (*intakev1.IngestResponse, error)
}

// NativeHandler serves POST /v1/ingest: {"events":[AuthEvent...]}.
func NativeHandler(in Ingester) http.Handler {
	return httpapi.Unary(func() *intakev1.IngestRequest { return &intakev1.IngestRequest{} },
		func(ctx context.Context, req *intakev1.IngestRequest) (*intakev1.IngestResponse, error) {
			return in.Ingest(ctx, req)
		})
}
