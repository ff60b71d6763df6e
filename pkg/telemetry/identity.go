package telemetry

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// Redactor turns user ids and IPs into keyed hashes for spans and logs, so
// that telemetry can correlate one user's events without holding identities.
// With Raw set (an operator's explicit choice) values pass through.
type Redactor struct {
	key []byte
	raw bool
}

// NewRedactor returns a redactor keyed by key; an empty key draws a random
// one (hashes are then stable only within this process).
func NewRedactor(key []byte, raw bool) *Redactor {
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	return &Redactor{key: key, raw: raw}
}

// User returns the value to record for a user id.
func (r *Redactor) User(id string) string { return r.hash("u:", id) }

// IP returns the value to record for an IP address.
func (r *Redactor) IP(ip string) string { return r.hash("ip:", ip) }

func (r *Redactor) hash(kind, v string) string {
	if v == "" {
		return ""
	}
	if r == nil {
		return "redacted"
	}
	if r.raw {
		return v
	}
	m := hmac.New(sha256.New, r.key)
	m.Write([]byte(kind))
	m.Write([]byte(v))
	return hex.EncodeToString(m.Sum(nil)[:12])
}
