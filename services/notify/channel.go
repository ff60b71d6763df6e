package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
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
// is configured, so an alert is never silently dropped.
type LogChannel struct{ Logger *slog.Logger }

// Name implements Channel.
func (LogChannel) Name() string { return "log" }

// Accepts implements Channel.
func (LogChannel) Accepts(kind notifyv1.Kind) bool { return kind == notifyv1.Kind_KIND_SOC_ALERT }

// Deliver implements Channel.
func (c LogChannel) Deliver(ctx context.Context, d *notifyv1.Delivery) error {
	n := d.GetNotification()
	c.Logger.WarnContext(ctx, "alert", slog.String("delivery_id", d.GetDeliveryId()), slog.String("title", n.GetTitle()),
		slog.String("message", n.GetMessage()), slog.String("decision_id", n.GetDecisionId()), slog.Any("attributes", n.GetAttributes()))
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

// Deliver implements Channel.
func (w *Webhook) Deliver(ctx context.Context, d *notifyv1.Delivery) error {
	body, err := webhookJSON.Marshal(d.GetNotification())
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	ts := now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pushback-notify/1")
	req.Header.Set("webhook-id", d.GetDeliveryId())
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	if len(w.Secret) > 0 {
		req.Header.Set("webhook-signature", Sign(w.Secret, d.GetDeliveryId(), ts, body))
	}
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	client := w.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}
