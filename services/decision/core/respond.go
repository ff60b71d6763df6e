package core

import (
	"fmt"
	"strings"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/services/decision/policy"
)

// signalCause names the cause of a signal that points at one act (an
// approval after a burst, a journey, a fraud report), so that a signal
// lingering in the user's risk after its cause is told from a new one. ok
// is false for signals that measure a rate (a burst, a streak, a spray):
// those are never fresh, their rules act on counts.
func signalCause(sig *scoringv1.Signal) (cause string, ok bool) {
	switch sig.GetCode() {
	case "APPROVAL_AFTER_BURST":
		if t := sig.GetBurst().GetApprovedAt(); t != nil {
			return fmt.Sprintf("%s@%d", sig.GetCode(), t.AsTime().UnixMilli()), true
		}
	case "IMPOSSIBLE_TRAVEL", "RESPONSE_LOCATION_MISMATCH":
		if c := sig.GetTravel().GetCurrent(); c.GetTime() != nil {
			return fmt.Sprintf("%s@%d@%s", sig.GetCode(), c.GetTime().AsTime().UnixMilli(), c.GetIp()), true
		}
	case "FRAUD_REPORTED":
		if t := sig.GetFraud().GetReportedAt(); t != nil {
			return fmt.Sprintf("%s@%d", sig.GetCode(), t.AsTime().UnixMilli()), true
		}
	}
	return "", false
}

// Causes returns the causes of an assessment's signals.
func Causes(ra *scoringv1.RiskAssessment) []string {
	var out []string
	for _, sig := range ra.GetSignals() {
		if c, ok := signalCause(sig); ok {
			out = append(out, c)
		}
	}
	return out
}

// eventSuccess reports whether an event completed a sign-in: a login
// succeeded or a push was approved.
func eventSuccess(t eventv1.EventType) bool {
	return t == eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED || t == eventv1.EventType_EVENT_TYPE_PUSH_APPROVED
}

// RespondInput is what the response rules see of a risk change. known
// holds the causes already seen for the user; a signal whose cause is not
// in it is fresh.
func RespondInput(c *scoringv1.RiskChange, known map[string]bool) policy.RespondInput {
	ra, e := c.GetAssessment(), c.GetEvent()
	in := policy.RespondInput{
		Input: policy.Input{
			User:    ra.GetUserId(),
			App:     e.GetAppId(),
			Factor:  e.GetFactor().String(),
			Score:   int(ra.GetScore()),
			Signals: make(map[string]int, len(ra.GetSignals())),
			Pushes:  make(map[string]int, len(ra.GetWindows())),
			Denied:  make(map[string]int, len(ra.GetWindows())),
			Client:  clientVars(e.GetClient()),
		},
		Tenant:     c.GetTenant(),
		Confidence: make(map[string]float64, len(ra.GetSignals())),
		Event: map[string]any{
			"type":    strings.TrimPrefix(e.GetType().String(), "EVENT_TYPE_"),
			"success": eventSuccess(e.GetType()),
			"factor":  e.GetFactor().String(),
			"app":     e.GetAppId(),
			"source":  e.GetSource().GetIdp(),
		},
	}
	for _, sig := range ra.GetSignals() {
		in.Signals[sig.GetCode()] = int(sig.GetWeight())
		in.Confidence[sig.GetCode()] = sig.GetConfidence()
		if cause, ok := signalCause(sig); ok && !known[cause] {
			in.Fresh = append(in.Fresh, sig.GetCode())
		}
	}
	for _, w := range ra.GetWindows() {
		name := formatWindow(w.GetWindow().AsDuration())
		in.Pushes[name] = int(w.GetPushes())
		in.Denied[name] = int(w.GetDenied() + w.GetTimedOut())
	}
	return in
}
