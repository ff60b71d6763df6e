package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ReportPath is where the mesh serves report links.
const ReportPath = "/v1/report"

// MinReportKeyBytes is the shortest report-link key accepted.
const MinReportKeyBytes = 32

// maxTokenBytes bounds a token before any parsing.
const maxTokenBytes = 2048

// ReportLinks mints and verifies the signed, expiring links of user
// notices. A token is base64url(JSON claims) "." base64url(HMAC-SHA256).
type ReportLinks struct {
	// Key signs the tokens (at least MinReportKeyBytes).
	Key []byte
	// BaseURL is the public address of the mesh HTTP server, for example
	// https://pushback.example.com.
	BaseURL string
	// TTL is how long a link works (default 72h).
	TTL time.Duration
}

// ReportClaims are what a report link says.
type ReportClaims struct {
	Tenant string `json:"t,omitempty"`
	UserID string `json:"u"`
	// Nonce makes the report of one incident one event: repeated clicks are
	// duplicates in intake.
	Nonce   string `json:"n"`
	Expires int64  `json:"exp"`
}

// Errors of Verify.
var (
	ErrTokenInvalid = errors.New("report link is not valid")
	ErrTokenExpired = errors.New("report link has expired")
)

func (l *ReportLinks) ttl() time.Duration {
	if l.TTL <= 0 {
		return 72 * time.Hour
	}
	return l.TTL
}

func (l *ReportLinks) mac(payload string) []byte {
	m := hmac.New(sha256.New, l.Key)
	m.Write([]byte("pushback-report-v1."))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// Token signs c, expiring TTL after now.
func (l *ReportLinks) Token(c ReportClaims, now time.Time) string {
	c.Expires = now.Add(l.ttl()).Unix()
	b, _ := json.Marshal(c)
	p := base64.RawURLEncoding.EncodeToString(b)
	return p + "." + base64.RawURLEncoding.EncodeToString(l.mac(p))
}

// URL is the link for c.
func (l *ReportLinks) URL(c ReportClaims, now time.Time) string {
	return strings.TrimSuffix(l.BaseURL, "/") + ReportPath + "?t=" + url.QueryEscape(l.Token(c, now))
}

// Verify checks a token's signature and expiry and returns its claims.
func (l *ReportLinks) Verify(token string, now time.Time) (ReportClaims, error) {
	var c ReportClaims
	if len(token) > maxTokenBytes || len(l.Key) == 0 {
		return c, ErrTokenInvalid
	}
	p, sig, ok := strings.Cut(token, ".")
	if !ok {
		return c, ErrTokenInvalid
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, l.mac(p)) {
		return c, ErrTokenInvalid
	}
	b, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return c, ErrTokenInvalid
	}
	if err := json.Unmarshal(b, &c); err != nil || c.UserID == "" || c.Nonce == "" {
		return ReportClaims{}, ErrTokenInvalid
	}
	if now.Unix() >= c.Expires {
		return c, ErrTokenExpired
	}
	return c, nil
}

// Ingester is the part of the intake service a report click calls.
type Ingester interface {
	Ingest(ctx context.Context, in *intakev1.IngestRequest, opts ...grpc.CallOption) (*intakev1.IngestResponse, error)
}

// Notifier is the part of the notification service a report click calls.
type Notifier interface {
	Notify(ctx context.Context, in *notifyv1.NotifyRequest, opts ...grpc.CallOption) (*notifyv1.NotifyResponse, error)
}

// ReportHandlerOptions configures ReportHandler.
type ReportHandlerOptions struct {
	Links  *ReportLinks
	Intake Ingester
	// Notifier, when set, also queues a CAEP session-revoked security
	// event for the user: who says "not me" has an attacker holding the
	// password.
	Notifier Notifier
	Logger   *slog.Logger
	Now      func() time.Time
	// Timeout bounds the calls a click makes (default 5s).
	Timeout time.Duration
}

