package notify

import (
	"encoding/json"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
)

// CAEP event type URIs (OpenID Continuous Access Evaluation Profile 1.0).
const (
	EventSessionRevoked       = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	EventAssuranceLevelChange = "https://schemas.openid.net/secevent/caep/event-type/assurance-level-change"
	EventCredentialChange     = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
	EventRiskLevelChange      = "https://schemas.openid.net/secevent/caep/event-type/risk-level-change"
)

// RiskLevels are the levels of a CAEP risk-level-change, lowest first.
var RiskLevels = []string{"LOW", "MEDIUM", "HIGH"}

// SubjectID is an SSF subject identifier (RFC 9493 formats, plus the
// "complex" format of the Shared Signals Framework).
type SubjectID struct {
	Format  string     `json:"format"`
	Email   string     `json:"email,omitempty"`
	ID      string     `json:"id,omitempty"`
	User    *SubjectID `json:"user,omitempty"`
	Session *SubjectID `json:"session,omitempty"`
	Tenant  *SubjectID `json:"tenant,omitempty"`
}

// UserSubject is the subject a receiver finds the user by: the "email"
// format when the known email address, or else the user id, is a plain
// email address (receivers such as Google Workspace match users by email
// only), the "opaque" format with the user id otherwise.
func UserSubject(userID, email string) *SubjectID {
	for _, a := range []string{email, userID} {
		if IsEmailAddress(a) {
			return &SubjectID{Format: "email", Email: a}
		}
	}
	if userID == "" {
		// Only a malformed email was known: the receiver gets what there
		// is, as an opaque id it may or may not know.
		userID = email
	}
	return &SubjectID{Format: "opaque", ID: userID}
}

// maxEmailBytes is the longest address SMTP carries (RFC 5321 section
// 4.5.3.1.3: a path of 256 octets with its angle brackets).
const maxEmailBytes = 254

// IsEmailAddress reports whether s is one plain ASCII email address,
// local@domain, and nothing else. An id is sent as an email only when a
// receiver can match it to a mailbox without interpretation, so it is
// stricter than net/mail: no display name ("Alice <a@b.com>"), no list
// ("a@b.com,c@d.com"), no comment, quoting or surrounding space (what
// net/mail parses must be s itself), no internationalised characters (a
// Cyrillic "а" that looks like "a" would name another account), a domain
// of at least two DNS labels ("a@b" is a host, not a mail domain) and at
// most 254 bytes.
func IsEmailAddress(s string) bool {
	if s == "" || len(s) > maxEmailBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	local, domain := s[:at], s[at+1:]
	if len(local) == 0 || len(local) > 64 {
		return false
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if !dnsLabel(l) {
			return false
		}
	}
	// A top-level domain is never all digits: "a@10.0.0.1" is an address
	// literal without its brackets.
	return strings.Trim(labels[len(labels)-1], "0123456789") != ""
}

// dnsLabel reports whether l is a letter-digit-hyphen label (RFC 1035,
// RFC 5890 A-labels included).
func dnsLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// caepEvent is the body of a CAEP event: the optional claims every event
// may carry, then each event type's own.
type caepEvent struct {
	EventTimestamp   int64             `json:"event_timestamp"`
	InitiatingEntity string            `json:"initiating_entity"`
	ReasonAdmin      map[string]string `json:"reason_admin,omitempty"`
	ReasonUser       map[string]string `json:"reason_user,omitempty"`
	// assurance-level-change
	Namespace       string `json:"namespace,omitempty"`
	ChangeDirection string `json:"change_direction,omitempty"`
	// assurance-level-change and risk-level-change
	CurrentLevel  string `json:"current_level,omitempty"`
	PreviousLevel string `json:"previous_level,omitempty"`
	// credential-change
	CredentialType string `json:"credential_type,omitempty"`
	ChangeType     string `json:"change_type,omitempty"`
	// risk-level-change
	Principal  string `json:"principal,omitempty"`
	RiskReason string `json:"risk_reason,omitempty"`
}

// BuildSET turns a security event notification into SET claims. The jti is
// the delivery id: a retried SET is the same SET, which a receiver drops.
func BuildSET(d *notifyv1.Delivery, issuer, audience string, now time.Time) (*SETClaims, error) {
	n := d.GetNotification()
	se := n.GetSecurityEvent()
	user := UserSubject(n.GetUserId(), n.GetUserEmail())
	sub := user
	if n.GetSessionId() != "" || n.GetTenant() != "" {
		sub = &SubjectID{Format: "complex", User: user}
		if n.GetSessionId() != "" {
			sub.Session = &SubjectID{Format: "opaque", ID: n.GetSessionId()}
		}
		if n.GetTenant() != "" {
			sub.Tenant = &SubjectID{Format: "opaque", ID: n.GetTenant()}
		}
	}
	at := now
	if n.GetTime() != nil {
		at = n.GetTime().AsTime()
	}
	ev := caepEvent{EventTimestamp: at.Unix(), InitiatingEntity: "policy"}
	if r := se.GetReasonAdmin(); r != "" {
		ev.ReasonAdmin = map[string]string{"en": r}
	}
	if r := se.GetReasonUser(); r != "" {
		ev.ReasonUser = map[string]string{"en": r}
	}
	var uri string
	switch se.GetType() {
	case notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_SESSION_REVOKED:
		uri = EventSessionRevoked
	case notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_ASSURANCE_LEVEL_CHANGE:
		uri = EventAssuranceLevelChange
		ev.Namespace, ev.CurrentLevel, ev.PreviousLevel, ev.ChangeDirection = se.GetNamespace(), se.GetCurrentLevel(), se.GetPreviousLevel(), se.GetChangeDirection()
	case notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_CREDENTIAL_CHANGE:
		uri = EventCredentialChange
		ev.CredentialType, ev.ChangeType = se.GetCredentialType(), se.GetChangeType()
		if ev.CredentialType == "" || ev.ChangeType == "" {
			return nil, fmt.Errorf("credential-change needs credential_type and change_type")
		}
	case notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_RISK_LEVEL_CHANGE:
		uri = EventRiskLevelChange
		ev.CurrentLevel, ev.PreviousLevel, ev.Principal, ev.RiskReason = se.GetCurrentLevel(), se.GetPreviousLevel(), se.GetPrincipal(), se.GetRiskReason()
		if ev.Principal == "" {
			ev.Principal = "USER"
		}
		if !validRiskLevel(ev.CurrentLevel) || (ev.PreviousLevel != "" && !validRiskLevel(ev.PreviousLevel)) {
			return nil, fmt.Errorf("risk-level-change levels %q, %q: want LOW, MEDIUM or HIGH", ev.CurrentLevel, ev.PreviousLevel)
		}
	default:
		return nil, fmt.Errorf("security event type %v is not supported", se.GetType())
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	return &SETClaims{
		Issuer: issuer, ID: d.GetDeliveryId(), IssuedAt: now.Unix(), Audience: audience, TxnID: n.GetDecisionId(),
		Subject: sub, Events: map[string]json.RawMessage{uri: body},
	}, nil
}

func validRiskLevel(l string) bool { return slices.Contains(RiskLevels, l) }
