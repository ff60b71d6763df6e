package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
)

// Email sends SOC alerts to fixed recipients and user notices to the
// user's address over SMTP, upgrading with STARTTLS whenever the server
// offers it.
type Email struct {
	// ChannelName names the channel (default "email").
	ChannelName string
	Host        string
	Port        int // default 587
	// Username and Password, when set, authenticate with PLAIN, which
	// net/smtp only sends over TLS (or to localhost). Password is a secret.
	Username, Password string
	From               string
	// To receives SOC alerts; without it the channel carries only notices.
	To []string
	// TLSConfig verifies the server on STARTTLS (ServerName defaults to
	// Host; RootCAs to the system pool).
	TLSConfig *tls.Config
	// RequireTLS refuses to send when the server does not offer STARTTLS.
	RequireTLS bool
	// HelloName is the name said in EHLO (default "localhost").
	HelloName string
	Now       func() time.Time
}

// Name implements Channel.
func (e *Email) Name() string {
	if e.ChannelName == "" {
		return "email"
	}
	return e.ChannelName
}

// Accepts implements Channel.
func (e *Email) Accepts(kind notifyv1.Kind) bool {
	return kind == notifyv1.Kind_KIND_SOC_ALERT && len(e.To) > 0 || kind == notifyv1.Kind_KIND_USER_NOTICE
}

// Wants implements Recipient: a notice needs the user's address.
func (e *Email) Wants(n *notifyv1.NotifyRequest) bool { return len(e.recipients(n)) > 0 }

// recipients of n: the SOC list for alerts, the user for notices (the
// user_email field, or a user id that is an address).
func (e *Email) recipients(n *notifyv1.NotifyRequest) []string {
	if n.GetKind() != notifyv1.Kind_KIND_USER_NOTICE {
		return e.To
	}
	for _, a := range []string{n.GetUserEmail(), n.GetUserId()} {
		if a == "" {
			continue
		}
		if addr, err := mail.ParseAddress(a); err == nil && addr.Name == "" {
			return []string{addr.Address}
		}
	}
	return nil
}

// headerValue strips what could end a header line.
func headerValue(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

// Message renders d as an RFC 5322 message. The Message-ID derives from
// the delivery id, so a retried delivery is recognisably the same mail.
func (e *Email) Message(d *notifyv1.Delivery, to []string, now time.Time) ([]byte, error) {
	subject, text := Render(d)
	var b bytes.Buffer
	h := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	h("From", headerValue(e.From))
	h("To", headerValue(strings.Join(to, ", ")))
	h("Subject", mime.QEncoding.Encode("utf-8", headerValue(subject)))
	h("Date", now.UTC().Format(time.RFC1123Z))
	h("Message-ID", "<"+headerValue(messageID(d))+"@pushback.notify>")
	h("Auto-Submitted", "auto-generated")
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(strings.ReplaceAll(text, "\n", "\r\n"))); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Deliver implements Channel: one SMTP session per delivery, bounded by
// ctx (the connection deadline follows it).
func (e *Email) Deliver(ctx context.Context, d *notifyv1.Delivery) error {
	to := e.recipients(d.GetNotification())
	if len(to) == 0 {
		return Permanent(errors.New("email: no recipient"))
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	msg, err := e.Message(d, to, now())
	if err != nil {
		return Permanent(err)
	}
	port := e.Port
	if port == 0 {
		port = 587
	}
	addr := net.JoinHostPort(e.Host, strconv.Itoa(port))
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c, err := smtp.NewClient(conn, e.Host)
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("smtp greeting: %w", err)
	}
	defer c.Close()
	if err := e.session(c, to, msg); err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	return nil
}

func (e *Email) session(c *smtp.Client, to []string, msg []byte) error {
	hello := e.HelloName
	if hello == "" {
		hello = "localhost"
	}
	if err := c.Hello(hello); err != nil {
		return err
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if e.TLSConfig != nil {
			cfg = e.TLSConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = e.Host
		}
		if err := c.StartTLS(cfg); err != nil {
			return fmt.Errorf("starttls: %w", err)
		}
	} else if e.RequireTLS {
		return errors.New("the server does not offer STARTTLS")
	}
	if e.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", e.Username, e.Password, e.Host)); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	if err := c.Mail(e.From); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return rcptError(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// rcptError makes a 5xx rejection of a recipient permanent (the mailbox
// does not exist); 4xx stays temporary.
func rcptError(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 {
		return Permanent(err)
	}
	return err
}
