package formats

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// entraRecord is one Azure Monitor diagnostic record of the Entra ID
// sign-in categories, as exported to Event Hub or storage
// ({"records": [...]}, or one record per line); or a Microsoft Graph page of
// sign-ins (GET /v1.0/auditLogs/signIns: {"value": [signIn, ...]}); or one
// Graph signIn resource (an element of such a page, or of a bare JSON array
// of them). A record's properties is the Graph signIn resource, so both are
// mapped by the same code.
type entraRecord struct {
	Time            flexString `json:"time"`
	Category        string     `json:"category"`
	OperationName   string     `json:"operationName"`
	ResultType      flexString `json:"resultType"`
	CallerIPAddress string     `json:"callerIpAddress"`
	CorrelationID   string     `json:"correlationId"`
	Properties      *entraSignIn

	Records []json.RawMessage `json:"records"`
	// Value is the sign-ins of a Graph page.
	Value []json.RawMessage `json:"value"`
}

// entraSignIn is the sign-in resource under properties.
type entraSignIn struct {
	ID                string     `json:"id"`
	CreatedDateTime   flexString `json:"createdDateTime"`
	UserPrincipalName string     `json:"userPrincipalName"`
	UserID            string     `json:"userId"`
	AppID             string     `json:"appId"`
	IPAddress         string     `json:"ipAddress"`
	UserAgent         string     `json:"userAgent"`
	SessionID         string     `json:"sessionId"`
	ASN               flexFloat  `json:"autonomousSystemNumber"`
	Status            struct {
		ErrorCode         flexString `json:"errorCode"`
		FailureReason     string     `json:"failureReason"`
		AdditionalDetails string     `json:"additionalDetails"`
	} `json:"status"`
	DeviceDetail struct {
		DeviceID string `json:"deviceId"`
	} `json:"deviceDetail"`
	Location *struct {
		City            string `json:"city"`
		State           string `json:"state"`
		CountryOrRegion string `json:"countryOrRegion"`
		GeoCoordinates  *struct {
			Latitude  flexFloat `json:"latitude"`
			Longitude flexFloat `json:"longitude"`
		} `json:"geoCoordinates"`
	} `json:"location"`
	MfaDetail *struct {
		AuthMethod string `json:"authMethod"`
		AuthDetail string `json:"authDetail"`
	} `json:"mfaDetail"`
	AuthenticationDetails []struct {
		StepDateTime flexString `json:"authenticationStepDateTime"`
		Method       string     `json:"authenticationMethod"`
		Succeeded    *bool      `json:"succeeded"`
		ResultDetail string     `json:"authenticationStepResultDetail"`
	} `json:"authenticationDetails"`
}

// Entra error codes that interrupt a sign-in to ask for more (MFA
// required, keep me signed in, password change): not an outcome yet.
var entraInterrupts = map[string]bool{
	"50055": true, "50072": true, "50074": true, "50076": true, "50079": true,
	"50097": true, "50125": true, "50140": true, "50158": true, "50199": true,
	"53000": true, "530032": true, "81010": true, "81012": true,
}

func entraCodec(raw []byte, _ Options) (mapped, []json.RawMessage, string, error) {
	var rec entraRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return mapped{}, nil, "", err
	}
	if rec.Records != nil {
		return mapped{}, rec.Records, "records", nil
	}
	if rec.Value != nil {
		return mapped{}, rec.Value, "value", nil
	}
	p, prefix := entraSignInOf(&rec, raw)
	if p == nil {
		return mapped{skip: skipName(rec.Category, "entra record without category")}, nil, "", nil
	}
	switch rec.Category {
	case "SignInLogs", "NonInteractiveUserSignInLogs", "":
	default:
		// Service principal and managed identity sign-ins have no user.
		return mapped{skip: rec.Category}, nil, "", nil
	}
	user := firstNonEmpty(p.UserPrincipalName, p.UserID)
	if user == "" {
		return mapped{}, nil, "", errField(prefix+"userPrincipalName", "the user is missing")
	}
	at, err := entraTime(&rec, p, prefix)
	if err != nil {
		return mapped{}, nil, "", err
	}
	code, rawType, err := entraResult(&rec, p, prefix)
	if err != nil {
		return mapped{}, nil, "", err
	}
	if entraInterrupts[code] {
		return mapped{skip: rawType}, nil, "", nil
	}
	mfa := p.mfaSteps()
	step := p.mfaStep(mfa, code, at)
	factor := entraFactor(step.method)
	typ, factor := entraType(code, factor, strings.ToLower(step.detail+" "+p.Status.FailureReason))
	id := p.ID
	if id == "" {
		id = syntheticID(raw)
	}
	e := newEvent("entra", rawType, id, user, typ, at)
	e.Factor = factor
	e.AppId = p.AppID
	e.SessionId = p.SessionID
	e.Client = entraClient(&rec, p)
	out := p.declinedPushes(e, mfa, step.index, code, at)
	if isPushFactor(factor) && typ != eventv1.EventType_EVENT_TYPE_LOGIN_FAILED && typ != eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED {
		e.Time = timestamppb.New(step.at)
		return mapped{events: append(out, pushPair(e)...)}, nil, "", nil
	}
	return mapped{events: append(out, e)}, nil, "", nil
}

