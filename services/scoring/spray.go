package scoring

import (
	"encoding/binary"
	"slices"
	"time"
)

// SourceState is the spray state of one source (an IP or an ASN): the
// distinct users it recently pushed to, as id hashes with the time of the
// last push, oldest first. It holds at most SprayConfig.MaxUsers entries no
// older than the spray window.
//
// A user who then approves or logs in successfully from the source vouches
// for it and no longer counts: an office or a carrier seen for the first
// time pushes to many users who all succeed within seconds, a spray pushes
// to users who deny or ignore it.
type SourceState struct {
	Users []SourceUser
}

// SourceUser is one user a source pushed to.
type SourceUser struct {
	User uint64
	At   int64
	// Vouched is set once the user succeeded from the source.
	Vouched bool
}

// NoteSource records that the source pushed to user at at and returns the
// distinct unvouched users in the window ending at at. Entries are kept
// in time order whatever order the pushes arrive in.
func (c Config) NoteSource(src *SourceState, user string, at time.Time) int {
	h, atMs := hashID(user), at.UnixMilli()
	vouched := false
	if i := slices.IndexFunc(src.Users, func(u SourceUser) bool { return u.User == h }); i >= 0 {
		atMs = max(atMs, src.Users[i].At)
		vouched = src.Users[i].Vouched
		src.Users = slices.Delete(src.Users, i, i+1)
	}
	i, _ := slices.BinarySearchFunc(src.Users, atMs, func(u SourceUser, t int64) int {
		switch {
		case u.At <= t:
			return -1
		default:
			return 1
		}
	})
	src.Users = slices.Insert(src.Users, i, SourceUser{User: h, At: atMs, Vouched: vouched})
	newest := src.Users[len(src.Users)-1].At
	from := newest - c.Spray.Window.Milliseconds()
	drop := 0
	for drop < len(src.Users) && src.Users[drop].At <= from {
		drop++
	}
	if over := len(src.Users) - drop - max(c.Spray.MaxUsers, 1); over > 0 {
		drop += over
	}
	src.Users = slices.Delete(src.Users, 0, drop)
	return c.SourceUsers(src, at)
}

// VouchSource marks that user succeeded from the source; it reports
// whether the state changed (the user was counted and is no longer).
func (c Config) VouchSource(src *SourceState, user string) bool {
	h := hashID(user)
	for i := range src.Users {
		if src.Users[i].User == h && !src.Users[i].Vouched {
			src.Users[i].Vouched = true
			return true
		}
	}
	return false
}

// SourceUsers returns the distinct unvouched users in the window ending at now.
func (c Config) SourceUsers(src *SourceState, now time.Time) int {
	nowMs := now.UnixMilli()
	from := nowMs - c.Spray.Window.Milliseconds()
	n := 0
	for _, u := range src.Users {
		if u.At > from && u.At <= nowMs && !u.Vouched {
			n++
		}
	}
	return n
}

const sourceVersion = 1

// MarshalBinary encodes the source state.
func (src *SourceState) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 2+len(src.Users)*13)
	b = append(b, sourceVersion)
	b = binary.AppendUvarint(b, uint64(len(src.Users)))
	prev := int64(0)
	for _, u := range src.Users {
		b = binary.LittleEndian.AppendUint64(b, u.User)
		b = binary.AppendVarint(b, u.At-prev)
		v := byte(0)
		if u.Vouched {
			v = 1
		}
		b = append(b, v)
		prev = u.At
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote.
func (src *SourceState) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	if d.byte() != sourceVersion {
		return errCorrupt
	}
	n := d.count()
	src.Users = nil
	if n > 0 {
		src.Users = make([]SourceUser, 0, n)
	}
	prev := int64(0)
	for i := 0; i < n && d.err == nil; i++ {
		h := d.uint64()
		prev += d.varint()
		src.Users = append(src.Users, SourceUser{User: h, At: prev, Vouched: d.byte() == 1})
	}
	if d.err == nil && len(d.b) != 0 {
		return errCorrupt
	}
	return d.err
}
