package notify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
)

// PushMessage is what a push provider delivers to the user's device.
type PushMessage struct {
	// ID is the delivery id: providers use it as the collapse or
	// idempotency key, so a retried push replaces rather than repeats.
	ID   string `json:"id"`
	Kind string `json:"kind"` // "push" or "notice"
	// Tenant, UserID and DeviceID address the device.
	Tenant     string `json:"tenant,omitempty"`
	UserID     string `json:"userId"`
	DeviceID   string `json:"deviceId,omitempty"`
	DecisionID string `json:"decisionId,omitempty"`
	Title      string `json:"title"`
	Body       string `json:"body"`
	// NumberChallenge is set when the decision downgraded the push to
	// number matching: the app must ask for this number.
	NumberChallenge string `json:"numberChallenge,omitempty"`
	// ReportURL is the one-click "this was not me" link of a notice.
	ReportURL string `json:"reportUrl,omitempty"`
	// ExpireTime is when the push is no longer worth showing.
	ExpireTime time.Time         `json:"expireTime"`
	Data       map[string]string `json:"data,omitempty"`
}

// PushProvider delivers push messages. Send must honour ctx; an error
// wrapped with Permanent is not retried (for example a device token the
// provider says is gone).
type PushProvider interface {
	Send(ctx context.Context, m PushMessage) error
}

// Push is the channel of pushes (and, when Notices is set, user notices)
// to the user's device through a provider.
type Push struct {
	// ChannelName names the channel (default "push").
	ChannelName string
	Provider    PushProvider
	// TTL is how long a push stays worth delivering (default 5m, the
	// lifetime of an Okta Verify push): a push that could not be delivered
	// by then is dropped, since a late prompt only breeds fatigue.
	TTL time.Duration
	// Notices also carries user notices to the device.
	Notices bool
	Now     func() time.Time
}

// Name implements Channel.
func (p *Push) Name() string {
	if p.ChannelName == "" {
		return "push"
	}
	return p.ChannelName
}

// Accepts implements Channel.
func (p *Push) Accepts(kind notifyv1.Kind) bool {
	return kind == notifyv1.Kind_KIND_PUSH || p.Notices && kind == notifyv1.Kind_KIND_USER_NOTICE
}

// ErrPushExpired is the permanent error of a push past its TTL.
var ErrPushExpired = errors.New("push expired before it could be delivered")

// Deliver implements Channel.
func (p *Push) Deliver(ctx context.Context, d *notifyv1.Delivery) error {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	ttl := p.TTL
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	n := d.GetNotification()
	created := d.GetCreateTime().AsTime()
	if n.GetTime() != nil {
		created = n.GetTime().AsTime()
	}
	m := PushMessage{
		ID: d.GetDeliveryId(), Tenant: n.GetTenant(), UserID: n.GetUserId(), DeviceID: n.GetDeviceId(),
		DecisionID: n.GetDecisionId(), Title: n.GetTitle(), Body: n.GetMessage(), Data: n.GetAttributes(),
	}
	if n.GetKind() == notifyv1.Kind_KIND_USER_NOTICE {
		m.Kind = "notice"
		m.Title, m.Body = Render(d)
		m.ReportURL = n.GetAttributes()[ReportURLAttribute]
		m.ExpireTime = now().Add(24 * time.Hour)
	} else {
		m.Kind = "push"
		m.NumberChallenge = n.GetNumberChallenge()
		m.ExpireTime = created.Add(ttl)
		if !now().Before(m.ExpireTime) {
			return Permanent(ErrPushExpired)
		}
		if m.Title == "" {
			m.Title = "Are you trying to sign in?"
		}
		if m.Body == "" && m.NumberChallenge != "" {
			m.Body = "Enter the number shown on your sign-in screen."
		}
	}
	return p.Provider.Send(ctx, m)
}

// WebhookPushProvider posts push messages to a mobile backend as
// Standard Webhooks events ("push.requested", "notice.created"), signed
// when Secret is set. The backend turns them into FCM or APNs requests.
type WebhookPushProvider struct {
	URL    string
	Secret []byte
	Client *http.Client
	Now    func() time.Time
}

// Send implements PushProvider.
func (w *WebhookPushProvider) Send(ctx context.Context, m PushMessage) error {
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	ts := now()
	typ := "push.requested"
	if m.Kind == "notice" {
		typ = "notice.created"
	}
	data, err := json.Marshal(m)
	if err != nil {
		return Permanent(err)
	}
	body, err := json.Marshal(webhookEvent{Type: typ, Timestamp: ts.UTC().Format(time.RFC3339), Data: data})
	if err != nil {
		return Permanent(err)
	}
	return postSigned(ctx, w.Client, w.URL, w.Secret, m.ID, ts, body)
}
