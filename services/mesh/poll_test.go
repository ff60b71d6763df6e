package mesh_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/connectors/duo/duotest"
	"github.com/pushbackhq/pushback/connectors/okta/oktatest"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/services/mesh"
)

// addFatigueSuccess puts a fatigue attack that worked in the org's System
// Log: pushes from the attacker's address denied one after another, then
// one approved.
func addFatigueSuccess(org *oktatest.Server, login string, end time.Time) {
	start := end.Add(-3 * time.Minute)
	add := func(ev map[string]any) {
		b, _ := json.Marshal(ev)
		org.AddLogEvent(b)
	}
	for i := range 6 {
		at := start.Add(time.Duration(i) * 25 * time.Second)
		add(oktaHookRecord(fmt.Sprintf("%s-push-%d", login, i), "system.push.send_factor_verify_push", "SUCCESS", "", "OKTA_VERIFY_PUSH", login, "203.0.113.66", at))
		add(oktaHookRecord(fmt.Sprintf("%s-deny-%d", login, i), "user.mfa.okta_verify.deny_push", "SUCCESS", "", "OKTA_VERIFY_PUSH", login, "203.0.113.66", at.Add(5*time.Second)))
	}
	add(oktaHookRecord(login+"-push-last", "system.push.send_factor_verify_push", "SUCCESS", "", "OKTA_VERIFY_PUSH", login, "203.0.113.66", end.Add(-10*time.Second)))
	add(oktaHookRecord(login+"-approve", "user.authentication.auth_via_mfa", "SUCCESS", "", "OKTA_VERIFY_PUSH", login, "203.0.113.66", end))
}

// logReads are the System Log requests the org received.
func logReads(org *oktatest.Server) []oktatest.Request {
	var out []oktatest.Request
	for _, r := range org.Requests() {
		if r.Method == http.MethodGet && r.Path == "/api/v1/logs" {
			out = append(out, r)
		}
	}
	return out
}

// TestOktaSystemLogPollingDetectsFatigueSuccess is issue 16's acceptance:
// with only okta-url and okta-token set, and nothing posted to intake, a
// fatigue attack that worked in the Okta System Log shows in the user's
// risk within 30s; restarted on the same data, the mesh polls on from its
// stored cursor instead of asking again with since.
func TestOktaSystemLogPollingDetectsFatigueSuccess(t *testing.T) {
	org := oktatest.NewServer()
	defer org.Close()
	org.AddUser("00u1ada9XyZ", "ada@example.com")
	addFatigueSuccess(org, "ada@example.com", time.Now().UTC().Add(-time.Second))
	dir := t.TempDir()
	load := func() mesh.Config {
		cfg, err := mesh.Load([]string{"--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--data-dir=" + dir,
			"--okta-url=" + org.URL(), "--okta-token=" + org.Token, "--poll-interval=1s"},
			func(k string) string { return credentialsEnv[k] })
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		return cfg
	}
	m := start(t, load())
	sc := scoringv1.NewScoringServiceClient(m.conn)
	eventually(t, 30*time.Second, "APPROVAL_AFTER_BURST in the user's risk", func() bool {
		r, err := sc.GetRisk(as(t, operatorToken), &scoringv1.GetRiskRequest{UserId: "ada@example.com"})
		if err != nil {
			t.Fatalf("GetRisk as an operator: %v", err)
		}
		return hasSignal(r.GetAssessment(), "APPROVAL_AFTER_BURST")
	})
	first := logReads(org)[0]
	if !strings.Contains(first.RawQuery, "since=") || !strings.Contains(first.RawQuery, "sortOrder=ASCENDING") || first.Authorization != "SSWS "+org.Token {
		t.Fatalf("first System Log read %+v, want since and ascending order with the API token", first)
	}
	// Caught up: the poller reads on from the next link.
	eventually(t, 10*time.Second, "a read from the next link", func() bool {
		r := logReads(org)
		return strings.Contains(r[len(r)-1].RawQuery, "after=")
	})
	if err := m.stop(); err != nil {
		t.Fatal(err)
	}
	before := logReads(org)
	last := before[len(before)-1]

	m = start(t, load())
	eventually(t, 10*time.Second, "a System Log read after the restart", func() bool { return len(logReads(org)) > len(before) })
	after := logReads(org)[len(before)]
	if strings.Contains(after.RawQuery, "since=") || after.RawQuery != last.RawQuery {
		t.Fatalf("first read after the restart %q, want the stored next link %q", after.RawQuery, last.RawQuery)
	}
	_ = m
}

