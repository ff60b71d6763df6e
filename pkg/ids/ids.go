// Package ids makes unique identifiers that sort by creation time.
package ids

import (
	"crypto/rand"
	"encoding/base32"
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
