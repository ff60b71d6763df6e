package replay

import (
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/services/scoring/engine"
)

// Thresholds of the posture summary.
const (
	// An approval after this many pushes in 10 minutes, or after this many
	// denied or unanswered pushes in a row, counts as approving after
	// repeated prompts.
	RepeatedPrompts = 3
	RepeatedDenials = 2
	// burstGap separates two bursts of the same user.
	burstGap = 10 * time.Minute
	// topN bounds every list in the report.
	topN = 10
)

// Report is the posture summary: the questions a security team asks of
// its MFA programme.
type Report struct {
	Events int            `json:"events"`
	Users  int            `json:"users"`
	Types  map[string]int `json:"event_types"`

	Pushes   PushVolumes `json:"pushes"`
	Policy   PolicyStats `json:"policy"`
	Fatigued []UserCount `json:"users_approving_after_repeated_prompts"`
	// FatiguedApprovals counts every such approval.
	FatiguedApprovals int         `json:"approvals_after_repeated_prompts"`
	BurstsPerUser     []UserCount `json:"bursts_per_user"`
	Bursts            int         `json:"bursts"`
	SpraySources      []Source    `json:"push_sources_reaching_several_users"`
	FraudReports      []UserCount `json:"fraud_reports_per_user"`
	Fraud             int         `json:"fraud_reports"`
	PushAloneUsers    int         `json:"users_relying_on_push_alone"`
	PushAloneApps     int         `json:"apps_relying_on_push_alone"`
	PushAloneUserList []string    `json:"users_relying_on_push_alone_sample,omitempty"`
	PushAloneAppList  []string    `json:"apps_relying_on_push_alone_sample,omitempty"`
}

// PushVolumes counts pushes and their answers.
type PushVolumes struct {
	Sent     int `json:"sent"`
	Approved int `json:"approved"`
	Denied   int `json:"denied"`
	TimedOut int `json:"timed_out"`
	// Retries are pushes to a user who already had one in the previous 5 minutes.
	Retries int `json:"retries"`
	// MaxPer10m is the most pushes any user got in 10 minutes.
	MaxPer10m int `json:"max_per_user_10m"`
}

// PolicyStats counts what the policy would have decided for every push.
type PolicyStats struct {
	Allow             int            `json:"allow"`
	NumberMatch       int            `json:"require_number_match"`
	PhishingResistant int            `json:"require_phishing_resistant"`
	Deny              int            `json:"deny"`
	Rules             map[string]int `json:"rules,omitempty"`
}

// Suppressed is how many pushes the policy would not have sent as asked.
func (p PolicyStats) Suppressed() int { return p.Deny + p.PhishingResistant }

// UserCount is a user and how often something happened to them.
type UserCount struct {
	User  string `json:"user"`
	Count int    `json:"count"`
}

// Source is a client IP and the users it pushed to.
type Source struct {
	IP     string `json:"ip"`
	Users  int    `json:"users"`
	Pushes int    `json:"pushes"`
}

type reporter struct {
	events    int
	types     map[string]int
	users     map[string]struct{}
	pushes    PushVolumes
	policy    PolicyStats
	fatigued  map[string]int
	fatiguedN int
	bursts    map[string]int
	lastBurst map[string]time.Time
	sources   map[string]*sourceAcc
	fraud     map[string]int
	// factor use among successful authentications
	userPlain, userStrong map[string]bool
	appPlain, appStrong   map[string]bool
}

type sourceAcc struct {
	users  map[string]struct{}
	pushes int
}

func newReporter() *reporter {
	return &reporter{
		types: map[string]int{}, users: map[string]struct{}{}, fatigued: map[string]int{},
		bursts: map[string]int{}, lastBurst: map[string]time.Time{}, sources: map[string]*sourceAcc{},
		fraud: map[string]int{}, userPlain: map[string]bool{}, userStrong: map[string]bool{},
		appPlain: map[string]bool{}, appStrong: map[string]bool{},
		policy: PolicyStats{Rules: map[string]int{}},
	}
}

