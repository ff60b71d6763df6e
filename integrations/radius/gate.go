// Package radius is the RADIUS gate: it stands between a VPN and the MFA
// proxy that sends its push (the Duo Authentication Proxy, for example),
// asks Pushback's decision service before each push, and answers the VPN
// itself when the push must not be sent.
//
// The VPN sends Access-Request to the gate as it would to the MFA proxy.
// The gate checks the packet (RFC 2865, and RFC 3579's
// Message-Authenticator, required by default against Blast-RADIUS), asks
// Decide, and then either forwards the request to the MFA proxy (ALLOW:
// the password re-encrypted for the proxy's secret, a fresh authenticator,
// its own Message-Authenticator) and returns the proxy's answer re-signed
// for the VPN, or answers Access-Reject (DENY, REQUIRE_PHISHING_RESISTANT)
// or Access-Challenge for a one-time passcode (REQUIRE_NUMBER_MATCH) with a
// Reply-Message that says why and that no push was sent. Retransmissions get
// the same answer from one decision and one upstream call. What happened to
// each push is reported to intake for scoring. See docs/radius.md.
package radius

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	"github.com/pushbackhq/pushback/pkg/telemetry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	layeh "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
)

// Decider is the part of the decision service the gate calls.
type Decider interface {
	Decide(ctx context.Context, in *decisionv1.DecideRequest, opts ...grpc.CallOption) (*decisionv1.DecideResponse, error)
}

// Ingester is the part of the intake service outcomes are reported to.
type Ingester interface {
	Ingest(ctx context.Context, in *intakev1.IngestRequest, opts ...grpc.CallOption) (*intakev1.IngestResponse, error)
}

// Counters are the gate's counts: plain atomics that tests read directly
// and a metrics exporter can observe.
type Counters struct {
	// Requests: Access-Requests that passed the checks, retransmits
	// included.
	Requests atomic.Int64
	// Retransmits answered from memory, or dropped while the first copy
	// was being worked on.
	Retransmits atomic.Int64
	// Dropped: packets dropped unanswered (malformed, a bad or missing
	// Message-Authenticator, not an Access-Request, too many in flight).
	Dropped atomic.Int64
	// Decides: Decide calls made.
	Decides atomic.Int64
	// DecideFailures: Decide calls that failed (the fail mode answered).
	DecideFailures atomic.Int64
	// Upstream: Access-Requests sent to the MFA proxy.
	Upstream atomic.Int64
	// UpstreamFailures: upstream exchanges without a verified answer.
	UpstreamFailures atomic.Int64
	// Rejected: Access-Rejects the gate answered itself (no push sent).
	Rejected atomic.Int64
	// Challenged: passcode prompts the gate sent.
	Challenged atomic.Int64
	// Reported: outcomes accepted by intake.
	Reported atomic.Int64
	// ReportsDropped: outcomes that could not be reported.
	ReportsDropped atomic.Int64
}

// Options are the gate's collaborators.
type Options struct {
	// Decider is the decision service (required).
	Decider Decider
	// Ingester receives outcomes when Config.ReportOutcomes is set.
	Ingester Ingester
	// Logger (slog.Default when nil).
	Logger *slog.Logger
	// Counters, when set, receives the gate's counts.
	Counters *Counters
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Ready, when set, is called with the bound address once serving.
	Ready func(addr net.Addr)
}

// Gate is a running RADIUS gate.
type Gate struct {
	cfg      Config
	opts     Options
	secret   []byte
	log      *slog.Logger
	counters *Counters
	now      func() time.Time
	redact   *telemetry.Redactor
	dups     *dupCache
	pending  *pendingStore
	up       *upstream
	report   *reporter
	slots    chan struct{}
	warned   sync.Map // why -> time of the last warning
}

// New returns a gate; cfg must be complete (see Config.Complete).
func New(cfg Config, opts Options) (*Gate, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Decider == nil {
		return nil, errors.New("radius: a Decider is required")
	}
	g := &Gate{cfg: cfg, opts: opts, secret: []byte(cfg.Secret), log: opts.Logger, counters: opts.Counters, now: opts.Now,
		redact:  telemetry.NewRedactor(nil, false),
		dups:    newDupCache(cfg.DuplicateWindow, maxAnswered),
		pending: newPendingStore(cfg.ChallengeTimeout, maxPending),
		slots:   make(chan struct{}, cfg.MaxInFlight)}
	if g.log == nil {
		g.log = slog.Default()
	}
	if g.counters == nil {
		g.counters = &Counters{}
	}
	if g.now == nil {
		g.now = time.Now
	}
	g.up = &upstream{addr: cfg.Upstream, secret: []byte(cfg.UpstreamSecret), requireMA: cfg.UpstreamRequireMessageAuthenticator, log: g.log}
	if cfg.ReportOutcomes && opts.Ingester != nil {
		g.report = newReporter(opts.Ingester, cfg.IntakeTimeout, g.log, g.counters)
	}
	return g, nil
}

