package replay

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/pkg/userid"
	"github.com/pushbackhq/pushback/services/intake/formats"
	"github.com/pushbackhq/pushback/services/scoring/engine"
)

// spelledLog is an Okta System Log export in which one user's five pushes
// are logged under five spellings of the user, two minutes apart.
func spelledLog(tenant string) string {
	t0 := time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)
	var b strings.Builder
	for i, user := range []string{"bob@example.com", "Bob@Example.com", "BOB@EXAMPLE.COM", " bob@example.com ", "ｂｏｂ@example.com"} {
		fmt.Fprintf(&b, `{"uuid":"p%d","published":%q,"eventType":"system.push.send_factor_verify_push","actor":{"type":"User","alternateId":%q},"client":{"ipAddress":"203.0.113.66"},"outcome":{"result":"SUCCESS"}}`+"\n",
			i, t0.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), user)
	}
	return b.String()
}

// TestReplayCountsEverySpellingAsOneUser: a backtest sees the burst the
// mesh would have seen, however the log spelled the user.
func TestReplayCountsEverySpellingAsOneUser(t *testing.T) {
	evs, _, err := Load(formats.Okta, []Input{{Name: "log", Reader: strings.NewReader(spelledLog(""))}}, formats.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	en := New(Options{Scoring: engine.DefaultConfig(), Policy: mustPolicy(t, testPolicy)})
	var last Finding
	for _, e := range evs {
		if f, ok := en.Process(e); ok {
			last = f
		}
	}
	if last.User != "bob@example.com" || last.Outcome != "DENY" {
		t.Fatalf("last finding %+v, want bob@example.com denied by the burst", last)
	}
	if got := en.Report().Users; got != 1 {
		t.Fatalf("report counts %d users, want 1", got)
	}
}

// TestReplayAppliesTheTenantsRule: a tenant whose identity provider has
// case-sensitive ids replays its spellings as the users they are, and every
// event keeps the spelling its log had.
func TestReplayAppliesTheTenantsRule(t *testing.T) {
	rules := userid.NewRules(userid.Fold, map[string]userid.Rule{"acme": userid.Exact})
	evs, _, err := Load(formats.Okta, []Input{{Name: "log", Reader: strings.NewReader(spelledLog(""))}}, formats.Options{Tenant: "acme", UserIDs: rules}, nil)
	if err != nil {
		t.Fatal(err)
	}
	en := New(Options{Scoring: engine.DefaultConfig(), Policy: mustPolicy(t, testPolicy)})
	for _, e := range evs {
		if f, ok := en.Process(e); ok && f.Outcome == "DENY" {
			t.Fatalf("acme's distinct users were counted as one: %+v", f)
		}
	}
	// Only the white space around " bob@example.com " is not part of the id.
	if got := en.Report().Users; got != 4 {
		t.Fatalf("report counts %d users, want 4", got)
	}
	evs, _, err = Load(formats.Okta, []Input{{Name: "log", Reader: strings.NewReader(spelledLog(""))}}, formats.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		if want := []string{"", "Bob@Example.com", "BOB@EXAMPLE.COM", " bob@example.com ", "ｂｏｂ@example.com"}[i]; e.GetRawUserId() != want || e.GetUserId() != "bob@example.com" {
			t.Errorf("event %d: user %q raw %q, want bob@example.com and %q", i, e.GetUserId(), e.GetRawUserId(), want)
		}
	}
}