// ReportHandler serves report links. GET shows a confirmation page whose
// one button POSTs the token: mail scanners that prefetch every link must
// not file reports on the user's behalf. POST records a FRAUD_REPORTED
// event in intake, whose event id is derived from the token's nonce, so
// repeated clicks are one report.
func ReportHandler(o ReportHandlerOptions) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
		var token string
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			token = r.URL.Query().Get("t")
		case http.MethodPost:
			r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
			if err := r.ParseForm(); err != nil {
				page(w, http.StatusBadRequest, pageInvalid, "")
				return
			}
			token = r.PostForm.Get("t")
		default:
			w.Header().Set("Allow", "GET, HEAD, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		c, err := o.Links.Verify(token, o.Now())
		switch {
		case errors.Is(err, ErrTokenExpired):
			page(w, http.StatusGone, pageExpired, "")
			return
		case err != nil:
			page(w, http.StatusBadRequest, pageInvalid, "")
			return
		}
		if r.Method != http.MethodPost {
			page(w, http.StatusOK, pageConfirm, token)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), o.Timeout)
		defer cancel()
		now := o.Now()
		_, err = o.Intake.Ingest(ctx, &intakev1.IngestRequest{Events: []*eventv1.AuthEvent{{
			EventId: "report:" + c.Nonce,
			Tenant:  c.Tenant,
			UserId:  c.UserID,
			Type:    eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED,
			Time:    timestamppb.New(now),
			Factor:  eventv1.Factor_FACTOR_PUSH,
			Source:  &eventv1.Source{Idp: "pushback", RawEventType: "notify.report_link"},
		}}})
		if err != nil {
			o.Logger.WarnContext(ctx, "record fraud report", slog.Any("error", err))
			page(w, http.StatusServiceUnavailable, pageRetry, token)
			return
		}
		if o.Notifier != nil {
			_, err := o.Notifier.Notify(ctx, &notifyv1.NotifyRequest{
				Kind: notifyv1.Kind_KIND_SECURITY_EVENT, IdempotencyKey: "report-revoke:" + c.Nonce,
				Tenant: c.Tenant, UserId: c.UserID, Time: timestamppb.New(now),
				SecurityEvent: &notifyv1.SecurityEvent{
					Type:        notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_SESSION_REVOKED,
					ReasonAdmin: "the user reported push requests they did not start",
					ReasonUser:  "you reported sign-in requests you did not start",
				},
			})
			if err != nil {
				o.Logger.WarnContext(ctx, "queue session revocation", slog.Any("error", err))
			}
		}
		page(w, http.StatusOK, pageThanks, "")
	})
}

const (
	pageConfirm = "confirm"
	pageThanks  = "thanks"
	pageExpired = "expired"
	pageInvalid = "invalid"
	pageRetry   = "retry"
)

var pages = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Report sign-in requests</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;line-height:1.5}button{font-size:1.1rem;padding:.6rem 1.2rem}</style>
</head><body>
{{- if eq .Page "confirm"}}
<h1>Were these sign-in requests not you?</h1>
<p>We blocked push requests to your account that you may not have started.</p>
<form method="post"><input type="hidden" name="t" value="{{.Token}}"><button type="submit">Report: this was not me</button></form>
<p>Afterwards, change your password.</p>
{{- else if eq .Page "thanks"}}
<h1>Thank you</h1>
<p>Your report reached your security team. Change your password now, and never approve a push request you did not start.</p>
{{- else if eq .Page "expired"}}
<h1>This link has expired</h1>
<p>Please tell your security team directly.</p>
{{- else if eq .Page "retry"}}
<h1>Please try again</h1>
<p>Your report could not be recorded just now.</p>
<form method="post"><input type="hidden" name="t" value="{{.Token}}"><button type="submit">Try again</button></form>
{{- else}}
<h1>This link is not valid</h1>
<p>Please tell your security team directly.</p>
{{- end}}
</body></html>
`))

func page(w http.ResponseWriter, status int, name, token string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = pages.Execute(w, struct{ Page, Token string }{name, token})
}