// ListenAndServe listens on the configured UDP address and serves until
// ctx ends, then shuts down gracefully (see Serve).
func (g *Gate) ListenAndServe(ctx context.Context) error {
	conn, err := net.ListenPacket("udp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("radius: listen: %w", err)
	}
	defer conn.Close()
	return g.Serve(ctx, conn)
}

// Serve answers the Access-Requests arriving on conn until ctx ends. It
// then stops reading, lets the requests in flight finish for up to
// shutdown-timeout (cancelling the rest, which go unanswered so that the
// VPN turns to its next server), and sends the outcomes still queued for
// intake within the same bound. It does not close conn.
func (g *Gate) Serve(ctx context.Context, conn net.PacketConn) error {
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopRead := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stopRead()
	g.log.Info("radius: gate serving", slog.String("listen", conn.LocalAddr().String()), slog.String("upstream", g.cfg.Upstream),
		slog.String("fail_mode", g.cfg.FailMode), slog.String("number_match_mode", g.cfg.NumberMatchMode),
		slog.Bool("require_message_authenticator", g.cfg.RequireMessageAuthenticator),
		slog.Bool("upstream_require_message_authenticator", g.cfg.UpstreamRequireMessageAuthenticator))
	if g.opts.Ready != nil {
		g.opts.Ready(conn.LocalAddr())
	}
	var wg sync.WaitGroup
	// One byte more than the largest packet tells an oversized datagram.
	buf := make([]byte, layeh.MaxPacketLength+1)
	var serveErr error
	for {
		n, src, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			serveErr = fmt.Errorf("radius: read: %w", err)
			break
		}
		g.receive(work, conn, append([]byte(nil), buf[:n]...), src, &wg)
	}
	g.shutdown(&wg, cancelWork)
	return serveErr
}

// shutdown waits for the requests in flight and the reports queued.
func (g *Gate) shutdown(wg *sync.WaitGroup, cancelWork context.CancelFunc) {
	deadline := time.Now().Add(g.cfg.ShutdownTimeout)
	idle := make(chan struct{})
	go func() { wg.Wait(); close(idle) }()
	select {
	case <-idle:
	case <-time.After(time.Until(deadline)):
		g.log.Warn("radius: shutdown deadline passed; cancelling the requests in flight")
		cancelWork()
		<-idle
	}
	if g.report != nil {
		ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(g.cfg.IntakeTimeout))
		g.report.close(ctx)
		cancel()
	}
	g.log.Info("radius: gate stopped")
}

// warnEvery logs a warning at most once per 10 seconds per reason, so that
// a flood of bad packets cannot flood the log.
func (g *Gate) warnEvery(why string, attrs ...any) {
	now := g.now()
	if last, ok := g.warned.Load(why); ok && now.Sub(last.(time.Time)) < 10*time.Second {
		return
	}
	g.warned.Store(why, now)
	g.log.Warn("radius: "+why, attrs...)
}

// receive checks one datagram and starts working on it.
func (g *Gate) receive(ctx context.Context, conn net.PacketConn, b []byte, src net.Addr, wg *sync.WaitGroup) {
	req, why := g.parse(b, src)
	if req == nil {
		g.counters.Dropped.Add(1)
		g.warnEvery("dropped a packet: "+why, slog.String("from", addrIP(src).String()))
		return
	}
	g.counters.Requests.Add(1)
	key := dupKey{src: src.String(), id: req.pkt.Identifier, auth: req.pkt.Authenticator}
	answer, state := g.dups.begin(key, req.received)
	switch state {
	case dupInFlight:
		g.counters.Retransmits.Add(1)
		return
	case dupAnswered:
		g.counters.Retransmits.Add(1)
		_, _ = conn.WriteTo(answer, src)
		return
	}
	select {
	case g.slots <- struct{}{}:
	default:
		g.dups.finish(key, nil, g.now())
		g.counters.Dropped.Add(1)
		g.warnEvery("dropped a request: max-inflight requests are being worked on")
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { <-g.slots }()
		var wire []byte
		if resp := g.handle(ctx, req); resp != nil {
			var err error
			if wire, err = encodeResponse(resp, req.pkt.Authenticator); err != nil {
				g.log.Error("radius: answer could not be encoded; rejecting", slog.Any("error", err))
				wire, _ = encodeResponse(g.reject(req, msgInternal), req.pkt.Authenticator)
			}
		}
		if wire != nil {
			if _, err := conn.WriteTo(wire, src); err != nil {
				g.log.Warn("radius: answer not sent", slog.Any("error", err))
			}
		}
		g.dups.finish(key, wire, g.now())
	}()
}

