package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/connectors/okta/oktatest"
	"github.com/pushbackhq/pushback/services/mesh"
)

// TestIncidentsAgainstARunningMesh: a fraud report arrives in the logs;
// the default policy's fraud-reported rule alerts and revokes the user's
// Okta sessions; `pushback incidents` lists the incident and shows the
// action with its result.
func TestIncidentsAgainstARunningMesh(t *testing.T) {
	org := oktatest.NewServer()
	defer org.Close()
	org.AddUser("00u1mallory", "mallory@example.com")
	m := startMeshWith(t, "", "", func(c *mesh.Config) {
		c.Connectors.Okta.URL, c.Connectors.Okta.Token = org.URL(), org.Token
		c.Auth.IntakeToken = "a-log-shipper-token-0123456789"
	})
	report := fmt.Sprintf(`{"uuid":"rep-1","published":%q,"eventType":"user.account.report_suspicious_activity_by_enduser",`+
		`"actor":{"id":"00u1mallory","type":"User","alternateId":"mallory@example.com"},"client":{"ipAddress":"198.51.100.7"},"outcome":{"result":"SUCCESS"}}`,
		time.Now().UTC().Format(time.RFC3339Nano))
	req, _ := http.NewRequest(http.MethodPost, "http://"+m.httpAddr+"/v1/ingest/okta", strings.NewReader(report))
	req.Header.Set("Authorization", "Bearer a-log-shipper-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ingest: %d", resp.StatusCode)
	}
	var out string
	deadline := time.Now().Add(20 * time.Second)
	for {
		var code int
		code, out, _ = runCmd("incidents", "list", "--addr", m.grpcAddr, "--token", explainToken)
		if code == 0 && strings.Contains(out, "fraud-reported") && len(org.Revoked()) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no incident with the action within 20s:\n%s\nrevoked %v", out, org.Revoked())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(out, "mallory@example.com") || !strings.Contains(out, "FRAUD_REPORTED") {
		t.Fatalf("list:\n%s", out)
	}
	id := strings.Fields(strings.Split(out, "\n")[1])[0]
	deadline = time.Now().Add(10 * time.Second)
	for {
		code, show, errs := runCmd("incidents", "show", "--addr", m.grpcAddr, "--token", explainToken, id)
		if code != 0 {
			t.Fatalf("show exited %d: %s", code, errs)
		}
		if strings.Contains(show, "revoke_sessions at okta (rule fraud-reported): done") && strings.Contains(show, "00u1mallory") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("show:\n%s", show)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, out, _ := runCmd("incidents", "show", "--addr", m.grpcAddr, "--token", explainToken, "--json", id); code != 0 || !strings.Contains(out, `"result"`) {
		t.Fatalf("--json exited %d:\n%s", code, out)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"incidents", "list", "--addr", m.grpcAddr, "--token", hookToken}, 1, "PermissionDenied"},
		{[]string{"incidents", "show", "--addr", m.grpcAddr, "--token", explainToken, "06h0000000000000000000000z"}, 1, "NotFound"},
		{[]string{"incidents", "show", "--addr", m.grpcAddr, "--token", explainToken}, 2, "Usage: pushback incidents"},
		{[]string{"incidents", "release", "--addr", m.grpcAddr, "--token", explainToken}, 2, "--tenant"},
		{[]string{"incidents", "frobnicate"}, 2, "Usage: pushback incidents"},
	} {
		code, _, errs := runCmd(tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
	if code, out, errs := runCmd("incidents", "release", "--addr", m.grpcAddr, "--token", explainToken, "--tenant", "acme"); code != 0 || !strings.Contains(out, "released 0 held actions") {
		t.Fatalf("release: %d %s %s", code, out, errs)
	}
}
