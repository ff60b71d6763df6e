package validate_test

import (
	"math"
	"strings"
	"testing"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/validate"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestEvent(t *testing.T) {
	at := timestamppb.New(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	good := func() *eventv1.AuthEvent {
		return &eventv1.AuthEvent{EventId: "e1", UserId: "alice", Type: eventv1.EventType_EVENT_TYPE_PUSH_SENT, Time: at,
			Client: &eventv1.Client{Ip: "2001:db8::1", Geo: &eventv1.Geo{Latitude: 52.1, Longitude: 4.3, AccuracyKm: 10}}}
	}
	cases := []struct {
		name   string
		mutate func(e *eventv1.AuthEvent)
		field  string
	}{
		{"valid", func(*eventv1.AuthEvent) {}, ""},
		{"no event id", func(e *eventv1.AuthEvent) { e.EventId = "" }, "e.event_id"},
		{"no user", func(e *eventv1.AuthEvent) { e.UserId = "" }, "e.user_id"},
		{"long user", func(e *eventv1.AuthEvent) { e.UserId = strings.Repeat("u", 300) }, "e.user_id"},
		{"bad utf-8", func(e *eventv1.AuthEvent) { e.UserId = "\xff" }, "e.user_id"},
		{"escape sequence in an id", func(e *eventv1.AuthEvent) { e.UserId = "bob\x1b[2J" }, "e.user_id"},
		{"newline in an id", func(e *eventv1.AuthEvent) { e.EventId = "e1\nroot" }, "e.event_id"},
		{"bidi override in an id", func(e *eventv1.AuthEvent) { e.UserId = "alice\u202egnp.exe" }, "e.user_id"},
		{"non-ASCII id", func(e *eventv1.AuthEvent) { e.UserId = "zoë@example.com" }, ""},
		{"ip with a zone", func(e *eventv1.AuthEvent) { e.Client.Ip = "fe80::1%eth0" }, "e.client.ip"},
		{"ip far too long", func(e *eventv1.AuthEvent) { e.Client.Ip = "fe80::1%" + strings.Repeat("x", 100) }, "e.client.ip"},
		{"no type", func(e *eventv1.AuthEvent) { e.Type = 0 }, "e.type"},
		{"unknown type", func(e *eventv1.AuthEvent) { e.Type = 99 }, "e.type"},
		{"no time", func(e *eventv1.AuthEvent) { e.Time = nil }, "e.time"},
		{"ancient time", func(e *eventv1.AuthEvent) { e.Time = timestamppb.New(time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)) }, "e.time"},
		{"bad ip", func(e *eventv1.AuthEvent) { e.Client.Ip = "10.0.0.256" }, "e.client.ip"},
		{"latitude", func(e *eventv1.AuthEvent) { e.Client.Geo.Latitude = -91 }, "e.client.geo.latitude"},
		{"longitude NaN", func(e *eventv1.AuthEvent) { e.Client.Geo.Longitude = math.NaN() }, "e.client.geo.longitude"},
		{"accuracy", func(e *eventv1.AuthEvent) { e.Client.Geo.AccuracyKm = -1 }, "e.client.geo.accuracy_km"},
		{"known anonymizer", func(e *eventv1.AuthEvent) { e.Client.Anonymizer = "proxy" }, ""},
		{"unknown anonymizer", func(e *eventv1.AuthEvent) { e.Client.Anonymizer = "Proxy" }, "e.client.anonymizer"},
		{"responder ip", func(e *eventv1.AuthEvent) { e.Responder = &eventv1.Client{Ip: "x"} }, "e.responder.ip"},
		{"unknown factor", func(e *eventv1.AuthEvent) { e.Factor = 42 }, "e.factor"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := good()
			tc.mutate(e)
			var v apierr.Violations
			validate.Event(&v, "e", e)
			if tc.field == "" {
				if v.Len() != 0 {
					t.Fatalf("valid event rejected: %v", v.List())
				}
				return
			}
			if v.Len() == 0 || v.List()[0].Field != tc.field {
				t.Fatalf("violations %v, want the first to name %s", v.List(), tc.field)
			}
		})
	}
	var v apierr.Violations
	validate.Event(&v, "e", nil)
	if v.Len() != 1 {
		t.Fatalf("nil event: %v", v.List())
	}
	if got := validate.TimeOr(nil, at.AsTime()); !got.Equal(at.AsTime()) {
		t.Fatal("TimeOr ignores the default")
	}
}
