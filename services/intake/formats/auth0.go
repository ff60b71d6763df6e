package formats

import (
	"bytes"
	"encoding/json"
	"strings"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
)

// auth0Log is one Auth0 tenant log event. A log stream (custom webhook)
// delivers an array of {"log_id", "data": <log event>}; the Management API
// (GET /api/v2/logs) returns the log events themselves.
type auth0Log struct {
	LogID        string          `json:"log_id"`
	OldID        string          `json:"_id"`
	Date         flexString      `json:"date"`
	Type         string          `json:"type"`
	Description  string          `json:"description"`
	ClientID     string          `json:"client_id"`
	IP           string          `json:"ip"`
	UserAgent    string          `json:"user_agent"`
	UserID       string          `json:"user_id"`
	UserName     string          `json:"user_name"`
	Details      json.RawMessage `json:"details"`
	LocationInfo *struct {
		CountryCode string    `json:"country_code"`
		CityName    string    `json:"city_name"`
		Latitude    flexFloat `json:"latitude"`
		Longitude   flexFloat `json:"longitude"`
		Subdivision string    `json:"subdivision_code"`
	} `json:"location_info"`
}

type auth0Envelope struct {
	auth0Log
	Data *auth0Log `json:"data"`
}

func auth0Codec(raw []byte, _ Options) (mapped, []json.RawMessage, string, error) {
	var env auth0Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return mapped{}, nil, "", err
	}
	l, prefix := &env.auth0Log, ""
	if env.Data != nil {
		l, prefix = env.Data, "data."
		if l.LogID == "" {
			l.LogID = env.LogID
		}
	}
	typ, factor, ok := auth0Type(l)
	if !ok {
		return mapped{skip: skipName(l.Type, "auth0 log without type")}, nil, "", nil
	}
	user := firstNonEmpty(l.UserID, l.UserName, auth0DetailsUser(l.Details))
	if user == "" {
		return mapped{}, nil, "", errField(prefix+"user_id", "the user is missing")
	}
	at, err := parseTime(prefix+"date", l.Date)
	if err != nil {
		return mapped{}, nil, "", err
	}
	id := firstNonEmpty(l.LogID, l.OldID)
	if id == "" {
		id = syntheticID(raw)
	}
	e := newEvent("auth0", l.Type, id, user, typ, at)
	e.Factor = factor
	e.AppId = l.ClientID
	c := &eventv1.Client{Ip: l.IP, UserAgent: l.UserAgent}
	if li := l.LocationInfo; li != nil {
		c.Geo = geo(float64(li.Latitude), float64(li.Longitude), li.CountryCode, li.Subdivision, li.CityName)
	}
	e.Client = c
	return mapped{events: []*eventv1.AuthEvent{e}}, nil, "", nil
}

// auth0Type maps an Auth0 log event type code.
func auth0Type(l *auth0Log) (eventv1.EventType, eventv1.Factor, bool) {
	switch l.Type {
	case "gd_send_pn":
		return eventv1.EventType_EVENT_TYPE_PUSH_SENT, eventv1.Factor_FACTOR_PUSH, true
	case "gd_auth_rejected":
		return eventv1.EventType_EVENT_TYPE_PUSH_DENIED, eventv1.Factor_FACTOR_PUSH, true
	case "gd_auth_succeed":
		// Guardian logs one success for every factor; the details or the
		// description name a push when it was one.
		if containsAny(string(l.Details)+" "+l.Description, "push") {
			return eventv1.EventType_EVENT_TYPE_PUSH_APPROVED, eventv1.Factor_FACTOR_PUSH, true
		}
		return eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, auth0Factor(l), true
	case "gd_auth_failed", "gd_otp_rate_limit_exceed", "gd_recovery_failed", "gd_webauthn_challenge_failed":
		return eventv1.EventType_EVENT_TYPE_LOGIN_FAILED, auth0Factor(l), true
	case "gd_enrollment_complete":
		return eventv1.EventType_EVENT_TYPE_FACTOR_ENROLLED, auth0Factor(l), true
	case "s", "ssa":
		return eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, eventv1.Factor_FACTOR_UNSPECIFIED, true
	case "f", "fp", "fu", "fc", "fcoa", "fsa":
		return eventv1.EventType_EVENT_TYPE_LOGIN_FAILED, eventv1.Factor_FACTOR_UNSPECIFIED, true
	}
	return 0, 0, false
}

func auth0Factor(l *auth0Log) eventv1.Factor {
	s := strings.ToLower(string(l.Details) + " " + l.Description)
	switch {
	case strings.Contains(s, "webauthn"), strings.Contains(s, "passkey"):
		return eventv1.Factor_FACTOR_WEBAUTHN
	case strings.Contains(s, "push"):
		return eventv1.Factor_FACTOR_PUSH
	case strings.Contains(s, "sms"):
		return eventv1.Factor_FACTOR_SMS
	case strings.Contains(s, "voice"):
		return eventv1.Factor_FACTOR_VOICE
	case strings.Contains(s, "email"):
		return eventv1.Factor_FACTOR_EMAIL
	case strings.Contains(s, "otp"):
		return eventv1.Factor_FACTOR_TOTP
	}
	return eventv1.Factor_FACTOR_UNSPECIFIED
}

// auth0DetailsUser finds the user in details.request.auth.user.user_id
// (management actions carry it there).
func auth0DetailsUser(details json.RawMessage) string {
	if len(bytes.TrimSpace(details)) == 0 || details[0] != '{' {
		return ""
	}
	var d struct {
		Request struct {
			Auth struct {
				User struct {
					UserID string `json:"user_id"`
				} `json:"user"`
			} `json:"auth"`
		} `json:"request"`
	}
	if json.Unmarshal(details, &d) != nil {
		return ""
	}
	return d.Request.Auth.User.UserID
}
