package mesh_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/connectors/okta/oktatest"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/services/mesh"
)

// A connector carries an API credential: serve refuses to send it in clear
// to anything but this machine.
func TestConnectorURLRefusesPlainHTTPToPublicHost(t *testing.T) {
	const guid = "0b7e1f5c-1c2d-4e3f-8a9b-0c1d2e3f4a5b"
	noEnv := func(string) string { return "" }
	for _, tc := range []struct {
		name    string
		setting string
		args    []string
	}{
		{"okta", "okta-url", []string{"--okta-url=http://okta.example.com", "--okta-token=00aBcDeFgHiJkLmNoPqRsTuVwXyZ"}},
		{"entra graph", "graph-url", []string{"--entra-tenant=contoso.onmicrosoft.com", "--entra-client-id=" + guid,
			"--entra-client-secret=Xq8Q~secret", "--graph-url=http://graph.example.com"}},
		{"entra login", "entra-login-url", []string{"--entra-tenant=contoso.onmicrosoft.com", "--entra-client-id=" + guid,
			"--entra-client-secret=Xq8Q~secret", "--entra-login-url=http://login.example.com"}},
		{"duo", "duo-url", []string{"--duo-url=http://api-12345678.duosecurity.com", "--duo-ikey=DIWJ8X6AEYOR5OMC6TQ1", "--duo-skey=secretkey"}},
		{"auth0", "auth0-domain", []string{"--auth0-domain=http://acme.us.auth0.com", "--auth0-client-id=client", "--auth0-client-secret=secret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mesh.Load(tc.args, noEnv)
			if err == nil || !strings.Contains(err.Error(), tc.setting+": plain http") {
				t.Fatalf("Load(%q) = %v, want an error naming %s and plain http", tc.args, err, tc.setting)
			}
			// The same URL on loopback is a local fake or proxy: allowed.
			loop := make([]string, len(tc.args))
			for i, a := range tc.args {
				if name, v, _ := strings.Cut(a, "="); strings.HasPrefix(v, "http://") {
					a = name + "=http://127.0.0.1:8443"
				}
				loop[i] = a
			}
			if _, err := mesh.Load(loop, noEnv); err != nil {
				t.Fatalf("Load(%q) = %v, want loopback http allowed", loop, err)
			}
		})
	}

	// mesh.Run itself refuses such a configuration, before serving.
	cfg := mesh.Default()
	cfg.DataDir = t.TempDir()
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Connectors.Okta.URL = "http://okta.example.com"
	cfg.Connectors.Okta.Token = "00aBcDeFgHiJkLmNoPqRsTuVwXyZ"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	served := false
	err := mesh.Run(ctx, cfg, mesh.Options{Getenv: noEnv, Ready: func(string, string) { served = true; cancel() }})
	if served || err == nil || !strings.Contains(err.Error(), "okta-url: plain http") {
		t.Fatalf("Run served %v, returned %v; want a refusal naming okta-url", served, err)
	}
	if strings.Contains(err.Error(), cfg.Connectors.Okta.Token) {
		t.Fatalf("the refusal shows the token: %v", err)
	}
}

// With respond-dry-run the SOC still gets the alert, and the incident
// records the action it would have taken, but nobody is logged out.
func TestRespondDryRunAlertsWithoutRevoking(t *testing.T) {
	alerts := newAlertSink(t)
	org := oktatest.NewServer()
	defer org.Close()
	org.AddUser("00u1ada9XyZ", "ada@example.com")
	cfg := mesh.Default()
	cfg.Notify.AlertWebhook = alerts.srv.URL
	cfg.Connectors.Okta.URL = org.URL()
	cfg.Connectors.Okta.Token = org.Token
	cfg.Decision.RespondDryRun = true
	m := start(t, cfg)

	postIngest(t, m, "okta", oktaFatigueSuccess("Ada@Example.com", time.Now().UTC().Add(-time.Second)))
	eventually(t, 20*time.Second, "alert naming APPROVAL_AFTER_BURST", func() bool {
		return alerts.naming("APPROVAL_AFTER_BURST", "fatigue-success") != ""
	})
	d := respondAction(t, m, "okta")
	if r := d.GetResult(); !strings.HasPrefix(r, "dry run") || !strings.Contains(r, "revoke_sessions") {
		t.Fatalf("action result %q, want a dry run of revoke_sessions", r)
	}
	// Recorded once, not retried: nothing more will reach Okta.
	if d.GetAttempts() != 1 || d.GetNextAttemptTime() != nil {
		t.Fatalf("dry-run delivery %v", d)
	}
	if r := org.Revoked(); len(r) != 0 {
		t.Fatalf("a dry run revoked %+v", r)
	}
	for _, req := range org.Requests() {
		if req.Method == http.MethodDelete {
			t.Fatalf("a dry run called %s %s", req.Method, req.Path)
		}
	}
	nc := notifyv1.NewNotificationServiceClient(m.conn)
	dead, err := nc.ListDeliveries(context.Background(), &notifyv1.ListDeliveriesRequest{Status: notifyv1.Status_STATUS_DEAD})
	if err != nil || len(dead.GetDeliveries()) != 0 {
		t.Fatalf("dead deliveries %v, %v", dead, err)
	}
}
