package mesh_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/connectors/auth0/auth0test"
	"github.com/pushbackhq/pushback/connectors/duo/duotest"
	"github.com/pushbackhq/pushback/connectors/entra/entratest"
	"github.com/pushbackhq/pushback/connectors/respond"
	defaultpolicy "github.com/pushbackhq/pushback/deploy/policy"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/services/decision/policy"
	"github.com/pushbackhq/pushback/services/mesh"
)

// The acceptance for Entra, Duo and Auth0: a fatigue success in
// the IdP's own log format, posted to /v1/ingest/{format} with no Decide
// call at all, leads within 20s to an alert naming APPROVAL_AFTER_BURST
// and to the connector's action at the IdP's fake.

// respondAction waits for the mesh's one incident to show the action on
// channel delivered, and returns that delivery.
func respondAction(t *testing.T, m *running, channel string) *notifyv1.Delivery {
	t.Helper()
	nc := notifyv1.NewNotificationServiceClient(m.conn)
	ctx := context.Background()
	list, err := nc.ListIncidents(ctx, &notifyv1.ListIncidentsRequest{})
	if err != nil || len(list.GetIncidents()) != 1 {
		t.Fatalf("incidents %v, %v; want one", list, err)
	}
	var taken *notifyv1.Delivery
	eventually(t, 10*time.Second, "the incident shows the "+channel+" action delivered", func() bool {
		inc, err := nc.GetIncident(ctx, &notifyv1.GetIncidentRequest{IncidentId: list.GetIncidents()[0].GetIncidentId()})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range inc.GetDeliveries() {
			if d.GetChannel() == channel && d.GetStatus() == notifyv1.Status_STATUS_DELIVERED {
				taken = d
			}
		}
		return taken != nil
	})
	return taken
}

// ---- Entra ----

// entraSignIn is one Entra ID sign-in as Azure Monitor exports it to Event
// Hub: a diagnostic record whose properties are the Graph signIn resource.
// steps are the authenticationDetails after the password.
func entraSignIn(id, upn, objectID, ip string, code int, reason string, at time.Time, steps ...map[string]any) map[string]any {
	details := []map[string]any{{
		"authenticationStepDateTime": at.Add(-20 * time.Second).Format(time.RFC3339), "authenticationMethod": "Password",
		"authenticationMethodDetail": "Password Hash Sync", "succeeded": true, "authenticationStepResultDetail": "Correct password",
		"authenticationStepRequirement": "Primary authentication",
	}}
	details = append(details, steps...)
	status := map[string]any{"errorCode": code}
	if reason != "" {
		status["failureReason"] = reason
	}
	return map[string]any{
		"time": at.Format(time.RFC3339), "resourceId": "/tenants/11111111-2222-3333-4444-555555555555/providers/Microsoft.aadiam",
		"operationName": "Sign-in activity", "operationVersion": "1.0", "category": "SignInLogs",
		"tenantId": "11111111-2222-3333-4444-555555555555", "resultType": fmt.Sprint(code), "callerIpAddress": ip,
		"correlationId": "c0ffee00-0000-4000-8000-0000000000aa", "identity": "Ada Lovelace", "Level": 4, "location": "RO",
		"properties": map[string]any{
			"id": id, "createdDateTime": at.Format(time.RFC3339), "userDisplayName": "Ada Lovelace",
			"userPrincipalName": upn, "userId": objectID,
			"appId": "00000003-0000-0ff1-ce00-000000000000", "appDisplayName": "Office 365 SharePoint Online",
			"ipAddress": ip, "status": status, "clientAppUsed": "Browser",
			"userAgent":                 "Mozilla/5.0 (X11; Linux x86_64)",
			"correlationId":             "c0ffee00-0000-4000-8000-0000000000aa",
			"isInteractive":             true,
			"authenticationRequirement": "multiFactorAuthentication",
			"autonomousSystemNumber":    64500,
			"sessionId":                 "5e5510n0-0000-4000-8000-0000000000aa",
			"deviceDetail":              map[string]any{"deviceId": "", "operatingSystem": "Linux", "browser": "Firefox 123.0"},
			"location": map[string]any{"city": "Bucharest", "state": "Bucuresti", "countryOrRegion": "RO",
				"geoCoordinates": map[string]any{"latitude": 44.43, "longitude": 26.10}},
			"authenticationDetails": details,
		},
	}
}

