package decision

import "sync/atomic"

// Counters are the decision service's counts. They are plain atomics so that
// tests read them directly and a metrics exporter can observe them without
// the service knowing about it.
type Counters struct {
	// Decisions made (replays excluded).
	Decisions atomic.Int64
	// Replays: calls answered with the stored decision of the same attempt id.
	Replays atomic.Int64
	// FailureModeDecisions: decisions made by a tier's failure mode because
	// scoring did not answer within the budget.
	FailureModeDecisions atomic.Int64
	// RuleErrors: evaluations in which a rule failed (it did not match).
	RuleErrors atomic.Int64
	// ShadowEvaluations: decisions for which a shadow policy was evaluated.
	ShadowEvaluations atomic.Int64
	// ShadowDifferences: decisions whose shadow outcome differed.
	ShadowDifferences atomic.Int64
	// CooldownsCleared by an operator or a phishing-resistant authentication.
	CooldownsCleared atomic.Int64
	// PolicyReloads: new policies put in force by a reload.
	PolicyReloads atomic.Int64
	// PolicyReloadFailures: reloads rejected because the new file was invalid
	// or unreadable (the old policy stayed in force).
	PolicyReloadFailures atomic.Int64
	// AuthFailures: calls rejected for missing or wrong credentials.
	AuthFailures atomic.Int64
	// StoreFailures: decisions answered without being recorded because the
	// store failed (the tier's failure mode applied).
	StoreFailures atomic.Int64
	// Shed: decisions answered without asking scoring because too many
	// calls were already waiting for it (admission control).
	Shed atomic.Int64
	// ClockClamped: attempts whose time lay outside the allowed skew of
	// Pushback's clock and was clamped to it.
	ClockClamped atomic.Int64
	// LateWrites: decisions stored after their answer because the commit
	// missed its deadline; LateWriteFailures: those that failed again.
	LateWrites, LateWriteFailures atomic.Int64
	// FollowUpsDropped: follow-ups of suppressed pushes dropped because too
	// many were waiting (a peer slow or down).
	FollowUpsDropped atomic.Int64
	// GuardConflicts: commits that met attempts of the same user recorded
	// elsewhere (another replica) and judged again with them.
	GuardConflicts atomic.Int64
	// RiskChanges: changes of the risk feed the response rules evaluated;
	// RespondMatches: response rules that matched them; RespondFailures:
	// passes over the feed that failed (and were retried);
	// ShadowRespondDifferences: changes on which the shadow policy's
	// response rules matched differently.
	RiskChanges, RespondMatches, RespondFailures, ShadowRespondDifferences atomic.Int64
}
