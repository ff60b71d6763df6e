package telemetry

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"

	"go.opentelemetry.io/otel/attribute"
)

// Redactor turns user ids and IPs into keyed hashes for spans and logs, so
// that telemetry can correlate one user's events without holding identities.
// With Raw set (an operator's explicit choice) values pass through.
type Redactor struct {
	key  []byte
	raw  bool
	macs sync.Pool
}

// NewRedactor returns a redactor keyed by key; an empty key draws a random
// one (hashes are then stable only within this process).
func NewRedactor(key []byte, raw bool) *Redactor {
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	r := &Redactor{key: key, raw: raw}
	r.macs.New = func() any { return hmac.New(sha256.New, r.key) }
	return r
}

// User returns the value to record for a user id.
func (r *Redactor) User(id string) string { return r.hash("u:", id) }

// IP returns the value to record for an IP address.
func (r *Redactor) IP(ip string) string { return r.hash("ip:", ip) }

// Device returns the value to record for a device id.
func (r *Redactor) Device(id string) string { return r.hash("d:", id) }

// Raw reports whether identities pass through unhashed.
func (r *Redactor) Raw() bool { return r != nil && r.raw }

// UserAttr is the span attribute of a user id: pushback.user_hash, or
// pushback.user_id when identities are raw, so that a collector can delete
// raw identities by key (deploy/otel does).
func (r *Redactor) UserAttr(id string) attribute.KeyValue {
	if r.Raw() {
		return attribute.String("pushback.user_id", id)
	}
	return attribute.String("pushback.user_hash", r.User(id))
}

// IPAttr is the span attribute of an IP named name: name_hash, or name
// itself when identities are raw.
func (r *Redactor) IPAttr(name, ip string) attribute.KeyValue {
	if r.Raw() {
		return attribute.String(name, ip)
	}
	return attribute.String(name+"_hash", r.IP(ip))
}

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
	m := r.macs.Get().(hash.Hash)
	m.Reset()
	var buf [sha256.Size]byte
	// The kind keeps a user id and an IP of the same text apart.
	m.Write([]byte(kind))
	m.Write([]byte(v))
	sum := m.Sum(buf[:0])
	r.macs.Put(m)
	return hex.EncodeToString(sum[:12])
}
