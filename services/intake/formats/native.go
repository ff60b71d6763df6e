package formats

import (
	"bytes"
	"encoding/json"
	"strings"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

var nativeUnmarshal = protojson.UnmarshalOptions{}

// nativeCodec reads Pushback's own AuthEvent JSON (protojson field names),
// one event or the {"events": [...]} of an IngestRequest.
func nativeCodec(raw []byte, _ Options) (mapped, []json.RawMessage, string, error) {
	var env struct {
		Events []json.RawMessage `json:"events"`
	}
	// An AuthEvent has no "events" field, so an object with one is the envelope.
	if bytes.Contains(raw, []byte(`"events"`)) && json.Unmarshal(raw, &env) == nil && env.Events != nil {
		return mapped{}, env.Events, "events", nil
	}
	e, ok := decodeNativeFast(raw)
	if !ok {
		e = &eventv1.AuthEvent{}
		if err := nativeUnmarshal.Unmarshal(raw, e); err != nil {
			return mapped{}, nil, "", errField(protoField(err.Error()), "%s", err.Error())
		}
	}
	if e.EventId == "" {
		return mapped{}, nil, "", errField("eventId", "the event id is missing")
	}
	if e.Type == eventv1.EventType_EVENT_TYPE_UNSPECIFIED {
		return mapped{skip: "EVENT_TYPE_UNSPECIFIED"}, nil, "", nil
	}
	if e.Time == nil {
		return mapped{}, nil, "", errField("time", "is required")
	}
	if e.Source == nil {
		e.Source = &eventv1.Source{Idp: "native"}
	}
	return mapped{events: []*eventv1.AuthEvent{e}}, nil, "", nil
}

// protoField pulls the field name out of a protojson error.
func protoField(msg string) string {
	for _, marker := range []string{"unknown field \"", "invalid value for enum field ", "field "} {
		if i := strings.Index(msg, marker); i >= 0 {
			rest := strings.TrimLeft(msg[i+len(marker):], "\"")
			if j := strings.IndexAny(rest, "\": ,"); j > 0 {
				return rest[:j]
			}
		}
	}
	return ""
}