func entraPushStep(at time.Time, ok bool, detail string) map[string]any {
	return map[string]any{
		"authenticationStepDateTime": at.Format(time.RFC3339), "authenticationMethod": "Mobile app notification",
		"succeeded": ok, "authenticationStepResultDetail": detail, "authenticationStepRequirement": "Multifactor authentication",
	}
}

// entraFatigueSuccess is an Event Hub delivery of a fatigue attack that
// worked: sign-ins from the attacker's address whose push the user
// declined (or left unanswered), one after another, then one approved.
func entraFatigueSuccess(upn, objectID, ip string, end time.Time) []byte {
	const failed = "Authentication failed during strong authentication request."
	start := end.Add(-3 * time.Minute)
	// The first attempt is interrupted to ask for MFA: not an outcome yet.
	records := []map[string]any{entraSignIn("e0a70000-0000-4000-8000-000000000000", upn, objectID, ip, 50074,
		"Strong Authentication is required.", start.Add(-10*time.Second), entraPushStep(start.Add(-9*time.Second), false, "MFA required in Azure AD"))}
	for i := range 6 {
		at := start.Add(time.Duration(i) * 25 * time.Second)
		detail := "MFA denied; user declined the authentication"
		if i == 2 {
			detail = "MFA denied; user did not respond to mobile app notification"
		}
		records = append(records, entraSignIn(fmt.Sprintf("e0a70000-0000-4000-8000-00000000000%d", i+1), upn, objectID, ip, 500121, failed, at,
			entraPushStep(at.Add(-5*time.Second), false, detail)))
	}
	records = append(records, entraSignIn("e0a70000-0000-4000-8000-0000000000ff", upn, objectID, ip, 0, "", end,
		entraPushStep(end.Add(-2*time.Second), true, "MFA successfully completed")))
	b, _ := json.Marshal(map[string]any{"records": records})
	return b
}

func TestEntraFatigueSuccessIsAlertedAndRevoked(t *testing.T) {
	const (
		upn      = "Ada.Lovelace@Contoso.onmicrosoft.com"
		objectID = "6e1b2c3d-4f50-4a6b-8c7d-9e0f1a2b3c4d"
	)
	alerts := newAlertSink(t)
	tenant := entratest.New()
	defer tenant.Close()
	tenant.AddUser(objectID, strings.ToLower(upn))
	cfg := mesh.Default()
	cfg.Notify.AlertWebhook = alerts.srv.URL
	cfg.Connectors.Entra.Tenant = tenant.Tenant
	cfg.Connectors.Entra.ClientID = tenant.ClientID
	cfg.Connectors.Entra.ClientSecret = tenant.ClientSecret
	cfg.Connectors.Entra.LoginURL = tenant.URL
	cfg.Connectors.Entra.GraphURL = tenant.URL
	m := start(t, cfg)

	postIngest(t, m, "entra", entraFatigueSuccess(upn, objectID, "203.0.113.81", time.Now().UTC().Add(-time.Second)))
	eventually(t, 20*time.Second, "alert naming APPROVAL_AFTER_BURST and the Entra sign-in sessions revoked", func() bool {
		return alerts.naming("APPROVAL_AFTER_BURST", "fatigue-success") != "" && len(tenant.Revoked()) > 0
	})
	if r := tenant.Revoked(); len(r) != 1 || r[0] != objectID {
		t.Fatalf("revoked %v, want the one user %s", r, objectID)
	}
	if n := tenant.TokenRequests(); n < 1 {
		t.Fatalf("%d token requests: the connector revoked without a token", n)
	}
	var revokes []entratest.Request
	for _, req := range tenant.Requests() {
		if strings.HasSuffix(req.Path, "/revokeSignInSessions") {
			revokes = append(revokes, req)
		}
	}
	// The user is named as the sign-in log spelled them (or by object id),
	// never by Pushback's folded id.
	if len(revokes) != 1 || revokes[0].Method != http.MethodPost || revokes[0].Status != http.StatusOK ||
		(revokes[0].User != upn && revokes[0].User != objectID) {
		t.Fatalf("revokeSignInSessions requests %+v, want one POST for %s answered 200", revokes, upn)
	}
	if tenant.Unauthorized() != 0 {
		t.Fatalf("Graph answered 401 %d times", tenant.Unauthorized())
	}
	if r := respondAction(t, m, "entra").GetResult(); !strings.Contains(r, "revokeSignInSessions: 200") {
		t.Fatalf("action result %q", r)
	}
}

