package decision

import (
	"context"
	"net/http"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	"github.com/pushbackhq/pushback/pkg/httpapi"
	"google.golang.org/grpc"
)

// Decider is the part of the decision client the HTTP endpoint calls.
type Decider interface {
	Decide(ctx context.Context, in *decisionv1.DecideRequest, opts ...grpc.CallOption) (*decisionv1.DecideResponse, error)
}

// HTTPHandler serves POST /v1/decide with the same JSON as the RPC. It calls
// the decision service through its gRPC client, so interceptors, deadlines
// and errors are those of the RPC.
func HTTPHandler(d Decider) http.Handler {
	return httpapi.Unary(func() *decisionv1.DecideRequest { return &decisionv1.DecideRequest{} },
		func(ctx context.Context, req *decisionv1.DecideRequest) (*decisionv1.DecideResponse, error) {
			return d.Decide(ctx, req)
		})
}
