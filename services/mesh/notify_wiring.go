package mesh

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/services/notify"
	"google.golang.org/grpc"
)

// notifyWiring is what the notification settings produce: the channels,
// the report links and the key that signs security events.
type notifyWiring struct {
	channels []notify.Channel
	links    *notify.ReportLinks
	signer   *notify.Signer
}

// outboundClient bounds every call a channel makes and never follows a
// redirect (a signed body is for its URL only).
func outboundClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// newNotifyWiring builds the channels the configuration names (besides the
// alert webhook, which Run builds itself).
func newNotifyWiring(cfg Config) (*notifyWiring, error) {
	w := &notifyWiring{}
	var err error
	if w.links, err = reportLinks(cfg); err != nil {
		return nil, err
	}
	if cfg.SlackWebhook != "" {
		w.channels = append(w.channels, &notify.Slack{URL: cfg.SlackWebhook, Client: outboundClient()})
	}
	if cfg.SMTPHost != "" {
		port, _ := strconv.Atoi(cfg.SMTPPort)
		var to []string
		for _, a := range strings.Split(cfg.SMTPTo, ",") {
			if a = strings.TrimSpace(a); a != "" {
				to = append(to, a)
			}
		}
		w.channels = append(w.channels, &notify.Email{Host: cfg.SMTPHost, Port: port, Username: cfg.SMTPUser, Password: cfg.SMTPPassword,
			From: cfg.SMTPFrom, To: to, RequireTLS: cfg.SMTPRequireTLS})
	}
	if cfg.PushWebhook != "" {
		secret, err := notify.DecodeSecret(cfg.PushWebhookSecret)
		if err != nil {
			return nil, fmt.Errorf("push-webhook-secret: %w", err)
		}
		w.channels = append(w.channels, &notify.Push{Provider: &notify.WebhookPushProvider{URL: cfg.PushWebhook, Secret: secret, Client: outboundClient()}, Notices: true})
	}
	if cfg.SETReceiver != "" {
		path := cfg.SETSigningKey
		if path == "" {
			path = filepath.Join(cfg.DataDir, "set-signing-key.pem")
		}
		key, err := notify.LoadOrCreateSigningKey(path)
		if err != nil {
			return nil, fmt.Errorf("set-signing-key: %w", err)
		}
		if w.signer, err = notify.NewSigner(key); err != nil {
			return nil, fmt.Errorf("set-signing-key: %w", err)
		}
		issuer := cfg.PublicURL
		if issuer == "" {
			issuer = "pushback"
		}
		ch := &notify.SecurityEvents{URL: cfg.SETReceiver, Issuer: issuer, Audience: cfg.SETAudience, Signer: w.signer, Client: outboundClient()}
		if cfg.SETReceiverToken != "" {
			ch.Authorization = "Bearer " + cfg.SETReceiverToken
		}
		w.channels = append(w.channels, ch)
	}
	return w, nil
}

// reportLinks is nil when no report-link key is configured.
func reportLinks(cfg Config) (*notify.ReportLinks, error) {
	if cfg.ReportLinkKey == "" {
		return nil, nil
	}
	key, err := notify.DecodeSecret(cfg.ReportLinkKey)
	if err != nil {
		return nil, fmt.Errorf("report-link-key: %w", err)
	}
	return &notify.ReportLinks{Key: key, BaseURL: cfg.PublicURL}, nil
}

// notifyRoutes serves the key set that verifies security events (where
// notify runs) and the report link (where intake is reachable).
func notifyRoutes(mux *http.ServeMux, cfg Config, w *notifyWiring, peer func(name, addr string) (grpc.ClientConnInterface, error), log *slog.Logger) error {
	if w != nil && w.signer != nil {
		mux.Handle(notify.JWKSPath, notify.JWKSHandler(w.signer))
	}
	links, err := reportLinks(cfg)
	if err != nil || links == nil || !cfg.Runs(Intake) && cfg.IntakeAddr == "" {
		return err
	}
	ic, err := peer(Intake, cfg.IntakeAddr)
	if err != nil {
		return err
	}
	opts := notify.ReportHandlerOptions{Links: links, Intake: intakev1.NewIntakeServiceClient(ic), Logger: log.With("service", Notify)}
	if cfg.Runs(Notify) || cfg.NotifyAddr != "" {
		nc, err := peer(Notify, cfg.NotifyAddr)
		if err != nil {
			return err
		}
		opts.Notifier = notifyv1.NewNotificationServiceClient(nc)
	}
	mux.Handle(notify.ReportPath, notify.ReportHandler(opts))
	return nil
}

// validateNotify checks the notification settings.
func (c Config) validateNotify() []error {
	var errs []error
	absURL := func(name, v string) {
		if v == "" {
			return
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s: must be an absolute http(s) URL", name))
		}
	}
	absURL("alert-webhook", c.AlertWebhook)
	absURL("slack-webhook", c.SlackWebhook)
	absURL("push-webhook", c.PushWebhook)
	absURL("set-receiver", c.SETReceiver)
	absURL("public-url", c.PublicURL)
	if c.SMTPPort != "" {
		if p, err := strconv.Atoi(c.SMTPPort); err != nil || p < 1 || p > 65535 {
			errs = append(errs, errors.New("smtp-port: must be a port number"))
		}
	}
	if c.SMTPHost != "" && c.SMTPFrom == "" {
		errs = append(errs, errors.New("smtp-from: is required with smtp-host"))
	}
	// The envelope takes bare addresses: "Pushback <a@example.com>" would
	// make every message fail at the server and be retried to death.
	bare := func(name, v string) {
		if a, err := mail.ParseAddress(v); err != nil || a.Address != v {
			errs = append(errs, fmt.Errorf("%s: %q is not a bare email address (like alerts@example.com)", name, v))
		}
	}
	if c.SMTPFrom != "" {
		bare("smtp-from", c.SMTPFrom)
	}
	for _, a := range strings.Split(c.SMTPTo, ",") {
		if a = strings.TrimSpace(a); a != "" {
			bare("smtp-to", a)
		}
	}
	if c.ReportLinkKey != "" {
		if key, err := notify.DecodeSecret(c.ReportLinkKey); err != nil || len(key) < notify.MinReportKeyBytes {
			errs = append(errs, fmt.Errorf("report-link-key: must hold at least %d bytes", notify.MinReportKeyBytes))
		}
		if c.PublicURL == "" {
			errs = append(errs, errors.New("public-url: is required with report-link-key (the links point there)"))
		}
	}
	return errs
}