// entraSignInOf returns the sign-in a record carries and the path prefix
// of its fields ("properties." in a diagnostic record), or nil when it
// carries none.
func entraSignInOf(rec *entraRecord, raw []byte) (*entraSignIn, string) {
	if rec.Properties != nil {
		return rec.Properties, "properties."
	}
	if rec.Category == "" {
		// A Graph signIn resource itself: what a record holds under
		// properties.
		var s entraSignIn
		if err := json.Unmarshal(raw, &s); err == nil && (s.ID != "" || s.CreatedDateTime != "") {
			return &s, ""
		}
	}
	return nil, "properties."
}

// entraTime is when the sign-in happened: its createdDateTime, else the
// diagnostic record's time.
func entraTime(rec *entraRecord, p *entraSignIn, prefix string) (time.Time, error) {
	ts := p.CreatedDateTime
	field := prefix + "createdDateTime"
	if ts == "" && prefix != "" {
		ts, field = rec.Time, "time"
	}
	return parseTime(field, ts)
}

// entraResult is the sign-in's error code ("0" for a success) and the raw
// event type it makes.
func entraResult(rec *entraRecord, p *entraSignIn, prefix string) (code, rawType string, err error) {
	code = strings.TrimSpace(string(p.Status.ErrorCode))
	if code == "" {
		code = strings.TrimSpace(string(rec.ResultType))
	}
	if code == "" {
		return "", "", errField(prefix+"status.errorCode", "the result is missing")
	}
	if rec.Category == "" {
		return code, "signIn:" + code, nil
	}
	return code, rec.Category + ":" + code, nil
}

// mfaSteps returns the indexes of the authentication steps that are not
// the password.
func (p *entraSignIn) mfaSteps() []int {
	var mfa []int
	for i, s := range p.AuthenticationDetails {
		if s.Method == "" || strings.EqualFold(s.Method, "Password") || strings.EqualFold(s.Method, "Previously satisfied") {
			continue
		}
		mfa = append(mfa, i)
	}
	return mfa
}

// entraStep is the MFA step a sign-in is mapped by.
type entraStep struct {
	index          int // in AuthenticationDetails; -1 when none
	method, detail string
	at             time.Time
}

// mfaStep picks the MFA step: on a success the step that succeeded (a user
// who declined a push and then passed with a text message did not approve
// the push), otherwise the first non-password step; else mfaDetail.
func (p *entraSignIn) mfaStep(mfa []int, code string, at time.Time) entraStep {
	step := entraStep{index: -1, detail: p.Status.AdditionalDetails, at: at}
	if code == "0" {
		for _, i := range mfa {
			if ok := p.AuthenticationDetails[i].Succeeded; ok != nil && *ok {
				step.index = i
				break
			}
		}
	}
	if step.index < 0 && len(mfa) > 0 {
		step.index = mfa[0]
	}
	if step.index >= 0 {
		st := p.AuthenticationDetails[step.index]
		step.method, step.at = st.Method, entraStepTime(st.StepDateTime, at)
		if st.ResultDetail != "" {
			step.detail = st.ResultDetail
		}
	}
	if step.method == "" && p.MfaDetail != nil {
		step.method, step.detail = p.MfaDetail.AuthMethod, firstNonEmpty(p.MfaDetail.AuthDetail, step.detail)
	}
	return step
}

// entraStepTime is when a step happened, or at, the sign-in's time, when
// the step's time is missing, absurd or more than an hour before it.
func entraStepTime(raw flexString, at time.Time) time.Time {
	if t, err := parseTime("", raw); err == nil && t.Year() >= 2000 && !t.Before(at.Add(-time.Hour)) {
		return t
	}
	return at
}

