package formats

import (
	"encoding/json"
	"strings"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
)

// oktaEvent is an Okta System Log event (the LogEvent object), also the
// element of an Event Hook's data.events. Field matching is
// case-insensitive, so lower-cased SIEM exports decode too.
type oktaEvent struct {
	UUID        string     `json:"uuid"`
	Published   flexString `json:"published"`
	EventType   string     `json:"eventType"`
	LegacyType  string     `json:"legacyEventType"`
	DisplayMsg  string     `json:"displayMessage"`
	Actor       oktaActor  `json:"actor"`
	Target      []oktaActor
	Client      oktaClient           `json:"client"`
	Device      *struct{ ID string } `json:"device"`
	Outcome     struct{ Result, Reason string }
	AuthContext struct {
		ExternalSessionID string `json:"externalSessionId"`
		CredentialType    string `json:"credentialType"`
	} `json:"authenticationContext"`
	SecurityContext *struct {
		AsNumber flexFloat `json:"asNumber"`
		AsOrg    string    `json:"asOrg"`
		IsProxy  bool      `json:"isProxy"`
	} `json:"securityContext"`
	DebugContext struct {
		DebugData map[string]any `json:"debugData"`
	} `json:"debugContext"`

	// Event Hook envelope: {"eventType": "com.okta.event_hook", "data": {"events": [...]}}.
	Data *struct {
		Events []json.RawMessage `json:"events"`
	} `json:"data"`
}

type oktaActor struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	AlternateID string `json:"alternateId"`
	DisplayName string `json:"displayName"`
}

type oktaClient struct {
	IPAddress string `json:"ipAddress"`
	UserAgent *struct {
		RawUserAgent string `json:"rawUserAgent"`
	} `json:"userAgent"`
	Geo *struct {
		City, State, Country string
		Geolocation          *struct{ Lat, Lon flexFloat } `json:"geolocation"`
	} `json:"geographicalContext"`
}

func oktaCodec(raw []byte, _ Options) (mapped, []json.RawMessage, string, error) {
	var ev oktaEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		return mapped{}, nil, "", err
	}
	if ev.Data != nil && ev.Data.Events != nil {
		return mapped{}, ev.Data.Events, "data.events", nil
	}
	typ, factor, ok := oktaType(&ev)
	if !ok {
		return mapped{skip: skipName(ev.EventType, "okta event without eventType")}, nil, "", nil
	}
	at, err := parseTime("published", ev.Published)
	if err != nil {
		return mapped{}, nil, "", err
	}
	user := oktaUser(&ev)
	if user == "" {
		return mapped{}, nil, "", errField("actor.alternateId", "the user is missing")
	}
	id := ev.UUID
	if id == "" {
		id = syntheticID(raw)
	}
	e := newEvent("okta", ev.EventType, id, user, typ, at)
	e.Factor = factor
	e.SessionId = ev.AuthContext.ExternalSessionID
	for _, t := range ev.Target {
		if t.Type == "AppInstance" {
			e.AppId = t.ID
			break
		}
	}
	c := &eventv1.Client{Ip: ev.Client.IPAddress}
	if ev.Client.UserAgent != nil {
		c.UserAgent = ev.Client.UserAgent.RawUserAgent
	}
	if ev.Device != nil && ev.Device.ID != "" {
		c.DeviceId = ev.Device.ID
	} else if fp, ok := ev.DebugContext.DebugData["deviceFingerprint"].(string); ok {
		c.DeviceId = fp
	}
	if g := ev.Client.Geo; g != nil {
		c.Geo = geo(0, 0, g.Country, g.State, g.City)
		if g.Geolocation != nil {
			c.Geo.Latitude, c.Geo.Longitude = float64(g.Geolocation.Lat), float64(g.Geolocation.Lon)
		}
	}
	if sc := ev.SecurityContext; sc != nil {
		if sc.AsNumber > 0 && sc.AsNumber < 1<<32 {
			c.Asn = uint32(sc.AsNumber)
		}
		c.AsOrg = sc.AsOrg
		if sc.IsProxy {
			// Okta saw a proxy or anonymizing network in front of the client.
			c.Anonymizer = "proxy"
		}
	}
	e.Client = c
	return mapped{events: []*eventv1.AuthEvent{e}}, nil, "", nil
}

func skipName(t, missing string) string {
	if t == "" {
		return missing
	}
	return t
}

// oktaUser is the user an event is about: the actor when it is a user,
// otherwise the first user among the targets (an admin acting on a user).
func oktaUser(ev *oktaEvent) string {
	pick := func(a oktaActor) string {
		if a.AlternateID != "" && a.AlternateID != "unknown" {
			return a.AlternateID
		}
		if a.ID != "unknown" {
			return a.ID
		}
		return ""
	}
	if ev.Actor.Type == "" || strings.EqualFold(ev.Actor.Type, "User") {
		if u := pick(ev.Actor); u != "" {
			return u
		}
	}
	for _, t := range ev.Target {
		if strings.EqualFold(t.Type, "User") {
			return pick(t)
		}
	}
	return ""
}

