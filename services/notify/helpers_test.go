package notify_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
	"github.com/pushbackhq/pushback/services/notify"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// clock is the injected time of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 4, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func newStore(t testing.TB) store.Store {
	t.Helper()
	return storetest.Memory(t, notify.Keyspaces()...)
}

// newService builds the service on the clock with small backoffs.
func newService(t testing.TB, st store.Store, clk *clock, opts notify.Options) *notify.Service {
	t.Helper()
	opts.Store = st
	opts.Now = clk.Now
	if opts.BaseBackoff == 0 {
		opts.BaseBackoff = time.Second
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	if opts.DeliveryTimeout == 0 {
		opts.DeliveryTimeout = 5 * time.Second
	}
	s, err := notify.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func deliverDue(t *testing.T, s *notify.Service) {
	t.Helper()
	if err := s.DeliverDue(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func list(t *testing.T, s *notify.Service, status notifyv1.Status) []*notifyv1.Delivery {
	t.Helper()
	resp, err := s.ListDeliveries(context.Background(), &notifyv1.ListDeliveriesRequest{Status: status, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetDeliveries()
}

// settle delivers until nothing is pending, jumping the clock to each next
// attempt; while every pending delivery is due and waits for its turn (a
// rate limit), the clock moves on by a second. It gives up after rounds
// jumps, or a day of clock.
func settle(t *testing.T, s *notify.Service, clk *clock, rounds int) {
	t.Helper()
	for start, jumps := clk.Now(), 0; jumps < rounds && clk.Now().Sub(start) < 24*time.Hour; {
		deliverDue(t, s)
		pending := list(t, s, notifyv1.Status_STATUS_PENDING)
		if len(pending) == 0 {
			return
		}
		var next time.Time
		for _, d := range pending {
			if at := d.GetNextAttemptTime().AsTime(); at.After(clk.Now()) && (next.IsZero() || at.Before(next)) {
				next = at
			}
		}
		if next.IsZero() {
			clk.Advance(time.Second)
			continue
		}
		clk.Set(next)
		jumps++
	}
	t.Fatalf("still pending after %d rounds: %v", rounds, list(t, s, notifyv1.Status_STATUS_PENDING))
}

func alert(key, user string, at time.Time, signals ...string) *notifyv1.NotifyRequest {
	return &notifyv1.NotifyRequest{
		Kind: notifyv1.Kind_KIND_SOC_ALERT, IdempotencyKey: key, UserId: user, DecisionId: "dec-" + key,
		Title: "Push denied for " + user, Message: "5 pushes in 10m",
		Attributes: map[string]string{"outcome": "OUTCOME_DENY", "score": "90", "signals": strings.Join(append([]string{"PUSH_BURST"}, signals...), ",")},
		Time:       timestamppb.New(at),
	}
}

func notifyOK(t *testing.T, s *notify.Service, req *notifyv1.NotifyRequest) *notifyv1.NotifyResponse {
	t.Helper()
	resp, err := s.Notify(context.Background(), req)
	if err != nil {
		t.Fatalf("Notify(%s): %v", req.GetIdempotencyKey(), err)
	}
	return resp
}

// verifyStandardWebhook checks the Standard Webhooks headers of a request
// with the official library; the tolerance of five minutes is checked
// against the test's clock, which the library cannot see.
func verifyStandardWebhook(secret []byte, h http.Header, body []byte, now time.Time) error {
	wh, err := standardwebhooks.NewWebhookRaw(secret)
	if err != nil {
		return err
	}
	if err := wh.VerifyIgnoringTimestamp(body, h); err != nil {
		return err
	}
	sec, err := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp %q", h.Get("webhook-timestamp"))
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %d is outside the tolerance", sec)
	}
	return nil
}

// hook is an HTTP receiver on 127.0.0.1 that verifies every request's
// Standard Webhooks signature and records it by webhook-id.
type hook struct {
	t      *testing.T
	secret []byte
	clk    *clock
	// respond decides the answer to the n-th request (1-based); nil is 200.
	respond func(n int, w http.ResponseWriter, r *http.Request) bool

	mu       sync.Mutex
	requests int
	order    []string
	bodies   map[string][]byte
	badSig   int
	srv      *httptest.Server
}

func newHook(t *testing.T, secret []byte, clk *clock) *hook {
	h := &hook{t: t, secret: secret, clk: clk, bodies: map[string][]byte{}}
	h.srv = httptest.NewServer(h)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.requests++
	n := h.requests
	h.mu.Unlock()
	if h.respond != nil && h.respond(n, w, r) {
		return
	}
	if len(h.secret) > 0 {
		if err := verifyStandardWebhook(h.secret, r.Header, body, h.clk.Now()); err != nil {
			h.mu.Lock()
			h.badSig++
			h.mu.Unlock()
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
	}
	id := r.Header.Get("webhook-id")
	h.mu.Lock()
	h.order = append(h.order, id)
	h.bodies[id] = body
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// received returns the bodies in arrival order, duplicates included.
func (h *hook) received() (ids []string, bodies [][]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range h.order {
		ids = append(ids, id)
		bodies = append(bodies, h.bodies[id])
	}
	return ids, bodies
}

func (h *hook) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.requests
}

func (h *hook) bad() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.badSig
}

func (h *hook) unique() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.bodies)
}

type webhookEvent struct {
	Type string `json:"type"`
	Data struct {
		DeliveryID   string `json:"deliveryId"`
		Notification struct {
			Kind       string            `json:"kind"`
			UserID     string            `json:"userId"`
			DecisionID string            `json:"decisionId"`
			Attributes map[string]string `json:"attributes"`
		} `json:"notification"`
		Incident *struct {
			IncidentID string    `json:"incidentId"`
			Count      int       `json:"count"`
			FirstTime  time.Time `json:"firstTime"`
			LastTime   time.Time `json:"lastTime"`
		} `json:"incident"`
	} `json:"data"`
}

func decodeEvent(t *testing.T, b []byte) webhookEvent {
	t.Helper()
	var e webhookEvent
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("webhook body %s: %v", b, err)
	}
	return e
}

func testSecret(t *testing.T) (string, []byte) {
	t.Helper()
	raw := make([]byte, 24)
	_, _ = rand.Read(raw)
	s := "whsec_" + base64.StdEncoding.EncodeToString(raw)
	key, err := notify.DecodeSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return s, key
}

// testCert returns a self-signed certificate for 127.0.0.1 and a pool
// that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// logBuffer captures log output to check that no secret reaches it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func decodeQP(t *testing.T, s string) string {
	t.Helper()
	b, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(s)))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n")
}

func unescape(t *testing.T, s string) string {
	t.Helper()
	u, err := url.QueryUnescape(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
