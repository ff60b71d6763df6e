package mesh_test

import (
	"context"
	"testing"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	"github.com/pushbackhq/pushback/services/mesh"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestContractRulesRunAfterTheGuard: a caller without credentials that
// breaks the contract's rules learns that it is not authenticated, and
// nothing about its request, on unary calls and on streams.
func TestContractRulesRunAfterTheGuard(t *testing.T) {
	cfg := mesh.Default()
	cfg.Auth.HookTokens = []string{"hook-token-0123456789abcdef"}
	cfg.Auth.IntakeToken = "intake-token-0123456789abcdef"
	m := start(t, cfg)
	ctx := context.Background()
	_, err := decisionv1.NewDecisionServiceClient(m.conn).Decide(ctx, &decisionv1.DecideRequest{Client: &eventv1.Client{Ip: "300.1.2.3"}})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Decide without credentials: %v, want Unauthenticated", err)
	}
	s, err := intakev1.NewIntakeServiceClient(m.conn).IngestStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Send(&intakev1.IngestStreamRequest{Events: []*eventv1.AuthEvent{{EventId: "e\n"}}})
	if _, err := s.CloseAndRecv(); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("IngestStream without credentials: %v, want Unauthenticated", err)
	}
}
