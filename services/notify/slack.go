package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
)

// Slack posts SOC alerts to a Slack-compatible incoming webhook (Slack,
// Mattermost, Rocket.Chat accept the same "text" payload; Slack also shows
// the blocks). The URL holds the secret and is never logged.
type Slack struct {
	// ChannelName names the channel (default "slack").
	ChannelName string
	URL         string
	// Kinds carried (SOC alerts when empty).
	Kinds  []notifyv1.Kind
	Client *http.Client
}

// Name implements Channel.
func (s *Slack) Name() string {
	if s.ChannelName == "" {
		return "slack"
	}
	return s.ChannelName
}

// Accepts implements Channel.
func (s *Slack) Accepts(kind notifyv1.Kind) bool {
	if len(s.Kinds) == 0 {
		return kind == notifyv1.Kind_KIND_SOC_ALERT
	}
	for _, k := range s.Kinds {
		if k == kind {
			return true
		}
	}
	return false
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// SlackPayload renders a delivery as an incoming-webhook message.
func SlackPayload(d *notifyv1.Delivery) ([]byte, error) {
	subject, text := Render(d)
	type txt struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	type block struct {
		Type     string `json:"type"`
		Text     *txt   `json:"text,omitempty"`
		Elements []txt  `json:"elements,omitempty"`
	}
	header := subject
	if len(header) > 150 { // Slack's limit for header blocks
		header = header[:147] + "..."
	}
	body := text
	if len(body) > 2900 { // a section holds 3000 characters
		body = body[:2900] + "\n..."
	}
	msg := struct {
		Text   string  `json:"text"`
		Blocks []block `json:"blocks"`
	}{
		Text: slackEscape.Replace(subject),
		Blocks: []block{
			{Type: "header", Text: &txt{Type: "plain_text", Text: header}},
			{Type: "section", Text: &txt{Type: "mrkdwn", Text: "```" + slackEscape.Replace(body) + "```"}},
			{Type: "context", Elements: []txt{{Type: "mrkdwn", Text: "pushback delivery " + slackEscape.Replace(d.GetDeliveryId())}}},
		},
	}
	return json.Marshal(msg)
}

// Deliver implements Channel. Slack answers 400, 403, 404 or 410 for a
// payload or a webhook it will never accept: those are permanent.
func (s *Slack) Deliver(ctx context.Context, d *notifyv1.Delivery) error {
	body, err := SlackPayload(d)
	if err != nil {
		return Permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return Permanent(redact(err))
	}
	req.Header.Set("Content-Type", "application/json")
	err = do(ctx, s.Client, req)
	var se *StatusError
	if errors.As(err, &se) {
		switch se.Code {
		case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusGone:
			return Permanent(err)
		}
	}
	return err
}
