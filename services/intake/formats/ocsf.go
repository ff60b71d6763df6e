package formats

import (
	"encoding/json"
	"strconv"
	"strings"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
)

// ocsfAuth is an OCSF Authentication event (class_uid 3002).
type ocsfAuth struct {
	ClassUID     flexFloat  `json:"class_uid"`
	ActivityID   flexFloat  `json:"activity_id"`
	StatusID     flexFloat  `json:"status_id"`
	Status       string     `json:"status"`
	StatusDetail string     `json:"status_detail"`
	Message      string     `json:"message"`
	Time         flexString `json:"time"`
	Metadata     struct {
		UID string `json:"uid"`
	} `json:"metadata"`
	User *struct {
		Name      string `json:"name"`
		UID       string `json:"uid"`
		EmailAddr string `json:"email_addr"`
	} `json:"user"`
	SrcEndpoint *struct {
		IP       string `json:"ip"`
		UID      string `json:"uid"`
		Location *struct {
			Lat     flexFloat `json:"lat"`
			Long    flexFloat `json:"long"`
			Country string    `json:"country"`
			Region  string    `json:"region"`
			City    string    `json:"city"`
		} `json:"location"`
		AutonomousSystem *struct {
			Number flexFloat `json:"number"`
			Name   string    `json:"name"`
		} `json:"autonomous_system"`
	} `json:"src_endpoint"`
	Device *struct {
		UID string `json:"uid"`
	} `json:"device"`
	Service *struct {
		UID  string `json:"uid"`
		Name string `json:"name"`
	} `json:"service"`
	Session *struct {
		UID string `json:"uid"`
	} `json:"session"`
	HTTPRequest *struct {
		UserAgent string `json:"user_agent"`
	} `json:"http_request"`
	AuthFactors []struct {
		FactorTypeID flexFloat `json:"factor_type_id"`
		FactorType   string    `json:"factor_type"`
	} `json:"auth_factors"`
}

func ocsfCodec(raw []byte, _ Options) (mapped, []json.RawMessage, string, error) {
	var ev ocsfAuth
	if err := json.Unmarshal(raw, &ev); err != nil {
		return mapped{}, nil, "", err
	}
	class := int(ev.ClassUID)
	if class != 3002 {
		return mapped{skip: "class_uid:" + strconv.Itoa(class)}, nil, "", nil
	}
	activity := int(ev.ActivityID)
	rawType := "3002:" + strconv.Itoa(activity) + ":" + strconv.Itoa(int(ev.StatusID))
	// 1 Logon, 6 Preauth and 99 Other carry authentications; logoff and
	// Kerberos ticket activities do not.
	if activity != 1 && activity != 6 && activity != 99 && activity != 0 {
		return mapped{skip: rawType}, nil, "", nil
	}
	factor := eventv1.Factor_FACTOR_UNSPECIFIED
	for _, f := range ev.AuthFactors {
		if g := ocsfFactor(int(f.FactorTypeID), f.FactorType); g != eventv1.Factor_FACTOR_UNSPECIFIED {
			factor = g
			if g != eventv1.Factor_FACTOR_PASSWORD {
				break
			}
		}
	}
	why := ev.StatusDetail + " " + ev.Message
	push := isPushFactor(factor)
	var typ eventv1.EventType
	switch int(ev.StatusID) {
	case 1:
		typ = eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED
		if push {
			typ = eventv1.EventType_EVENT_TYPE_PUSH_APPROVED
		}
	case 2:
		switch {
		case containsAny(why, "fraud"):
			typ = eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED
		case push && containsAny(why, "timeout", "timed out", "no response", "did not respond", "expired"):
			typ = eventv1.EventType_EVENT_TYPE_PUSH_TIMED_OUT
		case push && containsAny(why, "number"):
			typ, factor = eventv1.EventType_EVENT_TYPE_NUMBER_CHALLENGE_FAILED, eventv1.Factor_FACTOR_PUSH_NUMBER_MATCH
		case push:
			typ = eventv1.EventType_EVENT_TYPE_PUSH_DENIED
		default:
			typ = eventv1.EventType_EVENT_TYPE_LOGIN_FAILED
		}
	default:
		return mapped{skip: rawType}, nil, "", nil
	}
	user := ""
	if ev.User != nil {
		user = firstNonEmpty(ev.User.Name, ev.User.EmailAddr, ev.User.UID)
	}
	if user == "" {
		return mapped{}, nil, "", errField("user.name", "the user is missing")
	}
	at, err := parseTime("time", ev.Time)
	if err != nil {
		return mapped{}, nil, "", err
	}
	id := ev.Metadata.UID
	if id == "" {
		id = syntheticID(raw)
	}
	e := newEvent("ocsf", rawType, id, user, typ, at)
	e.Factor = factor
	if ev.Service != nil {
		e.AppId = firstNonEmpty(ev.Service.UID, ev.Service.Name)
	}
	if ev.Session != nil {
		e.SessionId = ev.Session.UID
	}
	c := &eventv1.Client{}
	if s := ev.SrcEndpoint; s != nil {
		c.Ip, c.DeviceId = s.IP, s.UID
		if l := s.Location; l != nil {
			c.Geo = geo(float64(l.Lat), float64(l.Long), l.Country, l.Region, l.City)
		}
		if a := s.AutonomousSystem; a != nil {
			if a.Number > 0 && a.Number < 1<<32 {
				c.Asn = uint32(a.Number)
			}
			c.AsOrg = a.Name
		}
	}
	if ev.Device != nil && ev.Device.UID != "" {
		c.DeviceId = ev.Device.UID
	}
	if ev.HTTPRequest != nil {
		c.UserAgent = ev.HTTPRequest.UserAgent
	}
	e.Client = c
	if push && typ != eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED && typ != eventv1.EventType_EVENT_TYPE_LOGIN_FAILED {
		return mapped{events: pushPair(e)}, nil, "", nil
	}
	return mapped{events: []*eventv1.AuthEvent{e}}, nil, "", nil
}

// ocsfFactor maps an OCSF Authentication Factor type.
func ocsfFactor(id int, name string) eventv1.Factor {
	switch id {
	case 1:
		return eventv1.Factor_FACTOR_SMS
	case 3:
		return eventv1.Factor_FACTOR_VOICE
	case 5:
		return eventv1.Factor_FACTOR_PUSH
	case 6, 7:
		return eventv1.Factor_FACTOR_TOTP
	case 8:
		return eventv1.Factor_FACTOR_EMAIL
	case 9, 10:
		return eventv1.Factor_FACTOR_WEBAUTHN
	case 11:
		return eventv1.Factor_FACTOR_PASSWORD
	}
	if strings.Contains(strings.ToLower(name), "push") {
		return eventv1.Factor_FACTOR_PUSH
	}
	return eventv1.Factor_FACTOR_UNSPECIFIED
}
