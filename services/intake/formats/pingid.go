package formats

import (
	"encoding/json"
	"strings"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
)

// pingEvent is one PingID webhook event.
type pingEvent struct {
	Source   string     `json:"source"`
	ID       string     `json:"id"`
	Recorded flexString `json:"recorded"`
	Action   flexAction `json:"action"`
	Actors   []struct {
		Type string `json:"type"`
		Name string `json:"name"`
	} `json:"actors"`
	Resources []struct {
		Type        string `json:"type"`
		Name        string `json:"name"`
		IPAddress   string `json:"ipaddress"`
		WebSession  string `json:"websession"`
		DeviceModel string `json:"devicemodel"`
		DeviceID    string `json:"deviceid"`
		AppID       string `json:"appid"`
	} `json:"resources"`
	Result struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	} `json:"result"`
}

// flexAction accepts "action": "AUTHENTICATE" or {"type": "AUTHENTICATE"}.
type flexAction string

func (a *flexAction) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var v struct{ Type string }
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*a = flexAction(v.Type)
		return nil
	}
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	*a = flexAction(s)
	return nil
}

func pingCodec(raw []byte, _ Options) (mapped, []json.RawMessage, string, error) {
	var ev pingEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		return mapped{}, nil, "", err
	}
	status := strings.ToUpper(strings.TrimSpace(ev.Result.Status))
	kind, detail, _ := strings.Cut(status, ",")
	msg := ev.Result.Message
	var typ eventv1.EventType
	switch {
	case kind == "POLICY":
		// PingID asks its policy before it sends a push: this is the attempt.
		typ = eventv1.EventType_EVENT_TYPE_PUSH_REQUESTED
	case kind == "SUCCESS":
		typ = eventv1.EventType_EVENT_TYPE_PUSH_APPROVED
	case kind == "FAILURE" && containsAny(msg+" "+detail, "fraud"):
		typ = eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED
	case kind == "FAILURE" && containsAny(msg+" "+detail, "did not respond", "didn't respond", "no response", "timed out", "timeout", "expired"):
		typ = eventv1.EventType_EVENT_TYPE_PUSH_TIMED_OUT
	case kind == "FAILURE" && containsAny(msg+" "+detail, "denied", "declined", "rejected", "blocked by user"):
		typ = eventv1.EventType_EVENT_TYPE_PUSH_DENIED
	case kind == "FAILURE":
		typ = eventv1.EventType_EVENT_TYPE_LOGIN_FAILED
	default:
		return mapped{skip: skipName(ev.Result.Status, "pingid event without result.status")}, nil, "", nil
	}
	user := ""
	for _, a := range ev.Actors {
		if strings.EqualFold(a.Type, "user") && a.Name != "" {
			user = a.Name
			break
		}
	}
	if user == "" {
		return mapped{}, nil, "", errField("actors", "no actor of type user")
	}
	at, err := parseTime("recorded", ev.Recorded)
	if err != nil {
		return mapped{}, nil, "", err
	}
	id := ev.ID
	if id == "" {
		id = syntheticID(raw)
	}
	e := newEvent("pingid", strings.TrimSpace(ev.Result.Status), id, user, typ, at)
	if typ != eventv1.EventType_EVENT_TYPE_LOGIN_FAILED {
		e.Factor = eventv1.Factor_FACTOR_PUSH
	}
	c := &eventv1.Client{}
	for _, r := range ev.Resources {
		if c.Ip == "" {
			c.Ip = r.IPAddress
		}
		if e.SessionId == "" {
			e.SessionId = r.WebSession
		}
		if e.AppId == "" {
			e.AppId = r.AppID
		}
		if c.DeviceId == "" {
			c.DeviceId = r.DeviceID
		}
		if r.DeviceModel != "" && e.Responder == nil {
			e.Responder = &eventv1.Client{UserAgent: r.DeviceModel}
		}
	}
	e.Client = c
	return mapped{events: []*eventv1.AuthEvent{e}}, nil, "", nil
}
