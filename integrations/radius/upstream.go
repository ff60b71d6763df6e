package radius

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"

	layeh "layeh.com/radius"
)

var (
	// errUpstreamTimeout: no answer came in time. With push MFA that is
	// most often a push nobody answered.
	errUpstreamTimeout = errors.New("radius: the MFA proxy did not answer in time")
	// errUpstreamUnreachable: the MFA proxy's port refused the packet.
	errUpstreamUnreachable = errors.New("radius: the MFA proxy could not be reached")
	// errUpstreamUnverified: answers came, but none passed the checks
	// (authenticator, Message-Authenticator): a wrong upstream-secret, an
	// MFA proxy that does not sign its answers, or forged packets.
	errUpstreamUnverified = errors.New("radius: the MFA proxy's answers failed verification")
)

// upstream sends one Access-Request to the MFA proxy and waits for its
// verified answer. Each exchange has its own socket, so that answers are
// matched by the kernel to the exchange and identifiers never run out.
// The request is sent once: the MFA proxy sends a push per request it
// works on, and one login must never push twice.
type upstream struct {
	addr      string
	secret    []byte
	requireMA bool
	log       *slog.Logger
	dialer    net.Dialer
}

// exchange sends p (an Access-Request whose Authenticator is random) and
// returns the MFA proxy's answer: Access-Accept, Access-Reject or
// Access-Challenge. ctx bounds the wait.
func (u *upstream) exchange(ctx context.Context, p *layeh.Packet) (*layeh.Packet, error) {
	wire, err := encodeRequest(p)
	if err != nil {
		return nil, fmt.Errorf("radius: encode upstream request: %w", err)
	}
	conn, err := u.dialer.DialContext(ctx, "udp", u.addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, errUpstreamTimeout
		}
		return nil, fmt.Errorf("%w: %v", errUpstreamUnreachable, err)
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	if _, err := conn.Write(wire); err != nil {
		return nil, fmt.Errorf("%w: %v", errUpstreamUnreachable, err)
	}
	buf := make([]byte, layeh.MaxPacketLength)
	rejected := 0
	for {
		n, err := conn.Read(buf)
		switch {
		case err == nil:
		case errors.Is(err, syscall.ECONNREFUSED):
			return nil, errUpstreamUnreachable
		case ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded):
			if rejected > 0 {
				return nil, errUpstreamUnverified
			}
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil, ctx.Err()
			}
			return nil, errUpstreamTimeout
		default:
			return nil, fmt.Errorf("%w: %v", errUpstreamUnreachable, err)
		}
		if why := u.check(buf[:n], wire, p); why != "" {
			rejected++
			u.log.Warn("radius: dropped an answer of the MFA proxy", slog.String("why", why), slog.String("upstream", u.addr))
			continue
		}
		ans, err := layeh.Parse(buf[:n], u.secret)
		if err != nil {
			rejected++
			u.log.Warn("radius: dropped an answer of the MFA proxy", slog.String("why", err.Error()), slog.String("upstream", u.addr))
			continue
		}
		return ans, nil
	}
}

// check says why b is not a valid answer to the request wire (p), or "".
func (u *upstream) check(b, wire []byte, p *layeh.Packet) string {
	if len(b) < headerLen {
		return "short packet"
	}
	switch layeh.Code(b[0]) {
	case layeh.CodeAccessAccept, layeh.CodeAccessReject, layeh.CodeAccessChallenge:
	default:
		return fmt.Sprintf("unexpected code %d", b[0])
	}
	if b[1] != p.Identifier {
		return "identifier of another request"
	}
	if !layeh.IsAuthenticResponse(b, wire, u.secret) {
		return "wrong Response Authenticator (is upstream-secret the MFA proxy's?)"
	}
	present, err := messageAuthenticator(b, u.secret, &p.Authenticator)
	switch {
	case err != nil:
		return err.Error()
	case !present && u.requireMA:
		return "no Message-Authenticator (the MFA proxy does not sign its answers: upgrade it, or set --upstream-require-message-authenticator=false)"
	}
	return ""
}
