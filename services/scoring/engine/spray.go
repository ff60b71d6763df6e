package engine

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
// A user with no history at all (Dormant) counts like any other: accounts
// nobody uses are what a sprayer looks for, since no owner is there to
// deny the push, and they are just as unfamiliar with the source.
//
// A user who then succeeds from the source in a way only the user can
// (SprayRole: an approval on the enrolled device, a phishing-resistant
// login) vouches for it and no longer counts: an office or a carrier seen
// for the first time pushes to many users who all approve within a
// minute; a spray pushes to users who deny or ignore it.
//
// Each vouched user also offsets one dormant user still waiting: a class
// of new hires signing in together through one office NAT has several
// first pushes unanswered at any moment, and as many classmates who have
// already approved. Only dormant users are offset (a user with history
// counts as before), and only one per success, so an attacker who holds
// passwords and nothing else, and so cannot vouch at all, gains nothing.
type SourceState struct {
	Users []SourceUser
}

// SourceUser is one user a source pushed to.
type SourceUser struct {
	User uint64
	At   int64
	// Vouched is set once the user succeeded from the source.
	Vouched bool
	// Dormant is set when the user had no history at the last push.
	Dormant bool
}

// NoteSource records that the source pushed to user at at (dormant when
// the user has no history) and returns the source's count in the window
// ending at at (see SourceUsers). Entries are kept in time order whatever
// order the pushes arrive in.
func (c Config) NoteSource(src *SourceState, user string, at time.Time, dormant bool) SprayCount {
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
	src.Users = slices.Insert(src.Users, i, SourceUser{User: h, At: atMs, Vouched: vouched, Dormant: dormant})
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

// SourceUsers returns the source's count in the window ending at now (IP
// and ASN are left to the caller): the vouched users, and the distinct
// unvouched users less one dormant user for each vouched one, which is
// what the threshold is held against.
func (c Config) SourceUsers(src *SourceState, now time.Time) SprayCount {
	nowMs := now.UnixMilli()
	from := nowMs - c.Spray.Window.Milliseconds()
	var sc SprayCount
	for _, u := range src.Users {
		switch {
		case u.At <= from || u.At > nowMs:
		case u.Vouched:
			sc.Vouched++
		default:
			sc.Users++
			if u.Dormant {
				sc.Dormant++
			}
		}
	}
	offset := min(sc.Vouched, sc.Dormant)
	sc.Users -= offset
	sc.Dormant -= offset
	return sc
}

const sourceVersion = 1

// Flags of a user's mark on a source, in SourceState's encoding and in the
// service's per-user mark. Version 1 wrote 0 or 1 (vouched), which decodes
// the same.
const (
	markVouched = 1 << iota
	markDormant
)

func markFlags(vouched, dormant bool) byte {
	var f byte
	if vouched {
		f |= markVouched
	}
	if dormant {
		f |= markDormant
	}
	return f
}

// MarshalBinary encodes the source state.
func (src *SourceState) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 2+len(src.Users)*13)
	b = append(b, sourceVersion)
	b = binary.AppendUvarint(b, uint64(len(src.Users)))
	prev := int64(0)
	for _, u := range src.Users {
		b = binary.LittleEndian.AppendUint64(b, u.User)
		b = binary.AppendVarint(b, u.At-prev)
		b = append(b, markFlags(u.Vouched, u.Dormant))
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
		f := d.byte()
		src.Users = append(src.Users, SourceUser{User: h, At: prev, Vouched: f&markVouched != 0, Dormant: f&markDormant != 0})
	}
	if d.err == nil && len(d.b) != 0 {
		return errCorrupt
	}
	return d.err
}
