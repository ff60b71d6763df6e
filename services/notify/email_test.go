package notify_test

import (
	"crypto/tls"
	"errors"
	"io"
	"mime"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/services/notify"
)

// mailServer is a real SMTP server on 127.0.0.1 (go-smtp) that offers
// STARTTLS with a test certificate, accepts PLAIN only over TLS, and
// records what it receives.
type mailServer struct {
	host string
	port int
	user string
	pass string

	mu       sync.Mutex
	messages []receivedMail
	// rejectRcpt answers 550 for this recipient.
	rejectRcpt string
}

type receivedMail struct {
	from, tls, authed string
	to                []string
	msg               *mail.Message
	body              string
}

type mailSession struct {
	srv    *mailServer
	conn   *smtp.Conn
	authed string
	from   string
	to     []string
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.srv.user || pass != s.srv.pass {
			return errors.New("invalid credentials")
		}
		s.authed = user
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error { s.from = from; return nil }

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if to == s.srv.rejectRcpt {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	m, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(m.Body)
	tlsOn := "plain"
	if _, ok := s.conn.TLSConnectionState(); ok {
		tlsOn = "tls"
	}
	s.srv.mu.Lock()
	s.srv.messages = append(s.srv.messages, receivedMail{from: s.from, to: s.to, tls: tlsOn, authed: s.authed, msg: m, body: string(body)})
	s.srv.mu.Unlock()
	return nil
}

func (s *mailSession) Reset()        { s.from, s.to = "", nil }
func (s *mailSession) Logout() error { return nil }

func startMailServer(t *testing.T, withTLS bool) (*mailServer, *tls.Config) {
	t.Helper()
	ms := &mailServer{user: "pushback", pass: "s3cret-smtp-pass"}
	be := smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &mailSession{srv: ms, conn: c}, nil })
	srv := smtp.NewServer(be)
	srv.Domain = "127.0.0.1"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	cert, pool := testCert(t)
	if withTLS {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	host, port, _ := net.SplitHostPort(l.Addr().String())
	ms.host = host
	ms.port, _ = strconv.Atoi(port)
	return ms, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func (ms *mailServer) received() []receivedMail {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]receivedMail(nil), ms.messages...)
}

func TestEmailOverSTARTTLS(t *testing.T) {
	clk := newClock()
	ms, clientTLS := startMailServer(t, true)
	logs := &logBuffer{}
	links := &notify.ReportLinks{Key: []byte(strings.Repeat("k", 32)), BaseURL: "https://pushback.example.com"}
	email := &notify.Email{
		Host: ms.host, Port: ms.port, Username: ms.user, Password: ms.pass, From: "pushback@example.com",
		To: []string{"soc@example.com"}, TLSConfig: clientTLS, RequireTLS: true, Now: clk.Now,
	}
	s := newService(t, newStore(t), clk, notify.Options{Channels: []notify.Channel{email}, ReportLinks: links, Logger: logs.logger(), NoticeDelay: time.Minute})
	req := alert("deny:1", "alice", clk.Now())
	req.UserEmail = "alice@example.com"
	notifyOK(t, s, req)
	for i := 2; i <= 3; i++ {
		clk.Advance(10 * time.Second)
		r := alert("deny:"+strconv.Itoa(i), "alice", clk.Now())
		r.UserEmail = "alice@example.com"
		notifyOK(t, s, r)
	}
	deliverDue(t, s)
	clk.Advance(time.Minute)
	deliverDue(t, s)
	got := ms.received()
	if len(got) != 2 {
		t.Fatalf("server received %d messages, want the alert and the notice", len(got))
	}
	soc, notice := got[0], got[1]
	for _, m := range got {
		if m.tls != "tls" || m.authed != ms.user || m.from != "pushback@example.com" {
			t.Fatalf("message sent %s, authenticated as %q, from %q", m.tls, m.authed, m.from)
		}
		if !strings.HasSuffix(m.msg.Header.Get("Message-Id"), "@pushback.notify>") {
			t.Fatalf("Message-ID %q", m.msg.Header.Get("Message-Id"))
		}
	}
	// The alert waited in the outbox while the burst went on: it carries
	// the whole incident and the latest decision.
	if sb := decodeQP(t, soc.body); strings.Join(soc.to, ",") != "soc@example.com" || !strings.Contains(sb, "decision: dec-deny:3") ||
		!strings.Contains(sb, "3 blocked pushes for user alice") {
		t.Fatalf("SOC alert to %v:\n%s", soc.to, sb)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(notice.msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(notice.to, ",") != "alice@example.com" || subject != "We blocked 3 push requests you did not start" {
		t.Fatalf("notice to %v subject %q", notice.to, subject)
	}
	body := decodeQP(t, notice.body)
	i := strings.Index(body, "https://pushback.example.com/v1/report?t=")
	if i < 0 {
		t.Fatalf("notice has no report link:\n%s", body)
	}
	link := strings.Fields(body[i:])[0]
	tok := strings.TrimPrefix(link, "https://pushback.example.com/v1/report?t=")
	c, err := links.Verify(unescape(t, tok), clk.Now())
	if err != nil || c.UserID != "alice" {
		t.Fatalf("report link claims %+v: %v", c, err)
	}
	if strings.Contains(logs.String(), ms.pass) {
		t.Fatal("the SMTP password reached the log")
	}
}

func TestEmailFailures(t *testing.T) {
	cases := []struct {
		name       string
		withTLS    bool
		requireTLS bool
		rcpt       string
		want       notifyv1.Status
	}{
		{name: "no STARTTLS offered but required: retried", withTLS: false, requireTLS: true, want: notifyv1.Status_STATUS_PENDING},
		{name: "no STARTTLS offered, plain allowed to loopback", withTLS: false, want: notifyv1.Status_STATUS_DELIVERED},
		{name: "mailbox rejected with 550: dead at once", withTLS: true, rcpt: "gone@example.com", want: notifyv1.Status_STATUS_DEAD},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			ms, clientTLS := startMailServer(t, tc.withTLS)
			ms.rejectRcpt = "gone@example.com"
			to := tc.rcpt
			if to == "" {
				to = "soc@example.com"
			}
			email := &notify.Email{Host: ms.host, Port: ms.port, From: "pushback@example.com", To: []string{to}, TLSConfig: clientTLS, RequireTLS: tc.requireTLS}
			s := newService(t, newStore(t), clk, notify.Options{Channels: []notify.Channel{email}})
			notifyOK(t, s, alert("deny:1", "alice", clk.Now()))
			deliverDue(t, s)
			d := list(t, s, notifyv1.Status_STATUS_UNSPECIFIED)
			if len(d) != 1 || d[0].GetStatus() != tc.want {
				t.Fatalf("deliveries %v, want one %v", d, tc.want)
			}
		})
	}
}

func TestEmailNoticeNeedsAnAddress(t *testing.T) {
	clk := newClock()
	email := &notify.Email{Host: "127.0.0.1", Port: 1, From: "pushback@example.com"}
	s := newService(t, newStore(t), clk, notify.Options{Channels: []notify.Channel{email}})
	for _, tc := range []struct {
		user, email string
		want        int
	}{{"bob", "", 0}, {"bob@example.com", "", 1}, {"bob", "bob@example.com", 1}} {
		resp := notifyOK(t, s, &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_USER_NOTICE, IdempotencyKey: tc.user + tc.email, UserId: tc.user, UserEmail: tc.email})
		if len(resp.GetDeliveryIds()) != tc.want {
			t.Fatalf("user %q email %q: %d deliveries, want %d", tc.user, tc.email, len(resp.GetDeliveryIds()), tc.want)
		}
	}
}
