package notify

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strconv"
	"strings"

	"github.com/pushbackhq/pushback/pkg/settings"
)

// Config is what an operator sets for notify: its channels (docs/notify.md;
// the secrets among them are never printed or logged), the report links
// and the brake on response actions.
type Config struct {
	AlertWebhook      string
	AlertSecret       string
	SlackWebhook      string
	SMTPHost          string
	SMTPPort          string
	SMTPUser          string
	SMTPPassword      string
	SMTPFrom          string
	SMTPTo            string
	SMTPRequireTLS    bool
	PushWebhook       string
	PushWebhookSecret string
	SETReceiver       string
	SETReceiverToken  string
	SETAudience       string
	SETSigningKey     string
	ReportLinkKey     string
	PublicURL         string
	// Brake is how many response actions that log people out may go out a
	// minute in one tenant; past it they are held for an operator.
	Brake int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{Brake: 20} }

// Settings binds the configuration to its flags.
func (c *Config) Settings() []settings.Setting {
	return []settings.Setting{
		settings.String(&c.AlertWebhook, "alert-webhook", "URL SOC alerts are posted to (alerts go to the log when empty)"),
		settings.SecretString(&c.AlertSecret, "alert-webhook-secret", "Standard Webhooks signing secret (whsec_...)"),
		settings.SecretString(&c.SlackWebhook, "slack-webhook", "Slack-compatible incoming-webhook URL for SOC alerts"),
		settings.String(&c.SMTPHost, "smtp-host", "SMTP server for SOC alert and user notice email (STARTTLS when offered)"),
		settings.String(&c.SMTPPort, "smtp-port", "SMTP port (587 when empty)"),
		settings.String(&c.SMTPUser, "smtp-user", "SMTP user (PLAIN over TLS)"),
		settings.SecretString(&c.SMTPPassword, "smtp-password", "SMTP password"),
		settings.String(&c.SMTPFrom, "smtp-from", "sender address of notification email"),
		settings.String(&c.SMTPTo, "smtp-to", "comma-separated SOC addresses that receive alerts by email"),
		settings.Bool(&c.SMTPRequireTLS, "smtp-require-tls", "refuse to send email to an SMTP server that does not offer STARTTLS"),
		settings.String(&c.PushWebhook, "push-webhook", "mobile backend URL that receives pushes and user notices (Standard Webhooks)"),
		settings.SecretString(&c.PushWebhookSecret, "push-webhook-secret", "Standard Webhooks signing secret of the push webhook (whsec_...)"),
		settings.String(&c.SETReceiver, "set-receiver", "RFC 8935 push endpoint that receives CAEP security event tokens"),
		settings.SecretString(&c.SETReceiverToken, "set-receiver-token", "bearer token the security event receiver requires"),
		settings.String(&c.SETAudience, "set-audience", "audience (aud) of security event tokens"),
		settings.String(&c.SETSigningKey, "set-signing-key", "PEM P-256 key file that signs security event tokens (created in the data dir when empty)"),
		settings.SecretString(&c.ReportLinkKey, "report-link-key", "HMAC key of the one-click report links in user notices (at least 32 bytes, or whsec_...)"),
		settings.String(&c.PublicURL, "public-url", "public base URL of this HTTP server (report links; the issuer of security events, required with set-receiver)"),
		settings.Int(&c.Brake, "respond-brake", "response actions that log people out (revoke sessions, ...) allowed a minute per tenant; past it the rest are held until an operator releases them (pushback incidents release), and an alert says so"),
	}
}

// Validate reports every inconsistency.
func (c Config) Validate() error {
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
		if key, err := DecodeSecret(c.ReportLinkKey); err != nil || len(key) < MinReportKeyBytes {
			errs = append(errs, fmt.Errorf("report-link-key: must hold at least %d bytes", MinReportKeyBytes))
		}
		if c.PublicURL == "" {
			errs = append(errs, errors.New("public-url: is required with report-link-key (the links point there)"))
		}
	}
	if c.SETReceiver != "" {
		// The issuer of every SET is the public URL: a receiver discovers
		// the transmitter's keys from it (/.well-known/ssf-configuration).
		if c.PublicURL == "" {
			errs = append(errs, errors.New("public-url: is required with set-receiver (it is the issuer of security events)"))
		} else if _, err := NewSSFConfiguration(c.PublicURL); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Brake < 1 || c.Brake > 100000 {
		errs = append(errs, errors.New("respond-brake: must be between 1 and 100000"))
	}
	return errors.Join(errs...)
}
