package mesh_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	"github.com/pushbackhq/pushback/services/mesh"
	"github.com/pushbackhq/pushback/services/notify"
)

// A click on a report link served by the mesh becomes a FRAUD_REPORTED
// event in intake, and a session-revoked security event reaches the
// configured receiver, verifiable with the key the mesh publishes.
func TestReportLinkAndSecurityEventsOnTheMesh(t *testing.T) {
	sets := make(chan string, 4)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/secevent+jwt" || r.Header.Get("Authorization") != "Bearer rcv-token" {
			http.Error(w, `{"err":"authentication_failed"}`, http.StatusBadRequest)
			return
		}
		sets <- string(b)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer receiver.Close()

	const key = "a report link key of at least 32 bytes"
	cfg := mesh.Default()
	cfg.Notify.ReportLinkKey = key
	cfg.Notify.PublicURL = "https://pushback.example.com"
	cfg.Notify.SETReceiver = receiver.URL
	cfg.Notify.SETReceiverToken = "rcv-token"
	cfg.Notify.SETAudience = "https://idp.example.com"
	m := start(t, cfg)
	base := "http://" + m.httpAddr

	links := &notify.ReportLinks{Key: []byte(key), BaseURL: base}
	tok := links.Token(notify.ReportClaims{UserID: "zoe", Nonce: "incident-7"}, time.Now())
	resp, err := http.PostForm(base+notify.ReportPath, url.Values{"t": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("report: %d %s", resp.StatusCode, body)
	}
	ev, err := intakev1.NewIntakeServiceClient(m.conn).ListEvents(context.Background(), &intakev1.ListEventsRequest{UserId: "zoe"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.GetEvents()) != 1 || ev.GetEvents()[0].GetType() != eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED || ev.GetEvents()[0].GetEventId() != "report:incident-7" {
		t.Fatalf("intake events %v", ev.GetEvents())
	}

	var token string
	select {
	case token = <-sets:
	case <-time.After(20 * time.Second):
		t.Fatal("no security event reached the receiver")
	}
	jr, err := http.Get(base + notify.JWKSPath)
	if err != nil {
		t.Fatal(err)
	}
	var keys notify.JWKS
	err = json.NewDecoder(jr.Body).Decode(&keys)
	_ = jr.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	c, err := notify.VerifySET(token, keys)
	if err != nil {
		t.Fatalf("the SET does not verify with the published key set: %v", err)
	}
	if _, ok := c.Events[notify.EventSessionRevoked]; !ok || c.Audience != cfg.Notify.SETAudience || c.Issuer != cfg.Notify.PublicURL || c.Subject.ID != "zoe" {
		t.Fatalf("SET claims %+v", c)
	}
}

func TestNotifySettingsAreValidated(t *testing.T) {
	cases := []struct {
		name string
		set  func(c *mesh.Config)
		want string
	}{
		{"short report key", func(c *mesh.Config) { c.Notify.ReportLinkKey, c.Notify.PublicURL = "short", "https://p.example.com" }, "report-link-key"},
		{"report key without public url", func(c *mesh.Config) { c.Notify.ReportLinkKey = strings.Repeat("k", 32) }, "public-url"},
		{"relative slack url", func(c *mesh.Config) { c.Notify.SlackWebhook = "/hooks/x" }, "slack-webhook"},
		{"bad smtp port", func(c *mesh.Config) {
			c.Notify.SMTPHost, c.Notify.SMTPFrom, c.Notify.SMTPPort = "mail", "a@b.c", "smtp"
		}, "smtp-port"},
		{"smtp without sender", func(c *mesh.Config) { c.Notify.SMTPHost = "mail" }, "smtp-from"},
		{"sender with a display name", func(c *mesh.Config) { c.Notify.SMTPHost, c.Notify.SMTPFrom = "mail", "Pushback <alerts@example.com>" }, "smtp-from"},
		{"recipient not an address", func(c *mesh.Config) {
			c.Notify.SMTPHost, c.Notify.SMTPFrom, c.Notify.SMTPTo = "mail", "a@b.c", "soc@example.com, nope"
		}, "smtp-to"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := mesh.Default()
			tc.set(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
