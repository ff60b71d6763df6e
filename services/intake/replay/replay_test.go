package replay

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/services/decision/policy"
	"github.com/pushbackhq/pushback/services/intake/formats"
	"github.com/pushbackhq/pushback/services/scoring/engine"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const testPolicy = `
version: test
rules:
  - name: burst-number-match
    when: pushes["5m"] >= 3
    outcome: REQUIRE_NUMBER_MATCH
  - name: burst-deny
    when: pushes["10m"] >= 5
    outcome: DENY
  - name: fraud-reported
    when: '"FRAUD_REPORTED" in signals'
    outcome: DENY
`

func mustPolicy(t testing.TB, src string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ev(id, user string, typ eventv1.EventType, at time.Time, ip string) *eventv1.AuthEvent {
	return &eventv1.AuthEvent{EventId: id, UserId: user, Type: typ, Factor: eventv1.Factor_FACTOR_PUSH,
		Time: timestamppb.New(at), AppId: "vpn", Client: &eventv1.Client{Ip: ip}}
}

// attack is push bombing: six pushes in three minutes, four denied, then
// an approval; a second user gets one push from the same source.
func attack() []*eventv1.AuthEvent {
	t0 := time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)
	var out []*eventv1.AuthEvent
	for i := range 6 {
		at := t0.Add(time.Duration(i) * 30 * time.Second)
		out = append(out, ev(fmt.Sprintf("p%d", i), "victim", eventv1.EventType_EVENT_TYPE_PUSH_SENT, at, "203.0.113.66"))
		if i < 4 {
			out = append(out, ev(fmt.Sprintf("d%d", i), "victim", eventv1.EventType_EVENT_TYPE_PUSH_DENIED, at.Add(10*time.Second), ""))
		}
	}
	out = append(out, ev("a", "victim", eventv1.EventType_EVENT_TYPE_PUSH_APPROVED, t0.Add(170*time.Second), ""))
	out = append(out, ev("other-p", "bystander", eventv1.EventType_EVENT_TYPE_PUSH_SENT, t0.Add(200*time.Second), "203.0.113.66"))
	out = append(out, ev("other-a", "bystander", eventv1.EventType_EVENT_TYPE_PUSH_APPROVED, t0.Add(210*time.Second), ""))
	out = append(out, ev("f", "victim", eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED, t0.Add(20*time.Minute), ""))
	out = append(out, ev("p-after", "victim", eventv1.EventType_EVENT_TYPE_PUSH_SENT, t0.Add(21*time.Minute), "203.0.113.66"))
	return out
}

func TestReplayAttack(t *testing.T) {
	en := New(Options{Scoring: engine.DefaultConfig(), Policy: mustPolicy(t, testPolicy)})
	var findings []Finding
	for _, e := range attack() {
		if f, ok := en.Process(e); ok {
			findings = append(findings, f)
		}
	}
	outcomes := map[string]string{}
	for _, f := range findings {
		if f.Outcome != "" {
			outcomes[f.EventID] = f.Outcome + " " + strings.Join(f.Rules, ",")
		}
	}
	want := map[string]string{
		"p2":      "REQUIRE_NUMBER_MATCH burst-number-match",
		"p3":      "REQUIRE_NUMBER_MATCH burst-number-match",
		"p4":      "DENY burst-number-match,burst-deny",
		"p5":      "DENY burst-number-match,burst-deny,cooldown",
		"p-after": "DENY fraud-reported,cooldown",
	}
	for id, w := range want {
		if outcomes[id] != w {
			t.Errorf("%s: outcome %q, want %q", id, outcomes[id], w)
		}
	}
	if _, ok := outcomes["p0"]; ok {
		t.Errorf("first push should be allowed without a finding: %v", outcomes)
	}
	var burst bool
	for _, f := range findings {
		if f.EventID == "p2" && slices.Contains(f.Signals, engine.SignalPushBurst) {
			burst = true
		}
	}
	if !burst {
		t.Errorf("PUSH_BURST did not fire at the third push: %+v", findings)
	}

	rep := en.Report()
	checks := []struct {
		name      string
		got, want int
	}{
		{"pushes", rep.Pushes.Sent, 8},
		{"approved", rep.Pushes.Approved, 2},
		{"denied", rep.Pushes.Denied, 4},
		{"approvals after repeated prompts", rep.FatiguedApprovals, 1},
		{"number match", rep.Policy.NumberMatch, 2},
		{"deny", rep.Policy.Deny, 3},
		{"allow", rep.Policy.Allow, 3},
		{"bursts", rep.Bursts, 1},
		{"fraud", rep.Fraud, 1},
		{"users on push alone", rep.PushAloneUsers, 2},
		{"apps on push alone", rep.PushAloneApps, 1},
		{"max per 10m", rep.Pushes.MaxPer10m, 6},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}
	if len(rep.Fatigued) != 1 || rep.Fatigued[0].User != "victim" {
		t.Errorf("fatigued users %+v", rep.Fatigued)
	}
	if len(rep.SpraySources) != 1 || rep.SpraySources[0] != (Source{IP: "203.0.113.66", Users: 2, Pushes: 8}) {
		t.Errorf("sources %+v", rep.SpraySources)
	}
}