// request is a checked Access-Request or Status-Server.
type request struct {
	pkt      *layeh.Packet
	src      net.Addr
	srcIP    netip.Addr
	received time.Time
}

// parse checks a datagram: a well-formed Access-Request or Status-Server
// whose Message-Authenticator is right (and present, when required; a
// Status-Server must carry one, RFC 5997). It says why not otherwise.
func (g *Gate) parse(b []byte, src net.Addr) (*request, string) {
	if len(b) > layeh.MaxPacketLength {
		return nil, "larger than 4096 bytes"
	}
	pkt, err := layeh.Parse(b, g.secret)
	if err != nil {
		return nil, "malformed"
	}
	switch pkt.Code {
	case layeh.CodeAccessRequest, layeh.CodeStatusServer:
	default:
		return nil, fmt.Sprintf("code %d is not Access-Request", pkt.Code)
	}
	present, err := messageAuthenticator(b, g.secret, nil)
	switch {
	case err != nil:
		return nil, "wrong Message-Authenticator (a wrong secret, or a forged packet)"
	case !present && (g.cfg.RequireMessageAuthenticator || pkt.Code == layeh.CodeStatusServer):
		return nil, "no Message-Authenticator (required: configure the VPN to send it, or set --require-message-authenticator=false)"
	}
	return &request{pkt: pkt, src: src, srcIP: addrIP(src), received: g.now()}, ""
}

