package formats

import (
	"bytes"
	"encoding/json"
	"strings"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
)

// duoAuthLog is one Duo Admin API v2 authentication log
// (GET /admin/v2/logs/authentication), or a v1 log with its flat fields.
type duoAuthLog struct {
	TxID         string     `json:"txid"`
	Timestamp    flexString `json:"timestamp"`
	IsoTimestamp flexString `json:"isotimestamp"`
	EventType    string     `json:"event_type"`
	Factor       string     `json:"factor"`
	Result       string     `json:"result"`
	Reason       string     `json:"reason"`
	User         *struct {
		Name string `json:"name"`
		Key  string `json:"key"`
	} `json:"user"`
	Username    string `json:"username"` // v1
	Application *struct {
		Key  string `json:"key"`
		Name string `json:"name"`
	} `json:"application"`
	Integration  string     `json:"integration"` // v1
	AccessDevice *duoDevice `json:"access_device"`
	AuthDevice   *duoDevice `json:"auth_device"`
	IP           string     `json:"ip"` // v1

	// {"stat": "OK", "response": {"authlogs": [...]}} (v2) or {"response": [...]} (v1).
	Response json.RawMessage `json:"response"`
}

type duoDevice struct {
	IP       string `json:"ip"`
	Key      string `json:"key"`
	EPKey    string `json:"epkey"`
	Browser  string `json:"browser"`
	OS       string `json:"os"`
	Location *struct {
		City, State, Country string
	} `json:"location"`
}

func duoCodec(raw []byte, _ Options) (mapped, []json.RawMessage, string, error) {
	var l duoAuthLog
	if err := json.Unmarshal(raw, &l); err != nil {
		return mapped{}, nil, "", err
	}
	if r := bytes.TrimSpace(l.Response); len(r) > 0 {
		if r[0] == '[' {
			var list []json.RawMessage
			if err := json.Unmarshal(r, &list); err != nil {
				return mapped{}, nil, "", errField("response", "%s", jsonMsg(err))
			}
			return mapped{}, list, "response", nil
		}
		var v2 struct {
			AuthLogs []json.RawMessage `json:"authlogs"`
		}
		if err := json.Unmarshal(r, &v2); err != nil {
			return mapped{}, nil, "", errField("response", "%s", jsonMsg(err))
		}
		return mapped{}, v2.AuthLogs, "response.authlogs", nil
	}
	et := strings.ToLower(l.EventType)
	if et != "" && et != "authentication" && et != "enrollment" {
		return mapped{skip: l.EventType}, nil, "", nil
	}
	if et == "" && l.Result == "" {
		// Not an authentication log (administrator and telephony logs share the API).
		return mapped{skip: "duo record without event_type"}, nil, "", nil
	}
	user := l.Username
	if l.User != nil && l.User.Name != "" {
		user = l.User.Name
	}
	if user == "" {
		return mapped{}, nil, "", errField("user.name", "the user is missing")
	}
	ts, field := l.IsoTimestamp, "isotimestamp"
	if ts == "" {
		ts, field = l.Timestamp, "timestamp"
	}
	at, err := parseTime(field, ts)
	if err != nil {
		return mapped{}, nil, "", err
	}
	factor := duoFactor(l.Factor)
	result, reason := strings.ToLower(l.Result), strings.ToLower(l.Reason)
	push := isPushFactor(factor)
	var typ eventv1.EventType
	switch {
	case et == "enrollment":
		typ = eventv1.EventType_EVENT_TYPE_FACTOR_ENROLLED
	case result == "fraud" || reason == "user_marked_fraud":
		typ = eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED
	case result == "success" && push:
		typ = eventv1.EventType_EVENT_TYPE_PUSH_APPROVED
	case result == "success":
		typ = eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED
	case push && (reason == "no_response" || reason == "no_keys_pressed" || strings.Contains(reason, "timeout") || strings.Contains(reason, "timed_out")):
		typ = eventv1.EventType_EVENT_TYPE_PUSH_TIMED_OUT
	case push && strings.HasPrefix(reason, "verification_code"):
		typ, factor = eventv1.EventType_EVENT_TYPE_NUMBER_CHALLENGE_FAILED, eventv1.Factor_FACTOR_PUSH_NUMBER_MATCH
	case push && (reason == "user_cancelled" || reason == "user_declined" || reason == "user_mistake" || reason == "denied_by_user"):
		typ = eventv1.EventType_EVENT_TYPE_PUSH_DENIED
	case result == "denied" || result == "failure" || result == "error":
		// Policy denials (restricted location, untrusted endpoint, an
		// anomalous push Duo refused to send) stop the login before any push.
		push = false
		typ = eventv1.EventType_EVENT_TYPE_LOGIN_FAILED
	default:
		return mapped{skip: "duo result " + truncate(l.Result, 32)}, nil, "", nil
	}
	id := l.TxID
	if id == "" {
		id = syntheticID(raw)
	}
	e := newEvent("duo", strings.Trim(et+":"+result+":"+reason, ":"), id, user, typ, at)
	e.Factor = factor
	if l.Application != nil {
		e.AppId = firstNonEmpty(l.Application.Key, l.Application.Name)
	} else {
		e.AppId = l.Integration
	}
	e.Client = duoClient(l.AccessDevice, l.IP, true)
	e.Responder = duoClient(l.AuthDevice, "", false)
	if push && typ != eventv1.EventType_EVENT_TYPE_FACTOR_ENROLLED {
		return mapped{events: pushPair(e)}, nil, "", nil
	}
	return mapped{events: []*eventv1.AuthEvent{e}}, nil, "", nil
}

func duoClient(d *duoDevice, ip string, access bool) *eventv1.Client {
	if d == nil {
		if ip == "" {
			return nil
		}
		return &eventv1.Client{Ip: ip}
	}
	c := &eventv1.Client{Ip: firstNonEmpty(d.IP, ip)}
	if access {
		c.DeviceId = d.EPKey
		c.UserAgent = strings.TrimSpace(d.Browser + " " + d.OS)
	} else {
		c.DeviceId = d.Key
	}
	if l := d.Location; l != nil {
		c.Geo = geo(0, 0, l.Country, l.State, l.City)
	}
	return c
}

// duoFactor maps Duo's factor names (v2 snake case and v1 labels).
func duoFactor(f string) eventv1.Factor {
	f = strings.ToLower(strings.ReplaceAll(f, " ", "_"))
	switch {
	case f == "verified_duo_push" || f == "duo_push_verified":
		return eventv1.Factor_FACTOR_PUSH_NUMBER_MATCH
	case strings.Contains(f, "push"):
		return eventv1.Factor_FACTOR_PUSH
	case strings.Contains(f, "webauthn"), strings.Contains(f, "u2f"), strings.Contains(f, "security_key"), strings.Contains(f, "platform_authenticator"), strings.Contains(f, "passkey"):
		return eventv1.Factor_FACTOR_WEBAUTHN
	case strings.Contains(f, "sms"):
		return eventv1.Factor_FACTOR_SMS
	case strings.Contains(f, "phone_call"):
		return eventv1.Factor_FACTOR_VOICE
	case strings.Contains(f, "passcode"), strings.Contains(f, "hardware_token"), strings.Contains(f, "yubikey"), strings.Contains(f, "totp"), strings.Contains(f, "hotp"):
		return eventv1.Factor_FACTOR_TOTP
	}
	return eventv1.Factor_FACTOR_UNSPECIFIED
}
