// Package ids makes unique identifiers that sort by creation time.
package ids

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"sync"
	"time"
)

var encoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// New returns a 26-character id: 48 bits of milliseconds then 80 random
// bits, in lower-case Crockford base32, so ids sort by time.
func New(now time.Time) string {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	_, _ = rand.Read(b[6:])
	return encoding.EncodeToString(b[:])
}

// Time returns the millisecond an id was made at; ok is false for text
// that is not an id.
func Time(id string) (t time.Time, ok bool) {
	b, err := encoding.DecodeString(id)
	if err != nil || len(b) != 16 {
		return time.Time{}, false
	}
	ms := int64(b[0])<<40 | int64(b[1])<<32 | int64(b[2])<<24 | int64(b[3])<<16 | int64(b[4])<<8 | int64(b[5])
	return time.UnixMilli(ms), true
}

// Floor returns the smallest id made at t's millisecond: every id made at
// or after t sorts after it.
func Floor(t time.Time) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	return encoding.EncodeToString(b[:])
}

// Sequence makes ids that also sort in the order they were made within
// one process: an id made in the same millisecond as the one before (or
// on a clock that stepped back) is the one before plus one. Safe for
// concurrent use.
type Sequence struct {
	mu   sync.Mutex
	last [16]byte
}

// Next returns the next id at now.
func (s *Sequence) Next(now time.Time) string {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	_, _ = rand.Read(b[6:])
	s.mu.Lock()
	defer s.mu.Unlock()
	if bytes.Compare(b[:], s.last[:]) <= 0 {
		b = s.last
		for i := len(b) - 1; i >= 0; i-- {
			b[i]++
			if b[i] != 0 {
				break
			}
		}
	}
	s.last = b
	return encoding.EncodeToString(b[:])
}
