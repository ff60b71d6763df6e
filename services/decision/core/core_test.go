package core

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	defaultpolicy "github.com/pushbackhq/pushback/deploy/policy"
	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/services/decision/guard"
	"github.com/pushbackhq/pushback/services/decision/policy"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func defaultPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	p, err := policy.Parse(bytes.NewReader(defaultpolicy.Default))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func push(user string, f eventv1.Factor) *decisionv1.DecideRequest {
	return &decisionv1.DecideRequest{UserId: user, AppId: "vpn", Factor: f, Client: &eventv1.Client{Ip: "203.0.113.9", DeviceId: "x"}}
}

// burst is an assessment in which scoring saw n pushes in every window.
func burst(n int32) *scoringv1.RiskAssessment {
	ra := &scoringv1.RiskAssessment{Signals: []*scoringv1.Signal{{Code: "PUSH_BURST", Weight: 50}, {Code: "DENIAL_STREAK", Weight: 30}}}
	for _, w := range defaultWindows {
		ra.Windows = append(ra.Windows, &scoringv1.WindowCount{Window: durationpb.New(w), Pushes: n})
	}
	return ra
}

// burstScore is burst with the score scoring gave it.
func burstScore(n, score int32) *scoringv1.RiskAssessment {
	ra := burst(n)
	ra.Score = score
	return ra
}

func TestPolicyInputTakesTheLargerCount(t *testing.T) {
	var st guard.State
	for i := range 6 {
		st.Record(guard.Attempt{ID: guard.AttemptID("", "u", fmt.Sprint(i), ""), At: 1000}, guard.Context{}, 1000)
	}
	in := policyInput(push("u", eventv1.Factor_FACTOR_PUSH), burst(2), &st, 1000, false, false)
	if in.Pushes["10m"] != 6 {
		t.Fatalf("pushes[10m] = %d, want the guard's 6 over scoring's 2", in.Pushes["10m"])
	}
	in = policyInput(push("u", eventv1.Factor_FACTOR_PUSH), burst(9), &st, 1000, false, false)
	if in.Pushes["10m"] != 9 {
		t.Fatalf("pushes[10m] = %d, want scoring's 9 over the guard's 6", in.Pushes["10m"])
	}
	in = policyInput(push("u", eventv1.Factor_FACTOR_WEBAUTHN), burst(9), &st, 1000, true, false)
	if in.Pushes["10m"] != 0 || in.Signals["PUSH_BURST"] != 0 || in.Signals["DENIAL_STREAK"] != 0 {
		t.Fatalf("a pushless input still carries push counts: %+v", in)
	}
}

func TestJudge(t *testing.T) {
	pol := defaultPolicy(t)
	const now = int64(1_800_000_000_000)
	tests := []struct {
		name   string
		prior  int // attacker pushes already counted by the guard
		factor eventv1.Factor
		ra     *scoringv1.RiskAssessment
		want   decisionv1.Outcome
	}{
		{"first push, scoring down", 0, eventv1.Factor_FACTOR_PUSH, nil, decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH},
		{"5th push, scoring down", 4, eventv1.Factor_FACTOR_PUSH, nil, decisionv1.Outcome_OUTCOME_DENY},
		{"5th push, scoring saw 1", 4, eventv1.Factor_FACTOR_PUSH, burst(1), decisionv1.Outcome_OUTCOME_DENY},
		{"webauthn after 9 pushes", 9, eventv1.Factor_FACTOR_WEBAUTHN, burst(9), decisionv1.Outcome_OUTCOME_ALLOW},
		// Number matching means nothing without a push: never an answer for it.
		{"webauthn after 9 pushes, scoring down", 9, eventv1.Factor_FACTOR_WEBAUTHN, nil, decisionv1.Outcome_OUTCOME_ALLOW},
		{"smart card after 9 pushes, high score", 9, eventv1.Factor_FACTOR_SMART_CARD, burstScore(9, 70), decisionv1.Outcome_OUTCOME_ALLOW},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var st guard.State
			for i := range tc.prior {
				st.Record(guard.Attempt{ID: guard.AttemptID("", "u", fmt.Sprint("prior-", i), ""), At: now - int64(i)}, guard.Context{IP: "203.0.113.9"}, now)
			}
			req := push("u", tc.factor)
			in := Input{Req: req, Policy: pol, Assessment: tc.ra, Tier: pol.TierOf("vpn"), Now: now, AttemptID: guard.AttemptID("", "u", "this", ""), Budget: 50 * time.Millisecond}
			if tc.ra == nil {
				in.Cause = decisionv1.FailureCause_FAILURE_CAUSE_SCORING_UNAVAILABLE
			}
			before := len(st.Attempts)
			v := Judge(&st, in)
			if v.Outcome != tc.want {
				t.Fatalf("%v (%v), want %v", v.Outcome, v.Reasons, tc.want)
			}
			counted := len(st.Attempts) - before
			if PhishingResistant(tc.factor) != (counted == 0) {
				t.Fatalf("%d attempts counted for a %v attempt", counted, tc.factor)
			}
			// Judging the same attempt again (a retry) counts nothing more.
			Judge(&st, in)
			if len(st.Attempts)-before != counted {
				t.Fatal("a retried attempt was counted twice")
			}
		})
	}
}

func TestClampTime(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct{ in, want time.Time }{
		{now.Add(time.Hour), now},
		{now.Add(-time.Minute), now.Add(-time.Minute)},
		{now.Add(-time.Hour), now.Add(-5 * time.Minute)},
	} {
		if got := ClampTime(c.in, now, 5*time.Minute); !got.Equal(c.want) {
			t.Errorf("ClampTime(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// TestFutureStampedSignInDoesNotVoidLaterCooldowns plays an IdP clock
// running ahead: a phishing-resistant sign-in stamped 4 minutes in the
// future clears the cooldown it followed, and not the one the next burst
// starts a minute later.
func TestFutureStampedSignInDoesNotVoidLaterCooldowns(t *testing.T) {
	pol := defaultPolicy(t)
	const now = int64(1_800_000_000_000)
	var st guard.State
	st.Start(now-time.Minute.Milliseconds(), 15*time.Minute)
	ra := burst(0)
	ra.LastPhishingResistantTime = timestamppb.New(time.UnixMilli(now + 4*time.Minute.Milliseconds()))
	in := Input{Req: push("u", eventv1.Factor_FACTOR_PUSH), Policy: pol, Assessment: ra, Tier: pol.TierOf("vpn"), Now: now,
		AttemptID: guard.AttemptID("", "u", "cleared", ""), Budget: 50 * time.Millisecond}
	if v := Judge(&st, in); !v.Cleared {
		t.Fatal("the sign-in after the cooldown started did not clear it")
	}
	later := now + time.Minute.Milliseconds()
	st.Start(later, 15*time.Minute)
	if !st.Active(later + time.Minute.Milliseconds()) {
		t.Fatal("a cooldown started after the clearing is void: the sign-in's stamped time reached past Pushback's clock")
	}
}
