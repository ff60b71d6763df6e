package store

import (
	"bytes"
	"encoding/base64"
	"strconv"
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

// JoinKey joins parts with "/" into a new key, allocated once at its final
// size (fmt.Appendf grows its buffer two or three times for a key). Parts
// are taken as they are: pass user-supplied ones through KeyPart first.
func JoinKey(parts ...string) []byte {
	n := len(parts) - 1
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 0, max(n, 0))
	for i, p := range parts {
		if i > 0 {
			k = append(k, '/')
		}
		k = append(k, p...)
	}
	return k
}

// AppendUint appends v in base, zero-padded to width digits: what fmt's
// %0{width}d or %0{width}x append for it.
func AppendUint(dst []byte, v uint64, base, width int) []byte {
	var buf [64]byte
	digits := strconv.AppendUint(buf[:0], v, base)
	for range width - len(digits) {
		dst = append(dst, '0')
	}
	return append(dst, digits...)
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