// oktaType maps an Okta event type and outcome to an AuthEvent type.
func oktaType(ev *oktaEvent) (eventv1.EventType, eventv1.Factor, bool) {
	result := strings.ToUpper(ev.Outcome.Result)
	factor := oktaFactor(ev)
	switch ev.EventType {
	case "system.push.send_factor_verify_push":
		return eventv1.EventType_EVENT_TYPE_PUSH_SENT, eventv1.Factor_FACTOR_PUSH, true
	case "user.mfa.okta_verify.deny_push", "user.mfa.okta_verify.deny_push_upgrade_needed":
		return eventv1.EventType_EVENT_TYPE_PUSH_DENIED, eventv1.Factor_FACTOR_PUSH, true
	case "user.account.report_suspicious_activity_by_enduser":
		return eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED, factor, true
	case "user.mfa.factor.activate":
		return eventv1.EventType_EVENT_TYPE_FACTOR_ENROLLED, factor, true
	case "user.authentication.auth_via_mfa":
		reason := ev.Outcome.Reason
		switch {
		case result == "SUCCESS" && isPushFactor(factor):
			return eventv1.EventType_EVENT_TYPE_PUSH_APPROVED, factor, true
		case result == "SUCCESS":
			return eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, factor, true
		case result == "FAILURE" && isPushFactor(factor) && containsAny(reason, "timed out", "timeout", "expired", "did not respond"):
			return eventv1.EventType_EVENT_TYPE_PUSH_TIMED_OUT, factor, true
		case result == "FAILURE" && isPushFactor(factor) && containsAny(reason, "number", "challenge"):
			return eventv1.EventType_EVENT_TYPE_NUMBER_CHALLENGE_FAILED, eventv1.Factor_FACTOR_PUSH_NUMBER_MATCH, true
		case result == "FAILURE" && isPushFactor(factor):
			// The denial itself is logged as user.mfa.okta_verify.deny_push;
			// counting this one too would double every denial.
			return 0, 0, false
		case result == "FAILURE":
			return eventv1.EventType_EVENT_TYPE_LOGIN_FAILED, factor, true
		}
	case "user.session.start", "user.authentication.authenticate":
		switch {
		case result == "SUCCESS" && (factor == eventv1.Factor_FACTOR_WEBAUTHN || factor == eventv1.Factor_FACTOR_SMART_CARD):
			// A phishing-resistant credential is a whole login on its own.
			return eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, factor, true
		case result == "SUCCESS":
			// Okta logs these once the password is verified, before any
			// second factor: someone with only the password gets this far.
			return eventv1.EventType_EVENT_TYPE_PRIMARY_AUTH_SUCCEEDED, factor, true
		case result == "FAILURE" || result == "DENY":
			return eventv1.EventType_EVENT_TYPE_LOGIN_FAILED, factor, true
		}
	}
	return 0, 0, false
}

// oktaFactor reads the factor from debugData.factor (Okta's factor names),
// the enrolment reason ("User set up SIGNED_NONCE factor") or the
// credential type.
func oktaFactor(ev *oktaEvent) eventv1.Factor {
	name, _ := ev.DebugContext.DebugData["factor"].(string)
	if name == "" && ev.EventType == "user.mfa.factor.activate" {
		name = ev.Outcome.Reason
	}
	if name == "" {
		name = ev.AuthContext.CredentialType
	}
	n := strings.ToUpper(name)
	switch {
	case n == "":
		return eventv1.Factor_FACTOR_UNSPECIFIED
	case strings.Contains(n, "PUSH"):
		return eventv1.Factor_FACTOR_PUSH
	case strings.Contains(n, "SIGNED_NONCE"), strings.Contains(n, "WEBAUTHN"), strings.Contains(n, "FIDO"), strings.Contains(n, "U2F"):
		return eventv1.Factor_FACTOR_WEBAUTHN
	case strings.Contains(n, "SMART_CARD"), strings.Contains(n, "PIV"), strings.Contains(n, "CERT"):
		return eventv1.Factor_FACTOR_SMART_CARD
	case strings.Contains(n, "SMS"):
		return eventv1.Factor_FACTOR_SMS
	case strings.Contains(n, "CALL"), strings.Contains(n, "VOICE"):
		return eventv1.Factor_FACTOR_VOICE
	case strings.Contains(n, "EMAIL"):
		return eventv1.Factor_FACTOR_EMAIL
	case strings.Contains(n, "TOTP"), strings.Contains(n, "OTP"), strings.Contains(n, "TOKEN"), strings.Contains(n, "GOOGLE"):
		return eventv1.Factor_FACTOR_TOTP
	case strings.Contains(n, "PASSWORD"):
		return eventv1.Factor_FACTOR_PASSWORD
	}
	return eventv1.Factor_FACTOR_UNSPECIFIED
}