// TestReplayCandidatePolicy shows that a stricter candidate changes outcomes.
func TestReplayCandidatePolicy(t *testing.T) {
	strict := mustPolicy(t, `
rules:
  - name: any-retry
    when: pushes["5m"] >= 2
    outcome: DENY
    cooldown: false
`)
	en := New(Options{Scoring: engine.DefaultConfig(), Policy: strict})
	for _, e := range attack() {
		en.Process(e)
	}
	if got := en.Report().Policy.Deny; got != 5 {
		t.Fatalf("strict policy denies %d pushes, want 5", got)
	}
}

func TestLoadOrdersAndDeduplicates(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "formats", "testdata", "okta", "event_hook.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The same delivery twice and the export of its first events in reverse order.
	_, _, err = Load(formats.Okta, []Input{
		{Name: "a", Reader: bytes.NewReader(data)},
		{Name: "b", Reader: bytes.NewReader(data)},
		{Name: "c", Reader: strings.NewReader("{\"eventType\":\"user.session.start\",\"published\":\"2001-01-01T00:00:00Z\",\"uuid\":\"early\",\"actor\":{\"alternateId\":\"x@example.com\",\"type\":\"User\"},\"outcome\":{\"result\":\"SUCCESS\"}}\nnot json")},
	}, formats.Options{}, nil)
	if err == nil || !strings.Contains(err.Error(), "c: malformed JSON") {
		t.Fatalf("want a syntax error naming input c, got %v", err)
	}
	evs, st, err := Load(formats.Okta, []Input{{Name: "a", Reader: bytes.NewReader(data)}, {Name: "b", Reader: bytes.NewReader(data)}}, formats.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 11 || st.Duplicates != 11 || st.Skipped["user.session.end"] != 2 {
		t.Fatalf("stats %+v", st)
	}
	if !slices.IsSortedFunc(evs, func(a, b *eventv1.AuthEvent) int { return a.GetTime().AsTime().Compare(b.GetTime().AsTime()) }) {
		t.Fatal("events not in time order")
	}
}

// synthetic returns n native events as NDJSON: users get pushes, answers and
// logins, one event a second, a few of them under attack.
func synthetic(n int) []byte {
	var b bytes.Buffer
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	types := []eventv1.EventType{eventv1.EventType_EVENT_TYPE_PUSH_SENT, eventv1.EventType_EVENT_TYPE_PUSH_APPROVED,
		eventv1.EventType_EVENT_TYPE_PUSH_SENT, eventv1.EventType_EVENT_TYPE_PUSH_DENIED, eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED}
	for i := range n {
		u := fmt.Sprintf("user%04d@example.com", i%2000)
		if i%50 < 10 {
			u = "target@example.com"
		}
		e := &eventv1.AuthEvent{EventId: fmt.Sprintf("e%08d", i), UserId: u, Type: types[i%len(types)], Factor: eventv1.Factor_FACTOR_PUSH,
			Time: timestamppb.New(t0.Add(time.Duration(i) * time.Second)), AppId: "vpn",
			Client: &eventv1.Client{Ip: fmt.Sprintf("198.51.100.%d", i%200), Geo: &eventv1.Geo{Latitude: 52.37, Longitude: 4.89, Country: "NL"}}}
		j, _ := protojson.Marshal(e)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// BenchmarkReplay measures the whole offline path: parse native NDJSON,
// order, score, evaluate the default-like policy and build the report.
func BenchmarkReplay(b *testing.B) {
	const n = 100_000
	data := synthetic(n)
	pol := mustPolicy(b, testPolicy)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		evs, _, err := Load(formats.Native, []Input{{Name: "bench", Reader: bytes.NewReader(data)}}, formats.Options{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		en := New(Options{Scoring: engine.DefaultConfig(), Policy: pol})
		for _, e := range evs {
			en.Process(e)
		}
		_ = en.Report()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEngine measures scoring and policy alone on parsed events.
func BenchmarkEngine(b *testing.B) {
	const n = 100_000
	evs, _, err := Load(formats.Native, []Input{{Name: "bench", Reader: bytes.NewReader(synthetic(n))}}, formats.Options{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	pol := mustPolicy(b, testPolicy)
	b.ResetTimer()
	for range b.N {
		en := New(Options{Scoring: engine.DefaultConfig(), Policy: pol})
		for _, e := range evs {
			en.Process(e)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkLoad measures reading, de-duplicating and ordering alone.
func BenchmarkLoad(b *testing.B) {
	const n = 100_000
	data := synthetic(n)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		if _, _, err := Load(formats.Native, []Input{{Name: "bench", Reader: bytes.NewReader(data)}}, formats.Options{}, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}

// TestReplayReadsClientsAsTheServiceDoes: replay folds events through the
// same conversion as the scoring service, so an IdP's anonymizer flag
// discounts travel in a backtest as it does live.
func TestReplayReadsClientsAsTheServiceDoes(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)
	home := &eventv1.Client{Ip: "198.51.100.7", Asn: 7922, Geo: &eventv1.Geo{Latitude: 40.71, Longitude: -74.0, AccuracyKm: 20, Country: "US"}}
	score := map[string]int{}
	for _, anonymizer := range []string{"", engine.AnonProxy} {
		en := New(Options{Scoring: engine.DefaultConfig(), Policy: mustPolicy(t, testPolicy)})
		login := ev("login", "dana", eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, t0, "")
		login.Client = home
		en.Process(login)
		push := ev("push", "dana", eventv1.EventType_EVENT_TYPE_PUSH_SENT, t0.Add(10*time.Minute), "")
		push.Client = &eventv1.Client{Ip: "203.0.113.77", Asn: 64496, Anonymizer: anonymizer,
			Geo: &eventv1.Geo{Latitude: 52.37, Longitude: 4.89, AccuracyKm: 20, Country: "NL"}}
		f, ok := en.Process(push)
		if !ok || !slices.Contains(f.Signals, engine.SignalImpossibleTravel) {
			t.Fatalf("anonymizer %q: finding %+v, want impossible travel", anonymizer, f)
		}
		score[anonymizer] = f.Score
	}
	if score[engine.AnonProxy] >= score[""] {
		t.Fatalf("travel behind a flagged proxy scored %d, plain travel %d: the flag was not applied", score[engine.AnonProxy], score[""])
	}
}

// TestReplayCooldownAsTheService: a phishing-resistant sign-in after a
// cooldown started ends it in the backtest as it does live.
func TestReplayCooldownAsTheService(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	en := New(Options{Scoring: engine.DefaultConfig(), Policy: mustPolicy(t, testPolicy+"cooldown: {base: 1h, max: 4h, factor: 2}\n")})
	var last Finding
	for i := range 5 {
		last, _ = en.Process(ev(fmt.Sprint("p", i), "vic", eventv1.EventType_EVENT_TYPE_PUSH_SENT, t0.Add(time.Duration(i)*30*time.Second), "203.0.113.66"))
	}
	if last.Outcome != "DENY" {
		t.Fatalf("setup: %+v", last)
	}
	key := ev("k", "vic", eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, t0.Add(12*time.Minute), "198.51.100.7")
	key.Factor = eventv1.Factor_FACTOR_WEBAUTHN
	en.Process(key)
	f, _ := en.Process(ev("after", "vic", eventv1.EventType_EVENT_TYPE_PUSH_SENT, t0.Add(15*time.Minute), "198.51.100.7"))
	if slices.Contains(f.Rules, "cooldown") {
		t.Fatalf("a push after a WebAuthn sign-in is still held by the cooldown: %+v", f)
	}
}