// addrIP is the IP of a UDP address.
func addrIP(a net.Addr) netip.Addr {
	if u, ok := a.(*net.UDPAddr); ok {
		ip, _ := netip.AddrFromSlice(u.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// attempt is one login as the gate tracks it, from the decision to the
// report of its outcome.
type attempt struct {
	id         string
	user       string
	app        string
	clientIP   string
	factor     eventv1.Factor
	decisionID string
}

// handle answers one request; nil means no answer.
func (g *Gate) handle(ctx context.Context, req *request) *layeh.Packet {
	if req.pkt.Code == layeh.CodeStatusServer {
		return req.pkt.Response(layeh.CodeAccessAccept)
	}
	p := req.pkt
	users, _ := rfc2865.UserName_GetStrings(p)
	if len(users) != 1 || users[0] == "" || !utf8.ValidString(users[0]) {
		return g.reject(req, msgNoUser)
	}
	user := users[0]
	if _, ok := p.Lookup(rfc2869.EAPMessage_Type); ok {
		return g.reject(req, msgPAPOnly)
	}
	if _, ok := p.Lookup(rfc2865.CHAPPassword_Type); ok {
		return g.reject(req, msgPAPOnly)
	}
	// Decrypted with the VPN's secret and the Request Authenticator.
	pws, err := rfc2865.UserPassword_Gets(p)
	if err != nil || len(pws) != 1 {
		return g.reject(req, msgPAPOnly)
	}
	password := pws[0]
	nasID := rfc2865.NASIdentifier_GetString(p)
	if state, ok := p.Lookup(rfc2865.State_Type); ok {
		return g.continueChallenge(ctx, req, string(state), user, nasID, password)
	}
	return g.decide(ctx, req, user, nasID, password)
}

// decide asks the decision service and acts on its answer.
func (g *Gate) decide(ctx context.Context, req *request, user, nasID string, password []byte) *layeh.Packet {
	base, factor := password, eventv1.Factor_FACTOR_PUSH
	if g.cfg.NumberMatchMode == NumberMatchAppend {
		base, factor = splitFactor(password, g.cfg.NumberMatchDelimiter[0])
	}
	at := attempt{id: attemptID(nasID, req.pkt, user), user: user, app: g.appOf(nasID),
		clientIP: callingIP(rfc2865.CallingStationID_GetString(req.pkt)), factor: factor}
	dreq := &decisionv1.DecideRequest{UserId: user, AppId: at.app, Factor: factor, AttemptId: at.id,
		Time: timestamppb.New(req.received), Tenant: g.cfg.Tenant}
	if at.clientIP != "" {
		dreq.Client = &eventv1.Client{Ip: at.clientIP}
	}
	dctx, cancel := context.WithTimeout(ctx, g.cfg.DecideTimeout)
	g.counters.Decides.Add(1)
	resp, err := g.opts.Decider.Decide(dctx, dreq)
	late := dctx.Err() != nil
	cancel()
	log := g.log.With(slog.String("nas", nasID), slog.String("app", at.app), slog.String("user_hash", g.redact.User(user)),
		slog.String("attempt_id", at.id))
	if err != nil {
		if ctx.Err() != nil {
			// Shutting down: no answer, so that the VPN asks its next
			// server.
			return nil
		}
		g.counters.DecideFailures.Add(1)
		st := status.Convert(err)
		if !late && !unavailable(st.Code()) {
			// Not an outage: a request the decision service refuses or a
			// credential it does not take. Failing open here would let a
			// malformed request through; this fails closed whatever the
			// fail mode.
			log.Error("radius: Decide refused the request; rejecting", slog.String("code", st.Code().String()), slog.String("error", st.Message()))
			return g.reject(req, msgNotChecked)
		}
		if g.cfg.FailMode == FailOpen {
			log.Warn("radius: the decision service did not answer; failing open", slog.String("code", st.Code().String()), slog.String("error", st.Message()))
			return g.proxy(ctx, req, at, password, proxyOptions{note: msgUncheckedOpen})
		}
		log.Warn("radius: the decision service did not answer; failing closed", slog.String("code", st.Code().String()), slog.String("error", st.Message()))
		return g.reject(req, msgUncheckedClosed)
	}
	at.decisionID = resp.GetDecisionId()
	log = log.With(slog.String("decision_id", at.decisionID), slog.String("outcome", resp.GetOutcome().String()))
	why := reasonText(resp)
	switch resp.GetOutcome() {
	case decisionv1.Outcome_OUTCOME_ALLOW:
		log.Info("radius: allowed; forwarding to the MFA proxy")
		return g.proxy(ctx, req, at, password, proxyOptions{})
	case decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH:
		if factor == eventv1.Factor_FACTOR_TOTP {
			// The user typed a passcode already: what number matching
			// asks for, and no push.
			log.Info("radius: number matching asked; the login carries a passcode, forwarding")
			return g.proxy(ctx, req, at, password, proxyOptions{})
		}
		if g.cfg.NumberMatchMode == NumberMatchReject {
			log.Info("radius: number matching asked; rejected (number-match-mode reject)")
			return g.reject(req, fmt.Sprintf(msgNumberMatchReject, why))
		}
		log.Info("radius: number matching asked; prompting for a passcode")
		return g.challenge(req, at, user, nasID, base, why)
	case decisionv1.Outcome_OUTCOME_REQUIRE_PHISHING_RESISTANT:
		log.Info("radius: a phishing-resistant factor is required; rejected")
		return g.reject(req, fmt.Sprintf(msgPhishingResistant, why))
	case decisionv1.Outcome_OUTCOME_DENY:
		log.Info("radius: denied; rejected")
		msg := fmt.Sprintf(msgDenied, why)
		if c := resp.GetCooldown().AsDuration(); c > 0 {
			msg += fmt.Sprintf(msgCooldown, humanDuration(c))
		}
		return g.reject(req, msg)
	}
	log.Error("radius: Decide answered an unknown outcome; rejecting")
	return g.reject(req, msgNotChecked)
}

// unavailable reports whether a Decide failure is an outage (the fail
// mode answers) rather than a refusal.
func unavailable(c codes.Code) bool {
	switch c {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted, codes.Canceled:
		return true
	}
	return false
}

// challenge answers Access-Challenge asking for the passcode of the user's
// authenticator app, and keeps what the continuation needs.
func (g *Gate) challenge(req *request, at attempt, user, nasID string, password []byte, why string) *layeh.Packet {
	state := newState()
	p := &pending{kind: ownPrompt, user: user, srcIP: req.srcIP, nasID: nasID, attempt: at, password: append([]byte(nil), password...)}
	if err := g.pending.put(state, p, g.now()); err != nil {
		p.wipe()
		g.warnEvery("rejected a login: too many passcode prompts are waiting")
		return g.reject(req, msgTooManyPending)
	}
	g.counters.Challenged.Add(1)
	resp := req.pkt.Response(layeh.CodeAccessChallenge)
	_ = rfc2865.State_Set(resp, []byte(state))
	addReplyMessage(resp, fmt.Sprintf(msgNumberMatch, why))
	// In an Access-Challenge, Session-Timeout is how long the NAS waits
	// for the user's answer (RFC 2865 section 5.27).
	_ = rfc2865.SessionTimeout_Set(resp, rfc2865.SessionTimeout(g.cfg.ChallengeTimeout/time.Second))
	copyProxyState(resp, req.pkt)
	return resp
}

// continueChallenge answers a request carrying a State: the answer to the
// gate's passcode prompt, or to a challenge of the MFA proxy the gate
// relayed. A State the gate did not see go out is refused: it would be a
// way past the decision.
func (g *Gate) continueChallenge(ctx context.Context, req *request, state, user, nasID string, password []byte) *layeh.Packet {
	p, ok := g.pending.take(state, g.now())
	if !ok {
		return g.reject(req, msgPromptExpired)
	}
	defer p.wipe()
	if !p.matches(user, req.srcIP, nasID) {
		g.warnEvery("rejected the answer to a challenge from another user or VPN", slog.String("from", req.srcIP.String()))
		return g.reject(req, msgPromptExpired)
	}
	if p.kind == relayed {
		return g.proxy(ctx, req, p.attempt, password, proxyOptions{})
	}
	passcode, ok := passcodeOf(password)
	if !ok {
		return g.reject(req, msgBadPasscode)
	}
	at := p.attempt
	at.factor = eventv1.Factor_FACTOR_TOTP
	joined := make([]byte, 0, len(p.password)+1+len(passcode))
	joined = append(append(append(joined, p.password...), g.cfg.NumberMatchDelimiter...), passcode...)
	defer clear(joined)
	g.log.Info("radius: passcode received; forwarding to the MFA proxy", slog.String("nas", nasID), slog.String("attempt_id", at.id),
		slog.String("decision_id", at.decisionID))
	return g.proxy(ctx, req, at, joined, proxyOptions{dropState: true})
}

type proxyOptions struct {
	// dropState leaves the request's State out: it is the gate's own.
	dropState bool
	// note is added as a Reply-Message to the MFA proxy's answer.
	note string
}

// proxy forwards the request to the MFA proxy with password and returns
// its answer, re-signed for the VPN.
func (g *Gate) proxy(ctx context.Context, req *request, at attempt, password []byte, o proxyOptions) *layeh.Packet {
	up := layeh.New(layeh.CodeAccessRequest, []byte(g.cfg.UpstreamSecret))
	for _, a := range req.pkt.Attributes {
		switch {
		case a.Type == rfc2865.UserPassword_Type, a.Type == rfc2869.MessageAuthenticator_Type:
		case a.Type == rfc2865.State_Type && o.dropState:
		default:
			up.Attributes = append(up.Attributes, a)
		}
	}
	enc, err := layeh.NewUserPassword(password, up.Secret, up.Authenticator[:])
	if err != nil {
		return g.reject(req, msgPasswordTooLong)
	}
	up.Add(rfc2865.UserPassword_Type, enc)
	uctx, cancel := context.WithTimeout(ctx, g.cfg.UpstreamTimeout)
	defer cancel()
	g.counters.Upstream.Add(1)
	started := g.now()
	ans, err := g.up.exchange(uctx, up)
	log := g.log.With(slog.String("attempt_id", at.id), slog.String("decision_id", at.decisionID), slog.String("upstream", g.cfg.Upstream),
		slog.Duration("took", g.now().Sub(started)))
	if err != nil {
		g.counters.UpstreamFailures.Add(1)
		switch {
		case errors.Is(err, context.Canceled):
			// Shutting down: no answer, so that the VPN asks its next
			// server.
			return nil
		case errors.Is(err, errUpstreamTimeout):
			log.Warn("radius: the MFA proxy did not answer in time; rejecting")
			g.reportOutcome(at, outcomeTimedOut)
			return g.reject(req, msgUpstreamTimeout)
		case errors.Is(err, errUpstreamUnverified):
			log.Error("radius: no verified answer from the MFA proxy; rejecting", slog.Any("error", err))
			return g.reject(req, msgUpstreamUnverified)
		default:
			log.Error("radius: no answer from the MFA proxy; rejecting", slog.Any("error", err))
			return g.reject(req, msgUpstreamDown)
		}
	}
	resp := req.pkt.Response(ans.Code)
	for _, a := range ans.Attributes {
		if a.Type != rfc2869.MessageAuthenticator_Type && a.Type != rfc2865.ProxyState_Type {
			resp.Attributes = append(resp.Attributes, a)
		}
	}
	if o.note != "" {
		addReplyMessage(resp, o.note)
	}
	copyProxyState(resp, req.pkt)
	log.Info("radius: the MFA proxy answered", slog.String("answer", ans.Code.String()))
	switch ans.Code {
	case layeh.CodeAccessAccept:
		g.reportOutcome(at, outcomeAccepted)
	case layeh.CodeAccessReject:
		g.reportOutcome(at, outcomeRejected)
	case layeh.CodeAccessChallenge:
		if state, ok := ans.Lookup(rfc2865.State_Type); ok {
			p := &pending{kind: relayed, user: at.user, srcIP: req.srcIP, nasID: rfc2865.NASIdentifier_GetString(req.pkt), attempt: at}
			if err := g.pending.put(string(state), p, g.now()); err != nil {
				g.warnEvery("rejected a login: too many challenges are waiting")
				return g.reject(req, msgTooManyPending)
			}
		}
	}
	return resp
}

// reject answers Access-Reject with a Reply-Message.
func (g *Gate) reject(req *request, msg string) *layeh.Packet {
	g.counters.Rejected.Add(1)
	resp := req.pkt.Response(layeh.CodeAccessReject)
	addReplyMessage(resp, msg)
	copyProxyState(resp, req.pkt)
	return resp
}

// copyProxyState copies the request's Proxy-State attributes, in order,
// to the answer (RFC 2865 section 5.33).
func copyProxyState(resp, req *layeh.Packet) {
	for _, a := range req.Attributes {
		if a.Type == rfc2865.ProxyState_Type {
			resp.Attributes = append(resp.Attributes, a)
		}
	}
}

// maxReply bounds the Reply-Message text of one answer.
const maxReply = 1000

// addReplyMessage adds msg as Reply-Message attributes of at most 253
// bytes each, cut between characters; the NAS joins them.
func addReplyMessage(p *layeh.Packet, msg string) {
	msg = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, msg)
	if len(msg) > maxReply {
		msg = truncate(msg, maxReply)
	}
	for msg != "" {
		part := truncate(msg, 253)
		p.Add(rfc2865.ReplyMessage_Type, layeh.Attribute(part))
		msg = msg[len(part):]
	}
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// reasonText is why the decision was made, for the user.
func reasonText(resp *decisionv1.DecideResponse) string {
	if resp.GetFailureMode() != decisionv1.FailureMode_FAILURE_MODE_UNSPECIFIED {
		return "the risk of this sign-in could not be assessed in time"
	}
	if len(resp.GetReasons()) == 0 {
		return "the sign-in policy asks for it"
	}
	return strings.Join(resp.GetReasons(), "; ")
}

// humanDuration writes d for a user: "15 minutes", "2 hours", "1 hour 30
// minutes" (at least one minute).
func humanDuration(d time.Duration) string {
	m := max(int((d+time.Minute-1)/time.Minute), 1)
	unit := func(n int, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	switch h, m := m/60, m%60; {
	case h == 0:
		return unit(m, "minute")
	case m == 0:
		return unit(h, "hour")
	default:
		return unit(h, "hour") + " " + unit(m, "minute")
	}
}

// appOf is the application id of a NAS.
func (g *Gate) appOf(nasID string) string {
	if app, ok := g.cfg.AppMap[nasID]; ok {
		return app
	}
	if g.cfg.App != "" {
		return g.cfg.App
	}
	return nasID
}

// attemptID is the idempotency key of a login: the same for every
// retransmit of one Access-Request (same NAS, identifier and Request
// Authenticator), so that a retransmit reaching another gate, or this one
// after a restart, is still one decision.
func attemptID(nasID string, p *layeh.Packet, user string) string {
	h := sha256.New()
	fmt.Fprintf(h, "radius\x00%s\x00%d\x00", nasID, p.Identifier)
	h.Write(p.Authenticator[:])
	fmt.Fprintf(h, "\x00%s", user)
	return "radius:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// callingIP is the Calling-Station-Id when it is an IP address (VPNs send
// the client's public address; 802.1X sends a MAC address, which is not).
func callingIP(s string) string {
	s = strings.TrimSpace(s)
	if ip, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return ip.Unmap().WithZone("").String()
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("").String()
	}
	return ""
}
