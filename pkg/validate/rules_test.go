package validate_test

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/validate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The contracts' rules answer what the hand-written validators answered:
// InvalidArgument naming the field path, TOO_LARGE for an oversized batch.
func TestContractRules(t *testing.T) {
	at := timestamppb.New(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	decide := func(mutate func(r *decisionv1.DecideRequest)) proto.Message {
		r := &decisionv1.DecideRequest{UserId: "alice", AttemptId: "a1", Time: at, Factor: eventv1.Factor_FACTOR_PUSH,
			Client: &eventv1.Client{Ip: "192.0.2.1", Geo: &eventv1.Geo{Latitude: 52.1, Longitude: 4.3}}, Groups: []string{"admins"}}
		mutate(r)
		return r
	}
	event := func(id string) *eventv1.AuthEvent {
		return &eventv1.AuthEvent{EventId: id, UserId: "alice", Type: eventv1.EventType_EVENT_TYPE_PUSH_SENT, Time: at}
	}
	batch := make([]*eventv1.AuthEvent, 1001)
	for i := range batch {
		batch[i] = event("e")
	}
	cases := []struct {
		name   string
		msg    proto.Message
		fields []string
		reason string
	}{
		{"valid decide", decide(func(*decisionv1.DecideRequest) {}), nil, ""},
		{"non-ASCII ids", decide(func(r *decisionv1.DecideRequest) { r.UserId, r.Groups = "zoë@example.com", []string{"équipe"} }), nil, ""},
		{"no user", decide(func(r *decisionv1.DecideRequest) { r.UserId = "" }), []string{"user_id"}, ""},
		{"long user", decide(func(r *decisionv1.DecideRequest) { r.UserId = strings.Repeat("u", 257) }), []string{"user_id"}, ""},
		{"escape sequence", decide(func(r *decisionv1.DecideRequest) { r.AttemptId = "a\x1b[2J" }), []string{"attempt_id"}, ""},
		{"C1 control", decide(func(r *decisionv1.DecideRequest) { r.SessionId = "s\u0085" }), []string{"session_id"}, ""},
		{"bidi override", decide(func(r *decisionv1.DecideRequest) { r.Tenant = "acme\u202e" }), []string{"tenant"}, ""},
		{"unknown factor", decide(func(r *decisionv1.DecideRequest) { r.Factor = 99 }), []string{"factor"}, ""},
		{"ancient time", decide(func(r *decisionv1.DecideRequest) {
			r.Time = timestamppb.New(time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC))
		}), []string{"time"}, ""},
		{"far future", decide(func(r *decisionv1.DecideRequest) {
			r.Time = timestamppb.New(time.Date(2201, 1, 1, 0, 0, 0, 0, time.UTC))
		}), []string{"time"}, ""},
		{"bad ip", decide(func(r *decisionv1.DecideRequest) { r.Client.Ip = "300.1.2.3" }), []string{"client.ip"}, ""},
		{"ip with a zone", decide(func(r *decisionv1.DecideRequest) { r.Client.Ip = "fe80::1%eth0" }), []string{"client.ip"}, ""},
		{"ipv6", decide(func(r *decisionv1.DecideRequest) { r.Client.Ip = "2001:db8::1" }), nil, ""},
		{"latitude", decide(func(r *decisionv1.DecideRequest) { r.Client.Geo.Latitude = -91 }), []string{"client.geo.latitude"}, ""},
		{"longitude NaN", decide(func(r *decisionv1.DecideRequest) { r.Client.Geo.Longitude = math.NaN() }), []string{"client.geo.longitude"}, ""},
		{"accuracy", decide(func(r *decisionv1.DecideRequest) { r.Client.Geo.AccuracyKm = -1 }), []string{"client.geo.accuracy_km"}, ""},
		{"anonymizer", decide(func(r *decisionv1.DecideRequest) { r.Client.Anonymizer = "Proxy" }), []string{"client.anonymizer"}, ""},
		{"device id", decide(func(r *decisionv1.DecideRequest) { r.Client.DeviceId = "d\n" }), []string{"client.device_id"}, ""},
		{"empty group", decide(func(r *decisionv1.DecideRequest) { r.Groups = []string{"a", "b", "c", ""} }), []string{"groups[3]"}, ""},
		{"too many groups", decide(func(r *decisionv1.DecideRequest) { r.Groups = slices.Repeat([]string{"g"}, 65) }), []string{"groups"}, ""},
		{"no attempt", &scoringv1.AssessRequest{}, []string{"attempt"}, ""},
		{"attempt without user", &scoringv1.AssessRequest{Attempt: &scoringv1.Attempt{}}, []string{"attempt.user_id"}, ""},
		{"event fields", &intakev1.IngestRequest{Events: []*eventv1.AuthEvent{event("e1"), {EventId: "e2", UserId: "bob", Time: at}}},
			[]string{"events[1].type"}, ""},
		{"oversized batch", &intakev1.IngestRequest{Events: batch}, nil, "ERROR_REASON_TOO_LARGE"},
		{"oversized observe", &scoringv1.ObserveRequest{Events: batch}, nil, "ERROR_REASON_TOO_LARGE"},
		{"page size", &decisionv1.ListDecisionsRequest{UserId: "a", PageSize: 501}, []string{"page_size"}, ""},
		{"max wait", &scoringv1.ListRiskChangesRequest{MaxWait: durationpb.New(time.Minute)}, []string{"max_wait"}, ""},
		{"min score", &scoringv1.WatchRiskRequest{MinScore: 101}, []string{"min_score"}, ""},
		{"notify kind", &notifyv1.NotifyRequest{IdempotencyKey: "k"}, []string{"kind"}, ""},
		{"number challenge", &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_PUSH, IdempotencyKey: "k", NumberChallenge: "12a"},
			[]string{"number_challenge"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := validate.Check(tc.msg)
			if tc.fields == nil && tc.reason == "" {
				if err != nil {
					t.Fatalf("valid request refused: %v", err)
				}
				return
			}
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("code = %v (%v), want InvalidArgument", status.Code(err), err)
			}
			if tc.reason != "" && apierr.Reason(err) != tc.reason {
				t.Fatalf("reason = %s (%v), want %s", apierr.Reason(err), err, tc.reason)
			}
			if got := apierr.Fields(err); !slices.Equal(got, tc.fields) {
				t.Fatalf("fields = %v (%v), want %v", got, err, tc.fields)
			}
		})
	}
}

