package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/telemetry"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/protobuf/encoding/protojson"
)

// Channel delivers one notification somewhere. Deliver must honour ctx.
type Channel interface {
	// Name identifies the channel in deliveries.
	Name() string
	// Accepts reports whether the channel carries notifications of kind.
	Accepts(kind notifyv1.Kind) bool
	// Deliver sends the notification; an error means "retry later".
	Deliver(ctx context.Context, d *notifyv1.Delivery) error
}

// LogChannel writes SOC alerts to the log; it is the channel when no other
// is configured, so an alert is never silently dropped. Logs are telemetry:
// the user id is written as its keyed hash (raw only when the operator
// turned raw ids on); `pushback explain` on the decision id names the user.
type LogChannel struct {
	Logger *slog.Logger
	// Redactor hashes the user id ("redacted" when nil).
	Redactor *telemetry.Redactor
}

// Name implements Channel.
func (LogChannel) Name() string { return "log" }

// Accepts implements Channel.
func (LogChannel) Accepts(kind notifyv1.Kind) bool { return kind == notifyv1.Kind_KIND_SOC_ALERT }

// Deliver implements Channel.
func (c LogChannel) Deliver(ctx context.Context, d *notifyv1.Delivery) error {
	n := d.GetNotification()
	title, message, user := n.GetTitle(), n.GetMessage(), c.Redactor.User(n.GetUserId())
	if u := n.GetUserId(); u != "" && user != u {
		title, message = strings.ReplaceAll(title, u, "user "+user), strings.ReplaceAll(message, u, "user "+user)
	}
	c.Logger.WarnContext(ctx, "alert", slog.String("delivery_id", d.GetDeliveryId()), slog.String("title", title),
		slog.String("message", message), slog.String("decision_id", n.GetDecisionId()), slog.String("user_hash", user),
		slog.Any("attributes", n.GetAttributes()))
	return nil
}

// Webhook posts notifications as JSON, signed per the Standard Webhooks
// specification when a secret is set.
type Webhook struct {
	// ChannelName names the channel (default "webhook").
	ChannelName string
	URL         string
	// Secret is the signing key, "whsec_" + base64, or raw bytes.
	Secret []byte
	// Kinds carried (SOC alerts when empty).
	Kinds  []notifyv1.Kind
	Client *http.Client
	Now    func() time.Time
}

// Name implements Channel.
func (w *Webhook) Name() string {
	if w.ChannelName == "" {
		return "webhook"
	}
	return w.ChannelName
}

// Accepts implements Channel.
func (w *Webhook) Accepts(kind notifyv1.Kind) bool {
	if len(w.Kinds) == 0 {
		return kind == notifyv1.Kind_KIND_SOC_ALERT
	}
	for _, k := range w.Kinds {
		if k == kind {
			return true
		}
	}
	return false
}

// DecodeSecret turns a "whsec_<base64>" secret into key bytes.
func DecodeSecret(s string) ([]byte, error) {
	if rest, ok := strings.CutPrefix(s, "whsec_"); ok {
		return base64.StdEncoding.DecodeString(rest)
	}
	return []byte(s), nil
}

// Sign returns the Standard Webhooks signature header value.
func Sign(secret []byte, id string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	fmt.Fprintf(mac, "%s.%d.", id, ts.Unix())
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

var webhookJSON = protojson.MarshalOptions{UseProtoNames: false, EmitUnpopulated: false}

// webhookEvent is the Standard Webhooks payload shape: a type, a timestamp
// and the data.
type webhookEvent struct {
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// eventType names a notification in webhook payloads.
func eventType(d *notifyv1.Delivery) string {
	switch d.GetNotification().GetKind() {
	case notifyv1.Kind_KIND_SOC_ALERT:
		if d.GetIncident().GetCount() > 1 {
			return "alert.updated"
		}
		return "alert.raised"
	case notifyv1.Kind_KIND_PUSH:
		return "push.requested"
	case notifyv1.Kind_KIND_USER_NOTICE:
		return "notice.created"
	case notifyv1.Kind_KIND_SECURITY_EVENT:
		return "security_event.created"
	}
	return "notification.created"
}

// webhookBody renders a delivery as a Standard Webhooks event whose data is
// the notification, with the incident when there is one.
func webhookBody(d *notifyv1.Delivery, ts time.Time) ([]byte, error) {
	n, err := webhookJSON.Marshal(d.GetNotification())
	if err != nil {
		return nil, err
	}
	data := map[string]json.RawMessage{"deliveryId": mustJSON(d.GetDeliveryId()), "notification": n}
	if d.GetIncident() != nil {
		inc, err := webhookJSON.Marshal(d.GetIncident())
		if err != nil {
			return nil, err
		}
		data["incident"] = inc
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	return json.Marshal(webhookEvent{Type: eventType(d), Timestamp: ts.UTC().Format(time.RFC3339), Data: raw})
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// Deliver implements Channel.
func (w *Webhook) Deliver(ctx context.Context, d *notifyv1.Delivery) error {
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	ts := now()
	body, err := webhookBody(d, ts)
	if err != nil {
		return err
	}
	return postSigned(ctx, w.Client, w.URL, w.Secret, messageID(d), ts, body)
}

// messageID names what a delivery carries: its id, plus the incident count
// once more denials were folded in. A retry of one version keeps its id (a
// receiver drops the duplicate); a new version gets a new one (a receiver
// that drops repeated ids still gets the update).
func messageID(d *notifyv1.Delivery) string {
	if c := d.GetIncident().GetCount(); c > 1 {
		return fmt.Sprintf("%s.%d", d.GetDeliveryId(), c)
	}
	return d.GetDeliveryId()
}

// postSigned posts a JSON body with the Standard Webhooks headers, signed
// when secret is set. The message id is the delivery id, so a retry carries
// the same id and a receiver can drop the duplicate.
func postSigned(ctx context.Context, client *http.Client, url string, secret []byte, id string, ts time.Time, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	if len(secret) > 0 {
		req.Header.Set("webhook-signature", Sign(secret, id, ts, body))
	}
	return do(ctx, client, req)
}

// do sends req and turns any answer but 2xx into an error. The body read is
// bounded; a redirect is not followed.
func do(ctx context.Context, client *http.Client, req *http.Request) error {
	req.Header.Set("User-Agent", "pushback-notify/1")
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return redact(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &StatusError{Code: resp.StatusCode, Status: resp.Status, URL: redactURL(req.URL.String())}
	}
	return nil
}

// StatusError is a receiver's answer other than 2xx.
type StatusError struct {
	Code   int
	Status string
	// URL is the receiver with its path redacted.
	URL string
}

func (e *StatusError) Error() string { return e.URL + " answered " + e.Status }

// defaultClient bounds every call even when the caller's context has no
// deadline, and never follows redirects (a signed body is for its URL only).
var defaultClient = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// redact drops the URL from a transport error: incoming-webhook URLs (Slack)
// carry their secret in the path and must never reach a log.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, redactURL(ue.URL), ue.Err)
	}
	return err
}

// redactURL keeps scheme and host only.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(url)"
	}
	return u.Scheme + "://" + u.Host + "/..."
}

// permanentError marks a failure that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying: the delivery is dead-lettered
// at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
