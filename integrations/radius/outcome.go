package radius

import (
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// outcome is what the MFA proxy's answer says about a login.
type outcome int

const (
	outcomeAccepted outcome = iota
	outcomeRejected
	outcomeTimedOut
)

// sourceIdP names the gate as the source of the events it reports.
const sourceIdP = "radius"

// reportOutcome reports what happened to an attempt to intake, as scoring
// reads it: a push (or phone call) approved, denied or unanswered; a
// passcode login succeeded or failed. RADIUS does not say whether an
// Access-Reject came from the password or from the second factor; a
// rejected push attempt is reported as denied.
func (g *Gate) reportOutcome(at attempt, o outcome) {
	if g.report == nil {
		return
	}
	push := at.factor == eventv1.Factor_FACTOR_PUSH || at.factor == eventv1.Factor_FACTOR_VOICE
	var typ eventv1.EventType
	var raw string
	switch {
	case o == outcomeAccepted && push:
		typ, raw = eventv1.EventType_EVENT_TYPE_PUSH_APPROVED, "Access-Accept"
	case o == outcomeRejected && push:
		typ, raw = eventv1.EventType_EVENT_TYPE_PUSH_DENIED, "Access-Reject"
	case o == outcomeTimedOut && push:
		typ, raw = eventv1.EventType_EVENT_TYPE_PUSH_TIMED_OUT, "timeout"
	case o == outcomeAccepted:
		typ, raw = eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, "Access-Accept"
	case o == outcomeRejected:
		typ, raw = eventv1.EventType_EVENT_TYPE_LOGIN_FAILED, "Access-Reject"
	default:
		return
	}
	e := &eventv1.AuthEvent{
		// One event per attempt and result: a report sent twice is
		// dropped by intake as a duplicate.
		EventId: at.id + ":" + typ.String(),
		Tenant:  g.cfg.Tenant,
		UserId:  at.user,
		Type:    typ,
		Time:    timestamppb.New(g.now()),
		AppId:   at.app,
		Factor:  at.factor,
		Source:  &eventv1.Source{Idp: sourceIdP, RawEventType: raw},
	}
	if at.clientIP != "" {
		e.Client = &eventv1.Client{Ip: at.clientIP}
	}
	g.report.report(e)
}