// ---- Duo ----

// duoAuthLog is one Duo Admin API v2 authentication log.
func duoAuthLog(txid, username, result, reason, ip string, at time.Time) map[string]any {
	return map[string]any{
		"access_device": map[string]any{
			"browser": "Chrome", "browser_version": "122.0", "epkey": "EPATTACKER0000000001", "hostname": nil, "ip": ip,
			"is_encryption_enabled": "unknown", "is_firewall_enabled": "unknown", "is_password_set": "unknown",
			"location": map[string]any{"city": "Lagos", "country": "Nigeria", "state": "Lagos"}, "os": "Windows", "os_version": "10",
		},
		"adaptive_trust_assessments": map[string]any{}, "alias": "",
		"application": map[string]any{"key": "DIY7JMZ3HA2OMLGFGZSN", "name": "VPN Gateway"},
		"auth_device": map[string]any{
			"ip": "192.0.2.44", "key": "DPFZRS9FB0D46QFTM891", "name": "My iPhone (734-555-2342)",
			"location": map[string]any{"city": "Lisbon", "country": "Portugal", "state": "Lisbon"},
		},
		"email": username + "@example.com", "event_type": "authentication", "factor": "duo_push",
		"isotimestamp": at.Format("2006-01-02T15:04:05.000000+00:00"), "ood_software": nil,
		"reason": reason, "result": result, "timestamp": at.Unix(), "trusted_endpoint_status": "not trusted", "txid": txid,
		"user": map[string]any{"groups": []string{"Engineering"}, "key": "DU3KC77WJ06Y5HIV7XKQ", "name": username},
	}
}

// duoFatigueSuccess is an Admin API authentication log page of a fatigue
// attack that worked: pushes the user denied or left unanswered, then one
// approved.
func duoFatigueSuccess(username, ip string, end time.Time) []byte {
	start := end.Add(-3 * time.Minute)
	var logs []map[string]any
	for i := range 6 {
		reason := "user_mistake"
		if i == 3 {
			reason = "no_response"
		}
		logs = append(logs, duoAuthLog(fmt.Sprintf("5d0a23e3-0000-4000-8000-00000000000%d", i), username, "denied", reason, ip,
			start.Add(time.Duration(i)*25*time.Second)))
	}
	logs = append(logs, duoAuthLog("5d0a23e3-0000-4000-8000-0000000000ff", username, "success", "user_approved", ip, end))
	b, _ := json.Marshal(map[string]any{"stat": "OK", "response": map[string]any{
		"authlogs": logs, "metadata": map[string]any{"next_offset": nil, "total_objects": len(logs)},
	}})
	return b
}