// entraType maps the result code, the factor and why the sign-in failed
// (lower case) to an event type; a failed number match changes the factor.
func entraType(code string, factor eventv1.Factor, why string) (eventv1.EventType, eventv1.Factor) {
	switch {
	case code == "0" && isPushFactor(factor):
		return eventv1.EventType_EVENT_TYPE_PUSH_APPROVED, factor
	case code == "0":
		return eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, factor
	case containsAny(why, "fraud"):
		return eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED, factor
	case isPushFactor(factor) && containsAny(why, "did not respond", "timed out", "timeout", "no response"):
		return eventv1.EventType_EVENT_TYPE_PUSH_TIMED_OUT, factor
	case isPushFactor(factor) && containsAny(why, "correct number", "wrong number", "number match"):
		return eventv1.EventType_EVENT_TYPE_NUMBER_CHALLENGE_FAILED, eventv1.Factor_FACTOR_PUSH_NUMBER_MATCH
	case isPushFactor(factor) && containsAny(why, "declined", "denied", "rejected"):
		return eventv1.EventType_EVENT_TYPE_PUSH_DENIED, factor
	default:
		return eventv1.EventType_EVENT_TYPE_LOGIN_FAILED, factor
	}
}

// entraClient is where the sign-in came from.
func entraClient(rec *entraRecord, p *entraSignIn) *eventv1.Client {
	c := &eventv1.Client{Ip: firstNonEmpty(p.IPAddress, rec.CallerIPAddress), UserAgent: p.UserAgent, DeviceId: p.DeviceDetail.DeviceID}
	if p.ASN > 0 && p.ASN < 1<<32 {
		c.Asn = uint32(p.ASN)
	}
	if l := p.Location; l != nil {
		c.Geo = geo(0, 0, l.CountryOrRegion, l.State, l.City)
		if l.GeoCoordinates != nil {
			c.Geo.Latitude, c.Geo.Longitude = float64(l.GeoCoordinates.Latitude), float64(l.GeoCoordinates.Longitude)
		}
	}
	return c
}

// declinedPushes returns, for a successful sign-in e, the push steps that
// failed before the step that succeeded (chosen): pushes the user declined
// or let time out, which count toward bursts and streaks.
func (p *entraSignIn) declinedPushes(e *eventv1.AuthEvent, mfa []int, chosen int, code string, at time.Time) []*eventv1.AuthEvent {
	var out []*eventv1.AuthEvent
	for _, i := range mfa {
		st := p.AuthenticationDetails[i]
		if code != "0" || i >= chosen || !isPushFactor(entraFactor(st.Method)) || st.Succeeded == nil || *st.Succeeded {
			continue
		}
		failed := proto.CloneOf(e)
		failed.EventId = fmt.Sprintf("%s#step%d", e.GetEventId(), i)
		failed.Factor = entraFactor(st.Method)
		failed.Time = timestamppb.New(entraStepTime(st.StepDateTime, at))
		failed.Type = eventv1.EventType_EVENT_TYPE_PUSH_DENIED
		if containsAny(strings.ToLower(st.ResultDetail), "did not respond", "timed out", "timeout", "no response") {
			failed.Type = eventv1.EventType_EVENT_TYPE_PUSH_TIMED_OUT
		}
		out = append(out, pushPair(failed)...)
	}
	return out
}

// entraFactor maps an authenticationMethod to a factor.
func entraFactor(method string) eventv1.Factor {
	m := strings.ToLower(method)
	switch {
	case m == "":
		return eventv1.Factor_FACTOR_UNSPECIFIED
	case strings.Contains(m, "notification"), strings.Contains(m, "push"):
		return eventv1.Factor_FACTOR_PUSH
	case strings.Contains(m, "fido"), strings.Contains(m, "passkey"), strings.Contains(m, "windows hello"), strings.Contains(m, "security key"):
		return eventv1.Factor_FACTOR_WEBAUTHN
	case strings.Contains(m, "certificate"), strings.Contains(m, "x.509"), strings.Contains(m, "smart card"):
		return eventv1.Factor_FACTOR_SMART_CARD
	case strings.Contains(m, "text message"), strings.Contains(m, "sms"):
		return eventv1.Factor_FACTOR_SMS
	case strings.Contains(m, "phone call"), strings.Contains(m, "voice"):
		return eventv1.Factor_FACTOR_VOICE
	case strings.Contains(m, "email"):
		return eventv1.Factor_FACTOR_EMAIL
	case strings.Contains(m, "oath"), strings.Contains(m, "verification code"), strings.Contains(m, "otp"):
		return eventv1.Factor_FACTOR_TOTP
	case strings.Contains(m, "password"):
		return eventv1.Factor_FACTOR_PASSWORD
	}
	return eventv1.Factor_FACTOR_UNSPECIFIED
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
