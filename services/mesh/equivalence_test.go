package mesh_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/services/decision"
	"github.com/pushbackhq/pushback/services/intake/replay"
	"github.com/pushbackhq/pushback/services/mesh"
	"github.com/pushbackhq/pushback/services/scoring/engine"
	"github.com/pushbackhq/pushback/services/scoring/scenario"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// verdict is what one event came to: the signals scoring saw (sorted) and,
// for a push attempt, the outcome and the rules that matched.
type verdict struct {
	signals string
	outcome string
	rules   string
}

// TestReplayAgreesWithTheMesh replays one recorded stream (a push burst
// whose pushes go unanswered until the user gives in, a fraud report and
// the push after it, impossible travel, a spray from one IP to many users
// with history, and a user going about their day) through replay and
// through a running mesh, and checks that every event came to the same
// signals and every push attempt to the same outcome and rules: a backtest
// says what enforcing the policy would have done.
//
// The mesh is asked as an inline deployment asks it: each push attempt is
// a Decide call, everything else the IdP logs through intake. Its cooldowns
// and attempt counts run on the mesh's own clock, which the stream cannot
// set, so the stream is recorded compressed (an hour of attack in a minute,
// ending before the test starts): every window and cooldown holds all of it
// on either clock.
func TestReplayAgreesWithTheMesh(t *testing.T) {
	t0 := time.Now().Add(-90 * time.Second).Truncate(time.Millisecond)
	stream := equivalenceStream(t0)
	pol, err := decision.LoadPolicy("")
	if err != nil {
		t.Fatal(err)
	}

	want := map[string]verdict{}
	en := replay.New(replay.Options{Scoring: engine.DefaultConfig(), Policy: pol})
	for _, e := range stream {
		f, _ := en.Process(e)
		v := verdict{signals: sortedCodes(f.Signals)}
		if e.GetType() == eventv1.EventType_EVENT_TYPE_PUSH_REQUESTED {
			v.outcome, v.rules = f.Outcome, strings.Join(f.Rules, ",")
			if v.outcome == "" {
				// Replay reports no finding for a plain allow.
				v.outcome = "ALLOW"
			}
		}
		want[e.GetEventId()] = v
	}
	if en.PolicyErrors != 0 {
		t.Fatalf("replay: %d rule evaluations failed", en.PolicyErrors)
	}
	// The stream must exercise what it is meant to, or agreeing means little.
	seen, outcomes := map[string]bool{}, map[string]bool{}
	for _, v := range want {
		for _, c := range strings.Split(v.signals, ",") {
			seen[c] = true
		}
		outcomes[v.outcome] = true
	}
	for _, code := range []string{engine.SignalPushBurst, engine.SignalDenialStreak, engine.SignalApprovalAfterBurst,
		engine.SignalFraudReported, engine.SignalImpossibleTravel, engine.SignalPushSpray} {
		if !seen[code] {
			t.Errorf("replay never saw %s: the stream does not exercise it", code)
		}
	}
	for _, o := range []string{"ALLOW", "REQUIRE_NUMBER_MATCH", "DENY", "REQUIRE_PHISHING_RESISTANT"} {
		if !outcomes[o] {
			t.Errorf("replay never answered %s: the stream does not exercise it", o)
		}
	}

	cfg := mesh.Default()
	// Outcomes are compared, not latency: scoring gets all the time a
	// shared machine may need.
	cfg.Decision.Budget = 10 * time.Second
	cfg.Scoring.GeoIPDB = ""
	m := startWith(t, cfg, mesh.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dc, ic, sc := decisionv1.NewDecisionServiceClient(m.conn), intakev1.NewIntakeServiceClient(m.conn), scoringv1.NewScoringServiceClient(m.conn)
	got := map[string]verdict{}
	for _, e := range stream {
		if e.GetType() != eventv1.EventType_EVENT_TYPE_PUSH_REQUESTED {
			res, err := ic.Ingest(ctx, &intakev1.IngestRequest{Events: []*eventv1.AuthEvent{e}})
			if err != nil || res.GetAccepted() != 1 {
				t.Fatalf("ingest %s: %v (%v)", e.GetEventId(), err, res)
			}
			continue
		}
		resp, err := dc.Decide(ctx, &decisionv1.DecideRequest{
			UserId: e.GetUserId(), AppId: e.GetAppId(), Factor: e.GetFactor(), Tenant: e.GetTenant(),
			Client: e.GetClient(), Time: e.GetTime(), SessionId: e.GetSessionId(), AttemptId: e.GetEventId(),
		})
		if err != nil {
			t.Fatalf("decide %s: %v", e.GetEventId(), err)
		}
		if resp.GetFailureMode() != decisionv1.FailureMode_FAILURE_MODE_UNSPECIFIED {
			t.Fatalf("decide %s answered by the failure mode (%v): %v", e.GetEventId(), resp.GetFailureCause(), resp.GetReasons())
		}
		got[e.GetEventId()] = verdict{
			signals: sortedCodes(signalCodes(resp.GetRisk())),
			outcome: strings.TrimPrefix(resp.GetOutcome().String(), "OUTCOME_"),
			rules:   strings.Join(resp.GetMatchedRules(), ","),
		}
	}
	if time.Since(t0) > 4*time.Minute {
		// Decide clamps an attempt's time to 5 minutes behind its clock.
		t.Fatalf("the stream took %s to play: its first attempts may have been clamped", time.Since(t0))
	}
	// What the logged events came to, as the risk-change feed has it (an
	// event without a signal makes no change).
	after := ""
	for {
		resp, err := sc.ListRiskChanges(ctx, &scoringv1.ListRiskChangesRequest{After: after, PageSize: 1000, MaxWait: durationpb.New(0), LoggedOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range resp.GetChanges() {
			got[c.GetEvent().GetEventId()] = verdict{signals: sortedCodes(signalCodes(c.GetAssessment()))}
		}
		if len(resp.GetChanges()) == 0 {
			break
		}
		after = resp.GetChanges()[len(resp.GetChanges())-1].GetChangeId()
	}

	for _, e := range stream {
		id := e.GetEventId()
		t.Logf("%-16s %-14s %+v", id, strings.TrimPrefix(e.GetType().String(), "EVENT_TYPE_"), got[id])
		if w, g := want[id], got[id]; w != g {
			t.Errorf("%s %s of %s at +%s:\n  replay %+v\n  mesh   %+v", id, strings.TrimPrefix(e.GetType().String(), "EVENT_TYPE_"),
				e.GetUserId(), e.GetTime().AsTime().Sub(t0), w, g)
		}
	}
}

func signalCodes(ra *scoringv1.RiskAssessment) []string {
	var out []string
	for _, s := range ra.GetSignals() {
		out = append(out, s.GetCode())
	}
	return out
}

func sortedCodes(codes []string) string {
	codes = slices.Clone(codes)
	slices.Sort(codes)
	return strings.Join(codes, ",")
}

// equivalenceStream is the scenario generator's attacks on a few users
// with a day of history, the attacks compressed sixty-fold from t0 (a
// minute of the attack is a second of the stream). Each push appears once, as the
// attempt an inline deployment asks Decide about (PUSH_REQUESTED), with
// the IdP's answers to it.
func equivalenceStream(t0 time.Time) []*eventv1.AuthEvent {
	home := func(user string, i int) engine.ClientInfo {
		return engine.ClientInfo{IP: fmt.Sprintf("198.51.100.%d", 10+i), ASN: 7922, DeviceID: "laptop-" + user,
			Lat: 40.7128, Lon: -74.0060, AccuracyKm: 20, HasGeo: true, Country: "US", City: "New York"}
	}
	phone := func(user string) engine.ClientInfo {
		return engine.ClientInfo{IP: "100.64.1.2", ASN: 21928, DeviceID: "phone-" + user,
			Lat: 40.7, Lon: -74.0, AccuracyKm: 100, HasGeo: true, Country: "US", City: "New York"}
	}
	bomber := engine.ClientInfo{IP: "203.0.113.66", ASN: 64496, DeviceID: "kali",
		Lat: 6.5244, Lon: 3.3792, AccuracyKm: 50, HasGeo: true, Country: "NG", City: "Lagos"}
	reporter := engine.ClientInfo{IP: "203.0.113.77", ASN: 64497,
		Lat: 52.52, Lon: 13.405, AccuracyKm: 50, HasGeo: true, Country: "DE", City: "Berlin"}
	tokyo := engine.ClientInfo{IP: "192.0.2.44", ASN: 64498, DeviceID: "vm-1",
		Lat: 35.6762, Lon: 139.6503, AccuracyKm: 20, HasGeo: true, Country: "JP", City: "Tokyo"}
	sprayer := engine.ClientInfo{IP: "192.0.2.99", ASN: 64511,
		Lat: 55.7558, Lon: 37.6173, AccuracyKm: 50, HasGeo: true, Country: "RU", City: "Moscow"}

	users := []string{"victim", "reporter", "traveller", "alice"}
	sprayed := []string{"spray0", "spray1", "spray2", "spray3", "spray4", "spray5", "spray6"}
	var evs []scenario.Event
	for i, u := range append(slices.Clone(users), sprayed...) {
		// A day of history: a sign-in from home, and the phone enrolled.
		at := t0.Add(-24*time.Hour + time.Duration(i)*time.Minute)
		evs = append(evs,
			scenario.Event{User: u, Obs: engine.Observation{ID: u + "-login", Kind: engine.ObsLoginSucceeded, At: at, Client: home(u, i)}},
			scenario.Event{User: u, Obs: engine.Observation{ID: u + "-enrol", Kind: engine.ObsFactorEnrolled, At: at.Add(time.Minute), Client: home(u, i), Responder: phone(u)}})
	}
	// Push bombing until the victim gives in.
	evs = append(evs, scenario.FatigueAttack{User: "victim", Start: t0, Pushes: 7, Spacing: 30 * time.Second,
		Attacker: bomber, Phone: phone("victim"), Approve: true}.Events()...)
	// Two pushes, the second reported as fraud, then one more try.
	evs = append(evs, scenario.FatigueAttack{Name: "fraud", User: "reporter", Start: t0.Add(10 * time.Minute), Pushes: 2, Spacing: time.Minute,
		Attacker: reporter, Phone: phone("reporter"), Fraud: true}.Events()...)
	evs = append(evs, scenario.Event{User: "reporter", Attack: "fraud", Obs: engine.Observation{ID: "reporter-again", Kind: engine.ObsAttempt,
		At: t0.Add(14 * time.Minute), Client: reporter}})
	// A sign-in at home, and half an hour later a push from Tokyo.
	evs = append(evs, scenario.Travel("traveller", t0.Add(15*time.Minute), 30*time.Minute, home("traveller", 2), tokyo)...)
	// One IP pushing to seven users, twenty seconds apart.
	evs = append(evs, scenario.Spray(sprayed, t0.Add(20*time.Minute), 20*time.Second, sprayer)...)
	// Alice signs in from home twice and approves on her phone.
	for i, at := range []time.Time{t0.Add(5 * time.Minute), t0.Add(40 * time.Minute)} {
		evs = append(evs,
			scenario.Event{User: "alice", Obs: engine.Observation{ID: fmt.Sprint("alice-push-", i), Kind: engine.ObsAttempt, At: at, Client: home("alice", 3)}},
			scenario.Event{User: "alice", Obs: engine.Observation{ID: fmt.Sprint("alice-ok-", i), Kind: engine.ObsPushApproved, At: at.Add(10 * time.Second),
				Client: home("alice", 3), Responder: phone("alice")}})
	}

	var out []*eventv1.AuthEvent
	for _, e := range evs {
		if e.Obs.Kind == engine.ObsPushSent {
			// The attempt before it stands for the push.
			continue
		}
		at := e.Obs.At
		if d := at.Sub(t0); d > 0 {
			at = t0.Add(d / 60).Truncate(time.Millisecond)
		}
		out = append(out, authEvent(e, at))
	}
	slices.SortStableFunc(out, func(a, b *eventv1.AuthEvent) int { return a.GetTime().AsTime().Compare(b.GetTime().AsTime()) })
	return out
}

// authEvent is a scenario event as an IdP log (or, for an attempt, an
// inline caller) reports it.
func authEvent(e scenario.Event, at time.Time) *eventv1.AuthEvent {
	types := map[engine.ObservationKind]eventv1.EventType{
		engine.ObsAttempt:        eventv1.EventType_EVENT_TYPE_PUSH_REQUESTED,
		engine.ObsPushApproved:   eventv1.EventType_EVENT_TYPE_PUSH_APPROVED,
		engine.ObsPushDenied:     eventv1.EventType_EVENT_TYPE_PUSH_DENIED,
		engine.ObsPushTimedOut:   eventv1.EventType_EVENT_TYPE_PUSH_TIMED_OUT,
		engine.ObsFraudReported:  eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED,
		engine.ObsLoginSucceeded: eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED,
		engine.ObsFactorEnrolled: eventv1.EventType_EVENT_TYPE_FACTOR_ENROLLED,
	}
	typ, ok := types[e.Obs.Kind]
	if !ok {
		panic(fmt.Sprintf("no event type for observation kind %d", e.Obs.Kind))
	}
	factor := eventv1.Factor_FACTOR_PUSH
	if e.Obs.PhishingResistant {
		factor = eventv1.Factor_FACTOR_WEBAUTHN
	}
	return &eventv1.AuthEvent{EventId: e.Obs.ID, UserId: e.User, Type: typ, Time: timestamppb.New(at), AppId: "vpn", Factor: factor,
		Client: client(e.Obs.Client), Responder: client(e.Obs.Responder)}
}

func client(ci engine.ClientInfo) *eventv1.Client {
	if ci == (engine.ClientInfo{}) {
		return nil
	}
	c := &eventv1.Client{Ip: ci.IP, DeviceId: ci.DeviceID, Asn: ci.ASN, AsOrg: ci.ASOrg, Anonymizer: ci.Anonymizer}
	if ci.HasGeo {
		c.Geo = &eventv1.Geo{Latitude: ci.Lat, Longitude: ci.Lon, AccuracyKm: ci.AccuracyKm, Country: ci.Country, City: ci.City}
	}
	return c
}