// TestOktaPollOff: with okta-poll=false (Event Hooks deliver the events)
// the mesh never reads the System Log, and the connector still acts.
func TestOktaPollOff(t *testing.T) {
	org := oktatest.NewServer()
	defer org.Close()
	cfg, err := mesh.Load([]string{"--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--data-dir=" + t.TempDir(),
		"--okta-url=" + org.URL(), "--okta-token=" + org.Token, "--okta-poll=false", "--poll-interval=1s"},
		func(string) string { return "" })
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	start(t, cfg)
	time.Sleep(1500 * time.Millisecond)
	if r := logReads(org); len(r) != 0 {
		t.Fatalf("the System Log was read with okta-poll=false: %+v", r)
	}
}

func TestPollSettingsValidated(t *testing.T) {
	_, err := mesh.Load([]string{"--poll-interval=10ms", "--poll-backfill=-1h"}, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "poll-interval") || !strings.Contains(err.Error(), "poll-backfill") {
		t.Fatalf("Load = %v, want poll-interval and poll-backfill refused", err)
	}
}

// TestDuoAuthLogPollingDetectsFatigueSuccess is issue 16's acceptance for
// Duo, which has no webhooks: with only duo-url, duo-ikey and duo-skey set
// and nothing posted to intake, a push bombing that worked, in the
// account's authentication log, shows in the user's risk within 30s. Duo
// serves a record two minutes after it happened, so the attack is older.
func TestDuoAuthLogPollingDetectsFatigueSuccess(t *testing.T) {
	account := duotest.New()
	defer account.Close()
	end := time.Now().UTC().Add(-4 * time.Minute)
	for i := range 6 {
		r := duotest.AuthLog(fmt.Sprint("tx-deny-", i), "grace", end.Add(-3*time.Minute+time.Duration(i)*20*time.Second))
		r["reason"], r["result"] = "user_mistake", "denied"
		account.AddAuthLog(r)
	}
	ok := duotest.AuthLog("tx-ok", "grace", end)
	ok["reason"], ok["result"] = "user_approved", "success"
	account.AddAuthLog(ok)
	cfg, err := mesh.Load([]string{"--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--data-dir=" + t.TempDir(),
		"--duo-url=" + account.URL, "--duo-ikey=" + account.IKey, "--poll-interval=1s"},
		func(k string) string {
			if k == "PUSHBACK_DUO_SKEY" {
				return account.SKey
			}
			return credentialsEnv[k]
		})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	m := start(t, cfg)
	sc := scoringv1.NewScoringServiceClient(m.conn)
	eventually(t, 30*time.Second, "APPROVAL_AFTER_BURST in the user's risk", func() bool {
		r, err := sc.GetRisk(as(t, operatorToken), &scoringv1.GetRiskRequest{UserId: "grace"})
		if err != nil {
			t.Fatalf("GetRisk as an operator: %v", err)
		}
		return hasSignal(r.GetAssessment(), "APPROVAL_AFTER_BURST")
	})
	reads := account.AuthLogRequests()
	if len(reads) == 0 || reads[0].Get("mintime") == "" || reads[0].Get("maxtime") == "" {
		t.Fatalf("authentication log reads %v, want signed reads with mintime and maxtime", reads)
	}
}
