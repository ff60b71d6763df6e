package radius

import (
	"bytes"
	"testing"

	layeh "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
)

func TestMessageAuthenticator(t *testing.T) {
	secret := []byte(vpnSecret)
	req := accessRequest(t, "alice", "correct-horse", "vpn", "203.0.113.5")
	wire := signed(t, req)
	if wire[headerLen] != byte(rfc2869.MessageAuthenticator_Type) {
		t.Fatal("Message-Authenticator is not the first attribute of a request")
	}
	if present, err := messageAuthenticator(wire, secret, nil); !present || err != nil {
		t.Fatalf("a signed request: %v %v", present, err)
	}
	if _, err := messageAuthenticator(wire, []byte("another-secret-0123456789"), nil); err == nil {
		t.Fatal("another secret verified")
	}
	for i := headerLen; i < len(wire); i++ {
		tampered := bytes.Clone(wire)
		tampered[i] ^= 0x40
		if present, err := messageAuthenticator(tampered, secret, nil); present && err == nil {
			t.Fatalf("a request changed at byte %d verified", i)
		}
	}
	twice, _ := (&layeh.Packet{Code: layeh.CodeAccessRequest, Secret: secret, Attributes: layeh.Attributes{
		{Type: rfc2869.MessageAuthenticator_Type, Attribute: make([]byte, 16)},
		{Type: rfc2869.MessageAuthenticator_Type, Attribute: make([]byte, 16)}}}).MarshalBinary()
	if _, err := messageAuthenticator(twice, secret, nil); err == nil {
		t.Fatal("two Message-Authenticators accepted")
	}
	short, _ := (&layeh.Packet{Code: layeh.CodeAccessRequest, Secret: secret, Attributes: layeh.Attributes{
		{Type: rfc2869.MessageAuthenticator_Type, Attribute: make([]byte, 8)}}}).MarshalBinary()
	if _, err := messageAuthenticator(short, secret, nil); err == nil {
		t.Fatal("an 8-byte Message-Authenticator accepted")
	}
	bare, _ := layeh.New(layeh.CodeAccessRequest, secret).MarshalBinary()
	if present, err := messageAuthenticator(bare, secret, nil); present || err != nil {
		t.Fatal("a packet without attributes has a Message-Authenticator")
	}

	// An answer is signed over the request's authenticator (RFC 3579
	// 3.2), and carries the Response Authenticator of RFC 2865 3.
	resp := req.Response(layeh.CodeAccessAccept)
	must(t, rfc2865.ReplyMessage_SetString(resp, "welcome"))
	ans, err := encodeResponse(resp, req.Authenticator)
	must(t, err)
	if !layeh.IsAuthenticResponse(ans, wire, secret) {
		t.Fatal("wrong Response Authenticator")
	}
	if present, err := messageAuthenticator(ans, secret, &req.Authenticator); !present || err != nil {
		t.Fatalf("the answer's Message-Authenticator: %v %v", present, err)
	}
	other := req.Authenticator
	other[0] ^= 1
	if _, err := messageAuthenticator(ans, secret, &other); err == nil {
		t.Fatal("an answer verified against another request")
	}
}
