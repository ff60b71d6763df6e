package notify

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pushbackhq/pushback/connectors/respond"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/component"
	"google.golang.org/grpc"
)

// Init builds notify for a process that runs it: a channel for every one
// the configuration names, an action channel for every response connector
// given, and the key set that verifies its security events.
func Init(cfg Config, d component.Deps, connectors []respond.Connector) (component.Parts, error) {
	channels, signer, err := cfg.channels(d.DataDir)
	if err != nil {
		return component.Parts{}, err
	}
	for _, c := range connectors {
		channels = append(channels, &ActionChannel{Connector: c, Aliases: d.UserIDs.Aliases()})
	}
	links, err := cfg.reportLinks()
	if err != nil {
		return component.Parts{}, err
	}
	n, err := New(Options{Store: d.Store, Channels: channels, Logger: d.Logger, Tracer: d.Tracer, ReportLinks: links, Meter: d.Meter, Redactor: d.Redactor,
		Brake: cfg.Brake})
	if err != nil {
		return component.Parts{}, err
	}
	parts := component.Parts{Register: []func(grpc.ServiceRegistrar){n.Register}, Workers: []func(context.Context) error{n.Run}}
	if signer != nil {
		parts.Routes = append(parts.Routes, component.Route{Pattern: JWKSPath, Handler: JWKSHandler(signer)})
		ssf, err := NewSSFConfiguration(cfg.PublicURL)
		if err != nil {
			return component.Parts{}, fmt.Errorf("public-url: %w", err)
		}
		for _, p := range ssf.Paths() {
			parts.Routes = append(parts.Routes, component.Route{Pattern: p, Name: SSFConfigurationPath, Handler: SSFConfigurationHandler(ssf)})
		}
	}
	return parts, nil
}

// Routes serve the report link where intake is reachable and report links
// are configured: a user's "not me" goes to intake, and, where notify is
// reachable too, revokes the user's sessions through a security event.
func Routes(cfg Config, d component.Deps) ([]component.Route, error) {
	links, err := cfg.reportLinks()
	if err != nil || links == nil {
		return nil, err
	}
	ic, err := d.Peer(component.Intake)
	if ic == nil || err != nil {
		return nil, err
	}
	opts := ReportHandlerOptions{Links: links, Intake: intakev1.NewIntakeServiceClient(ic), Logger: d.Logger}
	nc, err := d.Peer(component.Notify)
	if err != nil {
		return nil, err
	}
	if nc != nil {
		opts.Notifier = notifyv1.NewNotificationServiceClient(nc)
	}
	return []component.Route{{Pattern: ReportPath, Handler: ReportHandler(opts)}}, nil
}

// Methods says who may call each method of notify (docs/security.md).
func Methods() map[string]auth.Rule {
	return map[string]auth.Rule{
		// Nobody outside queues a notification: decision raises alerts, and
		// the report link (served where intake runs) revokes sessions.
		notifyv1.NotificationService_Notify_FullMethodName:         {Roles: []auth.Role{auth.Decision, auth.Intake, auth.Mesh}},
		notifyv1.NotificationService_ListDeliveries_FullMethodName: {Roles: []auth.Role{auth.Operator}},
		notifyv1.NotificationService_ListIncidents_FullMethodName:  {Roles: []auth.Role{auth.Operator}},
		notifyv1.NotificationService_GetIncident_FullMethodName:    {Roles: []auth.Role{auth.Operator}},
		// Letting held revocations go is an operator's deliberate act.
		notifyv1.NotificationService_ReleaseActions_FullMethodName: {Roles: []auth.Role{auth.Operator}},
	}
}

// outboundClient bounds every call a channel makes and never follows a
// redirect (a signed body is for its URL only).
func outboundClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// channels builds the channels the configuration names, and the key that
// signs security events when a receiver is set (its key file is created
// in dataDir unless named).
func (c Config) channels(dataDir string) ([]Channel, *Signer, error) {
	var out []Channel
	if c.AlertWebhook != "" {
		secret, err := DecodeSecret(c.AlertSecret)
		if err != nil {
			return nil, nil, fmt.Errorf("alert-webhook-secret: %w", err)
		}
		out = append(out, &Webhook{URL: c.AlertWebhook, Secret: secret, Client: outboundClient()})
	}
	if c.SlackWebhook != "" {
		out = append(out, &Slack{URL: c.SlackWebhook, Client: outboundClient()})
	}
	if c.SMTPHost != "" {
		port, _ := strconv.Atoi(c.SMTPPort)
		var to []string
		for _, a := range strings.Split(c.SMTPTo, ",") {
			if a = strings.TrimSpace(a); a != "" {
				to = append(to, a)
			}
		}
		out = append(out, &Email{Host: c.SMTPHost, Port: port, Username: c.SMTPUser, Password: c.SMTPPassword,
			From: c.SMTPFrom, To: to, RequireTLS: c.SMTPRequireTLS})
	}
	if c.PushWebhook != "" {
		secret, err := DecodeSecret(c.PushWebhookSecret)
		if err != nil {
			return nil, nil, fmt.Errorf("push-webhook-secret: %w", err)
		}
		out = append(out, &Push{Provider: &WebhookPushProvider{URL: c.PushWebhook, Secret: secret, Client: outboundClient()}, Notices: true})
	}
	var signer *Signer
	if c.SETReceiver != "" {
		path := c.SETSigningKey
		if path == "" {
			path = filepath.Join(dataDir, "set-signing-key.pem")
		}
		key, err := LoadOrCreateSigningKey(path)
		if err != nil {
			return nil, nil, fmt.Errorf("set-signing-key: %w", err)
		}
		if signer, err = NewSigner(key); err != nil {
			return nil, nil, fmt.Errorf("set-signing-key: %w", err)
		}
		ch := &SecurityEvents{URL: c.SETReceiver, Issuer: c.PublicURL, Audience: c.SETAudience, Signer: signer, Client: outboundClient()}
		if c.SETReceiverToken != "" {
			ch.Authorization = "Bearer " + c.SETReceiverToken
		}
		out = append(out, ch)
	}
	return out, signer, nil
}

// reportLinks is nil when no report-link key is configured.
func (c Config) reportLinks() (*ReportLinks, error) {
	if c.ReportLinkKey == "" {
		return nil, nil
	}
	key, err := DecodeSecret(c.ReportLinkKey)
	if err != nil {
		return nil, fmt.Errorf("report-link-key: %w", err)
	}
	return &ReportLinks{Key: key, BaseURL: c.PublicURL}, nil
}
