// Package replay backtests scoring and a decision policy on recorded IdP
// events, offline: events are applied in event-time order to in-memory
// per-user scoring state with a simulated clock (the event time), and every
// push the IdP sent or was asked to send is treated as the attempt it would
// have asked Decide about. It reports what fired, when, and what the policy
// would have decided, plus a posture summary of the MFA programme.
package replay

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/userid"
	"github.com/pushbackhq/pushback/services/decision/core"
	"github.com/pushbackhq/pushback/services/decision/guard"
	"github.com/pushbackhq/pushback/services/decision/policy"
	"github.com/pushbackhq/pushback/services/intake/formats"
	"github.com/pushbackhq/pushback/services/scoring/engine"
)

// Input is one source of events.
type Input struct {
	Name   string
	Reader io.Reader
}

// LoadStats describes what reading the inputs found.
type LoadStats struct {
	Records    int
	Events     int
	Duplicates int
	Skipped    map[string]int
	// Errors holds the first record errors (Invalid counts them all).
	Errors  []string
	Invalid int
}

// maxErrors bounds the record errors kept for the report.
const maxErrors = 20

// Load reads every input in format f, drops events whose (tenant, event
// id) was already read, and returns them in event-time order (stable, so
// a push and its answer logged at the same instant keep their order).
// User ids are canonicalised by o.UserIDs, the default rule when nil, as
// intake and Decide canonicalise them: a log that spells one user two ways
// replays as one user. progress, when set, is called with the bytes
// consumed of the current input.
func Load(f formats.Format, inputs []Input, o formats.Options, progress func(n int64)) ([]*eventv1.AuthEvent, LoadStats, error) {
	if o.UserIDs == nil {
		o.UserIDs = userid.NewRules(userid.Default, nil)
	}
	st := LoadStats{Skipped: map[string]int{}}
	var out []*eventv1.AuthEvent
	seen := map[string]struct{}{}
	for _, in := range inputs {
		r := formats.NewReader(f, in.Reader, o)
		for n := 0; ; n++ {
			if progress != nil && n%1024 == 0 {
				progress(r.Offset())
			}
			evs, skip, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			var re *formats.RecordError
			if errors.As(err, &re) {
				st.Records++
				st.Invalid++
				if len(st.Errors) < maxErrors {
					st.Errors = append(st.Errors, in.Name+": "+re.Error())
				}
				continue
			}
			if err != nil {
				return nil, st, fmt.Errorf("%s: %w", in.Name, err)
			}
			st.Records++
			if skip != "" {
				st.Skipped[truncate(skip, 64)]++
			}
			for _, e := range evs {
				k := e.GetTenant() + "\x00" + e.GetEventId()
				if _, dup := seen[k]; dup {
					st.Duplicates++
					continue
				}
				seen[k] = struct{}{}
				out = append(out, e)
			}
		}
		if progress != nil {
			progress(r.Offset())
		}
	}
	slices.SortStableFunc(out, func(a, b *eventv1.AuthEvent) int {
		return cmp.Compare(a.GetTime().AsTime().UnixNano(), b.GetTime().AsTime().UnixNano())
	})
	st.Events = len(out)
	return out, st, nil
}

// Finding is one event at which a signal fired or the policy would not
// simply have allowed the push.
type Finding struct {
	Time    time.Time `json:"time"`
	Tenant  string    `json:"tenant,omitempty"`
	User    string    `json:"user"`
	App     string    `json:"app,omitempty"`
	EventID string    `json:"event_id"`
	Event   string    `json:"event"`
	IP      string    `json:"ip,omitempty"`
	Score   int       `json:"score"`
	Signals []string  `json:"signals"`
	// Outcome is what the policy would have decided; only for pushes.
	Outcome string   `json:"outcome,omitempty"`
	Rules   []string `json:"rules,omitempty"`
	Reasons []string `json:"reasons,omitempty"`
}

// Options configures an Engine.
type Options struct {
	Scoring engine.Config
	Policy  *policy.Policy
}

// Engine replays events. It is not safe for concurrent use.
type Engine struct {
	cfg engine.Config
	pol *policy.Policy
	// sources is the spray state of every source, as scoring keeps it in
	// its store.
	sources *engine.MemSources
	users   map[userKey]*user
	report  *reporter
	// PolicyErrors counts rule evaluations that failed (the rule did not match).
	PolicyErrors int
}

type userKey struct{ tenant, user string }

type user struct {
	state engine.UserState
	// guard is the decision service's per-user attempt and cooldown state.
	guard guard.State
}

// New returns an engine with empty state.
func New(o Options) *Engine {
	return &Engine{cfg: o.Scoring, pol: o.Policy, sources: engine.NewMemSources(), users: map[userKey]*user{}, report: newReporter()}
}