// The interceptor refuses a bad request before its handler runs, and the
// handler's own check passes the message the interceptor checked without
// checking it again, but checks any other.
func TestInterceptor(t *testing.T) {
	intercept := validate.UnaryServerInterceptor(nil)
	var ran bool
	handler := func(ctx context.Context, req any) (any, error) {
		ran = true
		if err := validate.Request(ctx, req.(proto.Message)); err != nil {
			t.Errorf("checked request refused again: %v", err)
		}
		if validate.Request(ctx, &decisionv1.DecideRequest{}) == nil {
			t.Error("a message the interceptor did not check passes unchecked")
		}
		return nil, nil
	}
	if _, err := intercept(context.Background(), &decisionv1.DecideRequest{}, &grpc.UnaryServerInfo{}, handler); ran ||
		!slices.Equal(apierr.Fields(err), []string{"user_id"}) {
		t.Fatalf("bad request: ran %v, err %v", ran, err)
	}
	if _, err := intercept(context.Background(), &decisionv1.DecideRequest{UserId: "alice"}, &grpc.UnaryServerInfo{}, handler); !ran || err != nil {
		t.Fatalf("good request: ran %v, err %v", ran, err)
	}
	if err := validate.Request(context.Background(), &decisionv1.DecideRequest{}); !slices.Equal(apierr.Fields(err), []string{"user_id"}) {
		t.Fatalf("a handler called without the interceptor: %v", err)
	}
	ran = false
	self := &grpc.UnaryServerInfo{Server: selfChecked{}, FullMethod: "/pushback.intake.v1.IntakeService/Ingest"}
	if _, err := intercept(context.Background(), &intakev1.IngestRequest{Events: []*eventv1.AuthEvent{{}}}, self,
		func(context.Context, any) (any, error) { ran = true; return nil, nil }); !ran || err != nil {
		t.Fatalf("a method its service checks itself: ran %v, err %v", ran, err)
	}
}

// selfChecked checks every method's requests itself.
type selfChecked struct{}

func (selfChecked) ChecksItself(string) bool { return true }

// The contracts' identifier rule refuses exactly the characters ID
// refuses, so the hand check kept for what bypasses the contracts (the
// formats' events) and the rule cannot drift apart.
func TestIDRuleMatchesID(t *testing.T) {
	for r := rune(0); r < 0x3000; r++ {
		id := "a" + string(r)
		var v apierr.Violations
		validate.ID(&v, "decision_id", id, true)
		err := validate.Check(&decisionv1.GetDecisionRequest{DecisionId: id})
		if (v.Len() > 0) != (err != nil) {
			t.Errorf("%U: ID says %v, the contract says %v", r, v.List(), err)
		}
	}
}
