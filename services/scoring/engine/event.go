package engine

import (
	"net/netip"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/pkg/geo"
)

// kindOf maps an event type to the observation scoring makes of it; false
// for types scoring does not use.
func kindOf(t eventv1.EventType) (ObservationKind, bool) {
	switch t {
	case eventv1.EventType_EVENT_TYPE_PUSH_SENT:
		return ObsPushSent, true
	case eventv1.EventType_EVENT_TYPE_PUSH_APPROVED:
		return ObsPushApproved, true
	case eventv1.EventType_EVENT_TYPE_PUSH_DENIED:
		return ObsPushDenied, true
	case eventv1.EventType_EVENT_TYPE_PUSH_TIMED_OUT:
		return ObsPushTimedOut, true
	case eventv1.EventType_EVENT_TYPE_PUSH_SUPPRESSED:
		return ObsPushSuppressed, true
	case eventv1.EventType_EVENT_TYPE_PUSH_REQUESTED:
		return ObsAttempt, true
	case eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED:
		return ObsFraudReported, true
	case eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED:
		return ObsLoginSucceeded, true
	case eventv1.EventType_EVENT_TYPE_LOGIN_FAILED:
		return ObsLoginFailed, true
	case eventv1.EventType_EVENT_TYPE_NUMBER_CHALLENGE_FAILED:
		return ObsNumberChallengeFailed, true
	case eventv1.EventType_EVENT_TYPE_FACTOR_ENROLLED:
		return ObsFactorEnrolled, true
	case eventv1.EventType_EVENT_TYPE_PRIMARY_AUTH_SUCCEEDED:
		return ObsPrimaryAuth, true
	}
	return 0, false
}

// ObservationOf converts an event into what the engine folds in; ok is
// false for a type scoring does not use. Clients are taken as the event
// carries them (the service adds GeoIP data on top).
func ObservationOf(e *eventv1.AuthEvent) (Observation, bool) {
	kind, ok := kindOf(e.GetType())
	if !ok {
		return Observation{}, false
	}
	return Observation{
		ID: "event:" + e.GetEventId(), Kind: kind, At: e.GetTime().AsTime(),
		Client: ClientInfoOf(e.GetClient()), Responder: ClientInfoOf(e.GetResponder()),
		PhishingResistant: PhishingResistant(e.GetFactor()),
	}, true
}

// ClientInfoOf converts a contract client (nil is an unknown one).
func ClientInfoOf(c *eventv1.Client) ClientInfo {
	if c == nil {
		return ClientInfo{}
	}
	ci := ClientInfo{IP: canonicalIP(c.GetIp()), DeviceID: c.GetDeviceId(), ASN: c.GetAsn(), ASOrg: c.GetAsOrg(), Anonymizer: c.GetAnonymizer()}
	if g := c.GetGeo(); g != nil {
		ci.Country, ci.City = g.GetCountry(), g.GetCity()
		ci.Lat, ci.Lon, ci.AccuracyKm = g.GetLatitude(), g.GetLongitude(), g.GetAccuracyKm()
		ci.HasGeo = geo.Known(ci.Lat, ci.Lon)
	}
	return ci
}

// canonicalIP writes an address one way whatever way it came
// (::ffff:192.0.2.1 as 192.0.2.1, 2001:DB8::1 as 2001:db8::1), so that
// spray counting and the same-IP check see one source; text that is not an
// address is kept as it is.
func canonicalIP(ip string) string {
	if a, err := netip.ParseAddr(ip); err == nil {
		return a.Unmap().WithZone("").String()
	}
	return ip
}

// PhishingResistant reports whether f resists phishing (and sends no push).
func PhishingResistant(f eventv1.Factor) bool {
	return f == eventv1.Factor_FACTOR_WEBAUTHN || f == eventv1.Factor_FACTOR_SMART_CARD
}