// Process applies one event (events must come in event-time order, with
// user ids canonical as Load returns them) and returns the finding it
// produced, if any.
//
// The clock is the event's time. Scoring applies the event as the scoring
// service does, spray counts included. A push the IdP sent or was asked to
// send is the attempt Decide would have been asked about: scoring records
// it as Decide has it recorded (a phishing-resistant factor, which sends
// no push, is assessed without being recorded), and the decision core
// judges it over the user's guard state.
func (en *Engine) Process(e *eventv1.AuthEvent) (Finding, bool) {
	obs, ok := engine.ObservationOf(e)
	if !ok {
		return Finding{}, false
	}
	k := userKey{e.GetTenant(), e.GetUserId()}
	u := en.users[k]
	if u == nil {
		u = &user{}
		en.users[k] = u
	}
	at := e.GetTime().AsTime()
	if en.cfg.Expired(&u.state, at) {
		// The service drops the state of a user idle for longer than
		// IdleTTL (so does its store), and the user starts afresh.
		u.state = engine.UserState{}
	}
	prior := en.cfg.Count(&u.state, at, 10*time.Minute).GetPushes()
	priorStreak := u.state.Streak
	attempt := obs.Kind == engine.ObsPushSent || obs.Kind == engine.ObsAttempt
	var ra *scoringv1.RiskAssessment
	if attempt && obs.PhishingResistant {
		// The in-memory spray state never fails.
		ra, _ = en.cfg.Inspect(en.sources, e.GetTenant(), e.GetUserId(), &u.state, obs)
	} else {
		var applied bool
		if ra, applied, _ = en.cfg.Observe(en.sources, e.GetTenant(), e.GetUserId(), &u.state, obs); !applied {
			return Finding{}, false
		}
	}
	var res policy.Result
	outcome := decisionv1.Outcome_OUTCOME_UNSPECIFIED
	if attempt && en.pol != nil {
		res = en.judge(u, e, ra)
		outcome = res.Outcome
		en.report.countRules(res.Matched)
	}
	en.report.observe(e, ra, outcome, prior, priorStreak)
	if len(ra.GetSignals()) == 0 && (outcome == decisionv1.Outcome_OUTCOME_UNSPECIFIED || outcome == decisionv1.Outcome_OUTCOME_ALLOW) {
		return Finding{}, false
	}
	f := Finding{
		Time: at, Tenant: e.GetTenant(), User: e.GetUserId(), App: e.GetAppId(), EventID: e.GetEventId(),
		Event: shortType(e.GetType()), IP: e.GetClient().GetIp(), Score: int(ra.GetScore()),
		Signals: make([]string, 0, len(ra.GetSignals())),
	}
	for _, s := range ra.GetSignals() {
		f.Signals = append(f.Signals, s.GetCode())
	}
	if outcome != decisionv1.Outcome_OUTCOME_UNSPECIFIED {
		f.Outcome = shortOutcome(outcome)
		f.Rules, f.Reasons = res.Matched, res.Reasons
	}
	return f, true
}

// judge decides the attempt e as the decision service decides a Decide
// request: the same core over the user's guard state, the request as
// Decide passes it on (factor included: an unspecified factor stays
// unspecified), on a clock that is the event's time. Decide clamps an
// attempt's time to its clock; here the two are one, so the clamp leaves
// it as it is.
func (en *Engine) judge(u *user, e *eventv1.AuthEvent, ra *scoringv1.RiskAssessment) policy.Result {
	req := &decisionv1.DecideRequest{
		UserId: e.GetUserId(), AppId: e.GetAppId(), Factor: e.GetFactor(), Tenant: e.GetTenant(),
		Client: e.GetClient(), Time: e.GetTime(), SessionId: e.GetSessionId(),
	}
	v := core.Judge(&u.guard, core.Input{
		Req: req, Policy: en.pol, Assessment: ra, Tier: en.pol.TierOf(e.GetAppId()),
		Now: e.GetTime().AsTime().UnixMilli(), AttemptID: guard.AttemptID(e.GetTenant(), e.GetUserId(), "", e.GetEventId()),
	})
	if v.RuleError != nil {
		en.PolicyErrors++
	}
	return v.Result
}

// Report returns the posture summary of everything processed so far.
func (en *Engine) Report() Report { return en.report.build() }

func shortType(t eventv1.EventType) string {
	s := t.String()
	if len(s) > len("EVENT_TYPE_") {
		return s[len("EVENT_TYPE_"):]
	}
	return s
}

func shortOutcome(o decisionv1.Outcome) string {
	s := o.String()
	if len(s) > len("OUTCOME_") {
		return s[len("OUTCOME_"):]
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// sortedKeys returns m's keys ordered by descending count, then name.
func sortedKeys[K cmp.Ordered](m map[K]int) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if m[out[i]] != m[out[j]] {
			return m[out[i]] > m[out[j]]
		}
		return out[i] < out[j]
	})
	return out
}
