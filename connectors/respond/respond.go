// Package respond is the contract between notify's outbox and the response
// connectors: an action on one user at one identity provider, and what came
// of it. Connectors (okta, entra, duo, auth0) implement Connector; notify
// runs them as channels, so every action is durable, retried, idempotent by
// its incident and audited.
package respond

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Action is what a response rule asks an identity provider to do.
type Action string

// The actions a connector may support.
const (
	// RevokeSessions ends the user's sessions at the IdP.
	RevokeSessions Action = "revoke_sessions"
	// RevokeTokens also revokes the user's OAuth tokens (Okta).
	RevokeTokens Action = "revoke_tokens"
	// ConfirmCompromised marks the user compromised (Entra ID Protection).
	ConfirmCompromised Action = "confirm_compromised"
	// BlockUser blocks the user from signing in (Auth0).
	BlockUser Action = "block_user"
	// SetUserStatus changes the user's status to Request.Status (Duo:
	// "disabled").
	SetUserStatus Action = "set_user_status"
	// CAEPCredentialChange sends a CAEP credential-change Security Event
	// Token to every SSF receiver (notify's security event channel, not a
	// connector, takes it).
	CAEPCredentialChange Action = "caep_credential_change"
	// CAEPRiskLevelChange sends a CAEP risk-level-change Security Event
	// Token to every SSF receiver.
	CAEPRiskLevelChange Action = "caep_risk_level_change"
)

// Actions lists every action, in a stable order.
var Actions = []Action{RevokeSessions, RevokeTokens, ConfirmCompromised, BlockUser, SetUserStatus, CAEPCredentialChange, CAEPRiskLevelChange}

// Signals reports whether the action is a security event a receiver acts
// on as it sees fit, rather than a call to an identity provider's API.
func (a Action) Signals() bool { return a == CAEPCredentialChange || a == CAEPRiskLevelChange }

// Valid reports whether a is a known action.
func (a Action) Valid() bool {
	for _, k := range Actions {
		if a == k {
			return true
		}
	}
	return false
}

// Revokes reports whether the action logs the user out or locks them out:
// the actions the per-tenant brake counts.
func (a Action) Revokes() bool { return a.Valid() }

// Request is one action on one user.
type Request struct {
	// Tenant the user belongs to.
	Tenant string
	// UserID is the user's id at this IdP (the alias map already applied):
	// an Okta login or id, an Entra object id or UPN, a Duo username, an
	// Auth0 user_id.
	UserID string
	// Action to take.
	Action Action
	// Status for SetUserStatus.
	Status string
	// IncidentID keys the action: the same incident and action is one
	// action, however often it is asked for.
	IncidentID string
	// Reason, for the IdP's audit log where it takes one.
	Reason string
}

// Result is what the IdP did.
type Result struct {
	// Detail says what was done, for the audit trail ("DELETE
	// /api/v1/users/00u1/sessions: 204").
	Detail string
	// IdPUserID is the IdP's own id the user was resolved to.
	IdPUserID string
}

// Connector acts on one identity provider.
type Connector interface {
	// Name identifies the connector ("okta", "entra", "duo", "auth0").
	Name() string
	// Supports reports whether the connector can take action a.
	Supports(a Action) bool
	// Do takes the action. It must honour ctx. An error wrapping
	// ErrPermanent will not succeed on retry (unknown user, no permission);
	// a *RetryAfter asks for a later retry no sooner than its Wait; any other
	// error is retried with backoff.
	Do(ctx context.Context, req Request) (Result, error)
}

// ErrPermanent marks an error a retry cannot fix.
var ErrPermanent = errors.New("permanent")

// Permanent wraps err as permanent.
func Permanent(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrPermanent, fmt.Sprintf(format, args...))
}

// IsPermanent reports whether err will not succeed on retry.
func IsPermanent(err error) bool { return errors.Is(err, ErrPermanent) }

// RetryAfter is a rate limit: retry no sooner than Wait from now.
type RetryAfter struct {
	Wait time.Duration
	Err  error
}

func (e *RetryAfter) Error() string {
	return fmt.Sprintf("rate limited, retry after %s: %v", e.Wait, e.Err)
}

func (e *RetryAfter) Unwrap() error { return e.Err }

// StatusError turns a failed HTTP response into the error Do returns: 429
// (and 503 with a wait) is a *RetryAfter, other 5xx and 408 are retried,
// and other 4xx are permanent (bad credentials, missing permission,
// unknown user: retrying would not help). what names the call
// ("DELETE /api/v1/users/{id}/sessions"); detail is a short, secret-free
// excerpt of the vendor's error.
func StatusError(what string, status int, detail string, wait time.Duration, hasWait bool) error {
	err := fmt.Errorf("%s: HTTP %d%s", what, status, suffix(detail))
	switch {
	case status == 429 || (status == 503 && hasWait):
		if !hasWait {
			wait = 0
		}
		return &RetryAfter{Wait: wait, Err: err}
	case status >= 500 || status == 408:
		return err
	default:
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
}

func suffix(detail string) string {
	if detail == "" {
		return ""
	}
	if len(detail) > 200 {
		detail = detail[:200]
	}
	return " (" + detail + ")"
}
