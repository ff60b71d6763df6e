package store

import (
	"bytes"
	"encoding/base64"
	"strings"
)

// KeyPart makes s safe as one "/"-separated part of a key: a part that
// holds "/" or "%" is base64url-encoded and marked with a trailing "%", so
// an id with a slash can never reach into another user's key range.
func KeyPart(s string) string {
	if strings.ContainsAny(s, "/%") {
		return base64.RawURLEncoding.EncodeToString([]byte(s)) + "%"
	}
	return s
}

// Cursor turns the key of the last item of a page into an opaque page token.
func Cursor(key []byte) string { return base64.RawURLEncoding.EncodeToString(key) }

// ParseCursor decodes a page token and checks that it names a key under
// prefix, so a token cannot be used to read another range.
func ParseCursor(token string, prefix []byte) ([]byte, bool) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) <= len(prefix) || !bytes.HasPrefix(b, prefix) {
		return nil, false
	}
	return b, true
}
