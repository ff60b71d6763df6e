package mesh_test

import (
	"context"
	"slices"
	"testing"

	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/services/mesh"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// rawCodec sends wire bytes as they are: what no generated client sends.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

func wireString(num protowire.Number, s string) []byte {
	return protowire.AppendString(protowire.AppendTag(nil, num, protowire.BytesType), s)
}

func wireMessage(num protowire.Number, fields ...[]byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), slices.Concat(fields...))
}

// TestInvalidUTF8OverGRPCIsInvalidArgument: a raw gRPC message whose user
// id is not UTF-8 is the caller's error: InvalidArgument naming the field
// (grpc-go's own answer is Internal), on Decide, Ingest and IngestStream.
func TestInvalidUTF8OverGRPCIsInvalidArgument(t *testing.T) {
	m := start(t, mesh.Default())
	ctx := context.Background()
	raw := grpc.ForceCodecV2(rawCodec{})
	// AuthEvent: event_id 1, user_id 3, type 4 (PUSH_SENT), time 5.
	event := wireMessage(1, wireString(1, "e-1"), wireString(3, "bob\xff"),
		protowire.AppendVarint(protowire.AppendTag(nil, 4, protowire.VarintType), 1),
		wireMessage(5, protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 1_800_000_000)))
	decide := slices.Concat(wireString(1, "bob\xff"), wireString(2, "vpn"))
	check := func(what string, err error, field string) {
		t.Helper()
		if status.Code(err) != codes.InvalidArgument || apierr.Reason(err) != "ERROR_REASON_INVALID_ARGUMENT" ||
			!slices.Equal(apierr.Fields(err), []string{field}) {
			t.Fatalf("%s: %v (fields %v), want InvalidArgument naming %s", what, err, apierr.Fields(err), field)
		}
	}
	var out []byte
	check("Decide", m.conn.Invoke(ctx, "/pushback.decision.v1.DecisionService/Decide", &decide, &out, raw), "user_id")
	check("Ingest", m.conn.Invoke(ctx, "/pushback.intake.v1.IntakeService/Ingest", &event, &out, raw), "events[0].user_id")

	s, err := m.conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, "/pushback.intake.v1.IntakeService/IngestStream", raw)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.SendMsg(&event)
	_ = s.CloseSend()
	check("IngestStream", s.RecvMsg(&out), "events[0].user_id")

	// Nothing was stored.
	list, err := intakev1.NewIntakeServiceClient(m.conn).ListEvents(ctx, &intakev1.ListEventsRequest{UserId: "bob"})
	if err != nil || len(list.GetEvents()) != 0 {
		t.Fatalf("ListEvents = %v, %v; want nothing stored", list.GetEvents(), err)
	}
}

// TestUndecodableRequestWithoutCredentialsIsUnauthenticated: the refusal
// comes after authentication, so a caller without credentials learns
// nothing about what it sent.
func TestUndecodableRequestWithoutCredentialsIsUnauthenticated(t *testing.T) {
	cfg := mesh.Default()
	cfg.Auth.HookTokens = []string{"hook-token-0123456789abcdef"}
	m := start(t, cfg)
	decide := slices.Concat(wireString(1, "bob\xff"), wireString(2, "vpn"))
	var out []byte
	err := m.conn.Invoke(context.Background(), "/pushback.decision.v1.DecisionService/Decide", &decide, &out, grpc.ForceCodecV2(rawCodec{}))
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Decide without credentials: %v, want Unauthenticated", err)
	}
}