// disablingPolicy is the default policy with its fatigue-success rule
// disabling the user at Duo instead of revoking sessions, written to a file.
func disablingPolicy(t *testing.T) string {
	t.Helper()
	src := string(defaultpolicy.Default)
	i := strings.Index(src, "- name: fatigue-success\n")
	if i < 0 {
		t.Fatal("the default policy has no fatigue-success rule")
	}
	const old = "actions: [alert, revoke_sessions]\n"
	j := strings.Index(src[i:], old)
	if j < 0 || strings.Contains(src[i+len("- name:"):i+j], "- name:") {
		t.Fatal("the fatigue-success rule's actions are not [alert, revoke_sessions]")
	}
	j += i
	indent := src[strings.LastIndex(src[:j], "\n")+1 : j]
	out := src[:j] + "actions: [alert, set_user_status]\n" + indent + "user_status: disabled\n" + src[j+len(old):]
	p, err := policy.Parse(strings.NewReader(out))
	if err != nil {
		t.Fatalf("the changed policy does not compile: %v", err)
	}
	idx := slices.IndexFunc(p.Respond.Rules, func(r policy.RespondRule) bool { return r.Name == "fatigue-success" })
	if idx < 0 {
		t.Fatal("the changed policy lost its fatigue-success rule")
	}
	if r := p.Respond.Rules[idx]; !r.Alert || !slices.Equal(r.Actions, []respond.Action{respond.SetUserStatus}) || r.UserStatus != "disabled" || r.DryRun || p.Respond.DryRun {
		t.Fatalf("fatigue-success compiled to %+v", r)
	}
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDuoFatigueSuccessIsAlertedAndDisabled(t *testing.T) {
	const username = "grace.hopper"
	alerts := newAlertSink(t)
	account := duotest.New()
	defer account.Close()
	other := account.AddUser("linus.torvalds")
	id := account.AddUser(username, "ghopper")
	cfg := mesh.Default()
	cfg.Notify.AlertWebhook = alerts.srv.URL
	cfg.Decision.PolicyFile = disablingPolicy(t)
	cfg.Connectors.Duo.URL = account.URL
	cfg.Connectors.Duo.IKey = account.IKey
	cfg.Connectors.Duo.SKey = account.SKey
	m := start(t, cfg)

	postIngest(t, m, "duo", duoFatigueSuccess(username, "198.51.100.91", time.Now().UTC().Add(-time.Second)))
	eventually(t, 20*time.Second, "alert naming APPROVAL_AFTER_BURST and the Duo user disabled", func() bool {
		return alerts.naming("APPROVAL_AFTER_BURST", "fatigue-success") != "" && len(account.StatusChanges()) > 0
	})
	want := duotest.StatusChange{UserID: id, Username: username, From: "active", To: "disabled"}
	if c := account.StatusChanges(); len(c) != 1 || c[0] != want {
		t.Fatalf("status changes %+v, want %+v", c, want)
	}
	if u, _ := account.User(id); u.Status != "disabled" {
		t.Fatalf("%s is %q, want disabled", username, u.Status)
	}
	if u, _ := account.User(other); u.Status != "active" {
		t.Fatalf("another user is %q", u.Status)
	}
	// The username was resolved to the user_id first, and every call was
	// signed and accepted (the reads of the authentication log, polled
	// meanwhile, aside).
	var reqs []duotest.Request
	for _, r := range account.Requests() {
		if r.Path != duotest.AuthLogsPath {
			reqs = append(reqs, r)
		}
	}
	if len(reqs) != 2 || reqs[0].Method != http.MethodGet || reqs[0].Params.Get("username") != username ||
		reqs[1].Method != http.MethodPost || reqs[1].Path != "/admin/v1/users/"+id || reqs[1].Params.Get("status") != "disabled" {
		t.Fatalf("requests %+v, want the lookup of %s then its status set to disabled", reqs, username)
	}
	for _, r := range reqs {
		if r.Status != http.StatusOK || r.Code != 0 {
			t.Fatalf("request refused: %+v", r)
		}
	}
	if r := respondAction(t, m, "duo").GetResult(); !strings.Contains(r, "status=disabled: 200") {
		t.Fatalf("action result %q", r)
	}
}

// ---- Auth0 ----

// auth0StreamEvent is one log event as an Auth0 log stream (custom
// webhook) delivers it.
func auth0StreamEvent(logID, typ, description, userID, ip string, details map[string]any, at time.Time) map[string]any {
	if details == nil {
		details = map[string]any{}
	}
	return map[string]any{
		"log_id": logID,
		"data": map[string]any{
			"date": at.Format("2006-01-02T15:04:05.000Z"), "type": typ, "description": description, "connection_id": "",
			"client_id": "AaiyAPdpYdesoKnqjj8HJqRn4T5titww", "client_name": "Customer Portal", "ip": ip,
			"user_agent": "Chrome 122.0.0 / Windows 10.0.0", "details": details, "user_id": userID,
			"user_name": "ada.lovelace@acme.example", "log_id": logID, "tenant_name": "acme",
			"location_info": map[string]any{"country_code": "BR", "country_code3": "BRA", "country_name": "Brazil",
				"city_name": "Sao Paulo", "latitude": -23.55, "longitude": -46.63, "time_zone": "America/Sao_Paulo", "continent_code": "SA"},
		},
	}
}

// auth0FatigueSuccess is a log stream batch of a fatigue attack that
// worked: Guardian pushes from the attacker's address, rejected one after
// another, then accepted.
func auth0FatigueSuccess(userID, ip string, end time.Time) []byte {
	start := end.Add(-3 * time.Minute)
	var events []map[string]any
	logID := func(n int) string { return fmt.Sprintf("900%053d", n) }
	for i := range 6 {
		at := start.Add(time.Duration(i) * 25 * time.Second)
		events = append(events,
			auth0StreamEvent(logID(2*i+1), "gd_send_pn", "Push notification for MFA sent successfully sent", userID, ip, nil, at),
			auth0StreamEvent(logID(2*i+2), "gd_auth_rejected", "User rejected a multi-factor authentication request via push-notification", userID, ip, nil, at.Add(5*time.Second)))
	}
	events = append(events,
		auth0StreamEvent(logID(100), "gd_send_pn", "Push notification for MFA sent successfully sent", userID, ip, nil, end.Add(-10*time.Second)),
		auth0StreamEvent(logID(101), "gd_auth_succeed", "MFA Auth success", userID, ip,
			map[string]any{"authenticator": map[string]any{"type": "push-notification"}}, end))
	b, _ := json.Marshal(events)
	return b
}

func TestAuth0FatigueSuccessIsAlertedAndRevoked(t *testing.T) {
	// An enterprise connection's user_id keeps the IdP's spelling: the
	// connector must use it as logged, not Pushback's folded id.
	const userID = "samlp|acme-okta|Ada.Lovelace@acme.example"
	alerts := newAlertSink(t)
	tenant := auth0test.NewServer()
	defer tenant.Close()
	tenant.AddUser(userID)
	tenant.AddUser("auth0|65f0c0ffee0000000000beef")
	cfg := mesh.Default()
	cfg.Notify.AlertWebhook = alerts.srv.URL
	cfg.Connectors.Auth0.Domain = tenant.URL()
	cfg.Connectors.Auth0.ClientID = tenant.ClientID
	cfg.Connectors.Auth0.ClientSecret = tenant.ClientSecret
	m := start(t, cfg)

	postIngest(t, m, "auth0", auth0FatigueSuccess(userID, "198.51.100.92", time.Now().UTC().Add(-time.Second)))
	eventually(t, 20*time.Second, "alert naming APPROVAL_AFTER_BURST and the Auth0 sessions deleted", func() bool {
		return alerts.naming("APPROVAL_AFTER_BURST", "fatigue-success") != "" && len(tenant.Revoked()) > 0
	})
	if r := tenant.Revoked(); len(r) != 1 || r[0] != userID {
		t.Fatalf("revoked %q, want the one user %q", r, userID)
	}
	if n := tenant.TokenRequests(); n < 1 {
		t.Fatalf("%d token requests: the connector revoked without a token", n)
	}
	path := "/api/v2/users/" + url.PathEscape(userID) + "/sessions"
	var deletes int
	for _, req := range tenant.Requests() {
		if req.Method != http.MethodDelete {
			continue
		}
		deletes++
		if req.Path != path || !strings.HasPrefix(req.Authorization, "Bearer ") {
			t.Fatalf("DELETE %s (Authorization %q), want DELETE %s with a bearer token", req.Path, req.Authorization, path)
		}
	}
	if deletes != 1 {
		t.Fatalf("%d session deletions, want 1: %+v", deletes, tenant.Requests())
	}
	if r := respondAction(t, m, "auth0").GetResult(); !strings.Contains(r, "DELETE "+path+": 202") {
		t.Fatalf("action result %q", r)
	}
}
