package radius

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/binary"
	"errors"

	layeh "layeh.com/radius"
	"layeh.com/radius/rfc2869"
)

// headerLen is the fixed part of a RADIUS packet: code, identifier, length
// and authenticator.
const headerLen = 20

// maLen is the length of a Message-Authenticator value (HMAC-MD5).
const maLen = md5.Size

var errMessageAuthenticator = errors.New("radius: invalid Message-Authenticator")

// messageAuthenticator finds the Message-Authenticator of the wire packet b
// and checks it against secret (RFC 3579 section 3.2): an HMAC-MD5 over the
// packet with the attribute's value zeroed. In a response the authenticator
// field holds, for the computation, the authenticator of the request it
// answers (requestAuth); in a request requestAuth is nil. present reports
// whether the attribute is there; err is set when it is there but wrong,
// malformed or repeated.
func messageAuthenticator(b, secret []byte, requestAuth *[16]byte) (present bool, err error) {
	if len(b) < headerLen {
		return false, errors.New("radius: short packet")
	}
	length := int(binary.BigEndian.Uint16(b[2:4]))
	if length < headerLen || length > len(b) {
		return false, errors.New("radius: invalid packet length")
	}
	b = b[:length]
	at := -1
	for i := headerLen; i < len(b); {
		if i+2 > len(b) || b[i+1] < 2 || i+int(b[i+1]) > len(b) {
			return false, errors.New("radius: malformed attributes")
		}
		if layeh.Type(b[i]) == rfc2869.MessageAuthenticator_Type {
			if at >= 0 {
				return true, errors.New("radius: more than one Message-Authenticator")
			}
			if b[i+1] != 2+maLen {
				return true, errors.New("radius: Message-Authenticator is not 16 bytes")
			}
			at = i + 2
		}
		i += int(b[i+1])
	}
	if at < 0 {
		return false, nil
	}
	scratch := make([]byte, len(b))
	copy(scratch, b)
	clear(scratch[at : at+maLen])
	if requestAuth != nil {
		copy(scratch[4:headerLen], requestAuth[:])
	}
	mac := hmac.New(md5.New, secret)
	mac.Write(scratch)
	if !hmac.Equal(mac.Sum(nil), b[at:at+maLen]) {
		return true, errMessageAuthenticator
	}
	return true, nil
}

// withMessageAuthenticator returns p's attributes with one zeroed
// Message-Authenticator first, as the Blast-RADIUS advisories ask: a
// receiver that checks it before anything else is never misled by
// attributes an attacker placed before it.
func withMessageAuthenticator(attrs layeh.Attributes) layeh.Attributes {
	out := make(layeh.Attributes, 0, len(attrs)+1)
	out = append(out, &layeh.AVP{Type: rfc2869.MessageAuthenticator_Type, Attribute: make([]byte, maLen)})
	for _, a := range attrs {
		if a.Type != rfc2869.MessageAuthenticator_Type {
			out = append(out, a)
		}
	}
	return out
}

// signMessageAuthenticator fills the zeroed Message-Authenticator at the
// start of the attributes of the marshalled packet b, whose authenticator
// field holds the request authenticator (a request's own, or for an answer
// the one of the request it answers).
func signMessageAuthenticator(b, secret []byte) {
	const at = headerLen + 2
	mac := hmac.New(md5.New, secret)
	mac.Write(b)
	copy(b[at:at+maLen], mac.Sum(nil))
}

// encodeRequest marshals an Access-Request or Status-Server with a
// Message-Authenticator; its authenticator is p.Authenticator, which must
// be random.
func encodeRequest(p *layeh.Packet) ([]byte, error) {
	q := *p
	q.Attributes = withMessageAuthenticator(p.Attributes)
	b, err := q.MarshalBinary()
	if err != nil {
		return nil, err
	}
	signMessageAuthenticator(b, p.Secret)
	return b, nil
}

// encodeResponse marshals an answer to the request whose authenticator is
// requestAuth: Message-Authenticator first, then the Response
// Authenticator over the whole packet (RFC 2865 section 3).
func encodeResponse(p *layeh.Packet, requestAuth [16]byte) ([]byte, error) {
	q := *p
	q.Authenticator = requestAuth
	q.Attributes = withMessageAuthenticator(p.Attributes)
	b, err := q.MarshalBinary()
	if err != nil {
		return nil, err
	}
	signMessageAuthenticator(b, p.Secret)
	h := md5.New()
	h.Write(b[:4])
	h.Write(requestAuth[:])
	h.Write(b[headerLen:])
	h.Write(p.Secret)
	copy(b[4:headerLen], h.Sum(nil))
	return b, nil
}