// observe records one applied event. prior is the user's pushes in the 10
// minutes before it and priorStreak their denial streak before it.
func (r *reporter) observe(e *eventv1.AuthEvent, ra *scoringv1.RiskAssessment, outcome decisionv1.Outcome, prior int32, priorStreak int) {
	r.events++
	r.types[shortType(e.GetType())]++
	u := e.GetUserId()
	if e.GetTenant() != "" {
		u = e.GetTenant() + "/" + u
	}
	r.users[u] = struct{}{}
	at := e.GetTime().AsTime()
	for _, w := range ra.GetWindows() {
		if w.GetWindow().AsDuration() == 10*time.Minute {
			r.pushes.MaxPer10m = max(r.pushes.MaxPer10m, int(w.GetPushes()))
		}
	}
	for _, s := range ra.GetSignals() {
		if s.GetCode() == engine.SignalPushBurst {
			if last, ok := r.lastBurst[u]; !ok || at.Sub(last) > burstGap {
				r.bursts[u]++
			}
			r.lastBurst[u] = at
		}
	}
	switch e.GetType() {
	case eventv1.EventType_EVENT_TYPE_PUSH_SENT, eventv1.EventType_EVENT_TYPE_PUSH_REQUESTED:
		r.pushes.Sent++
		for _, w := range ra.GetWindows() {
			if w.GetWindow().AsDuration() == 5*time.Minute && w.GetPushes() > 1 {
				r.pushes.Retries++
			}
		}
		if ip := e.GetClient().GetIp(); ip != "" {
			s := r.sources[ip]
			if s == nil {
				s = &sourceAcc{users: map[string]struct{}{}}
				r.sources[ip] = s
			}
			s.pushes++
			if len(s.users) < 10000 {
				s.users[u] = struct{}{}
			}
		}
		switch outcome {
		case decisionv1.Outcome_OUTCOME_ALLOW:
			r.policy.Allow++
		case decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH:
			r.policy.NumberMatch++
		case decisionv1.Outcome_OUTCOME_REQUIRE_PHISHING_RESISTANT:
			r.policy.PhishingResistant++
		case decisionv1.Outcome_OUTCOME_DENY:
			r.policy.Deny++
		}
	case eventv1.EventType_EVENT_TYPE_PUSH_APPROVED:
		r.pushes.Approved++
		if prior >= RepeatedPrompts || priorStreak >= RepeatedDenials {
			r.fatigued[u]++
			r.fatiguedN++
		}
		r.factorUse(u, e)
	case eventv1.EventType_EVENT_TYPE_PUSH_DENIED, eventv1.EventType_EVENT_TYPE_NUMBER_CHALLENGE_FAILED:
		r.pushes.Denied++
	case eventv1.EventType_EVENT_TYPE_PUSH_TIMED_OUT:
		r.pushes.TimedOut++
	case eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED:
		r.fraud[u]++
	case eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED:
		r.factorUse(u, e)
	}
}

func (r *reporter) countRules(rules []string) {
	for _, name := range rules {
		r.policy.Rules[name]++
	}
}

// factorUse notes which factors a successful authentication used.
func (r *reporter) factorUse(u string, e *eventv1.AuthEvent) {
	app := e.GetAppId()
	switch e.GetFactor() {
	case eventv1.Factor_FACTOR_PUSH:
		r.userPlain[u] = true
		if app != "" {
			r.appPlain[app] = true
		}
	case eventv1.Factor_FACTOR_PUSH_NUMBER_MATCH, eventv1.Factor_FACTOR_WEBAUTHN, eventv1.Factor_FACTOR_SMART_CARD:
		r.userStrong[u] = true
		if app != "" {
			r.appStrong[app] = true
		}
	}
}

func (r *reporter) build() Report {
	rep := Report{Events: r.events, Users: len(r.users), Types: r.types, Pushes: r.pushes, Policy: r.policy,
		FatiguedApprovals: r.fatiguedN}
	rep.Fatigued = top(r.fatigued)
	rep.BurstsPerUser = top(r.bursts)
	for _, c := range r.bursts {
		rep.Bursts += c
	}
	rep.FraudReports = top(r.fraud)
	for _, c := range r.fraud {
		rep.Fraud += c
	}
	spread := map[string]int{}
	for ip, s := range r.sources {
		if len(s.users) >= 2 {
			spread[ip] = len(s.users)
		}
	}
	for _, ip := range sortedKeys(spread) {
		if len(rep.SpraySources) == topN {
			break
		}
		rep.SpraySources = append(rep.SpraySources, Source{IP: ip, Users: spread[ip], Pushes: r.sources[ip].pushes})
	}
	alone := func(plain, strong map[string]bool) (int, []string) {
		m := map[string]int{}
		for k := range plain {
			if !strong[k] {
				m[k] = 1
			}
		}
		keys := sortedKeys(m)
		return len(keys), keys[:min(len(keys), topN)]
	}
	rep.PushAloneUsers, rep.PushAloneUserList = alone(r.userPlain, r.userStrong)
	rep.PushAloneApps, rep.PushAloneAppList = alone(r.appPlain, r.appStrong)
	return rep
}

func top(m map[string]int) []UserCount {
	var out []UserCount
	for _, k := range sortedKeys(m) {
		if len(out) == topN {
			break
		}
		out = append(out, UserCount{User: k, Count: m[k]})
	}
	return out
}
