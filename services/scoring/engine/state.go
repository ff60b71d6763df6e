package engine

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"

	"github.com/pushbackhq/pushback/pkg/geo"
)

// PushKind is one kind of push activity kept in a user's window.
type PushKind uint8

// Push activity kinds.
const (
	KindAttempt    PushKind = 1 // Pushback was asked about a push (Decide).
	KindSent       PushKind = 2 // the IdP sent a push.
	KindApproved   PushKind = 3
	KindDenied     PushKind = 4
	KindTimedOut   PushKind = 5
	KindSuppressed PushKind = 6 // Pushback decided the push must not be sent.
)

// Push is one push activity at a time in unix milliseconds.
type Push struct {
	At   int64
	Kind PushKind
	// Context is how the client of the activity compared with the user's
	// familiar context when it was recorded.
	Context PushContext
	// Approver says, for an approval, whether the approving device agreed.
	Approver Approver
}

// PushContext is how the client of a push compared with the user's history
// when the push was recorded. The zero value is unknown: a push with no
// client, or one recorded by a release that kept no context.
type PushContext uint8

// Push contexts.
const (
	ContextUnknown PushContext = iota
	// ContextFamiliar: a device the user signed in with, on their last
	// trusted IP or a network they use, in a country they signed in from
	// (what the decision service calls the familiar context).
	ContextFamiliar
	// ContextPartial: no device id, but the user's last trusted IP (or a
	// known device with no network information), in a known country.
	ContextPartial
	// ContextUnfamiliar: anything else: an unknown device, a new network
	// (a new IP on an ASN the user does not use, or a new IP on a known ASN
	// with no device to vouch for it), another country, or a user with no
	// history.
	ContextUnfamiliar
)

// Approver says whether the device that approved a push agreed with the
// user's context.
type Approver uint8

// Approvers.
const (
	// ApproverUnknown: the approval carried no responder, or one that
	// cannot be compared (no device id, no place and no network).
	ApproverUnknown Approver = iota
	// ApproverAgrees: a device the user is known to use (signed in with,
	// approved on, or enrolled from their familiar context), where the
	// login was: no RESPONSE_LOCATION_MISMATCH, and the same country, IP or
	// network.
	ApproverAgrees
	// ApproverDisagrees: an unknown device, far from the login
	// (RESPONSE_LOCATION_MISMATCH), or in a country the user never signed
	// in from.
	ApproverDisagrees
)

// BurstClass is whose pushes a burst is made of.
type BurstClass uint8

// Burst classes.
const (
	// BurstNoContext: no push carried a client; nothing tells whose they
	// were (and findings stored by earlier releases).
	BurstNoContext BurstClass = iota
	// BurstOwn: the user's own retries: every push from the familiar
	// context and, for an approval, approved on a known device where the
	// login was.
	BurstOwn
	// BurstMixed: in between (see ContextConfig.MixedConfidence).
	BurstMixed
	// BurstUnfamiliar: a push from an unfamiliar context (the approved
	// push's included), or an approving device that disagrees.
	BurstUnfamiliar
)

func (b BurstClass) String() string {
	switch b {
	case BurstOwn:
		return "own retries"
	case BurstMixed:
		return "mixed"
	case BurstUnfamiliar:
		return "unfamiliar source"
	}
	return "no context"
}

// Location is a place a user was seen at, in unix milliseconds.
type Location struct {
	At         int64
	IP         string
	Lat, Lon   float64
	AccuracyKm float64
	Country    string
	City       string
}

// Known reports whether the location holds a time and coordinates.
func (l Location) Known() bool { return l.At != 0 && geo.Known(l.Lat, l.Lon) }

// FindingCode names a finding kept in the state.
type FindingCode uint8

// Findings that outlive the event that raised them.
const (
	FindingTravel     FindingCode = 1 // IMPOSSIBLE_TRAVEL
	FindingMismatch   FindingCode = 2 // RESPONSE_LOCATION_MISMATCH
	FindingAfterBurst FindingCode = 3 // APPROVAL_AFTER_BURST
)

// Discount says why a travel finding has less than full confidence.
type Discount uint8

// Discounts.
const (
	DiscountNone Discount = iota
	DiscountJitter
	DiscountRegional
	DiscountAnonymizer
)

func (d Discount) String() string {
	switch d {
	case DiscountJitter:
		return "jitter"
	case DiscountRegional:
		return "regional"
	case DiscountAnonymizer:
		return "anonymizer"
	}
	return ""
}

// Finding is evidence raised by one event that stays in the user's risk for
// a while (so GetRisk and WatchRisk show it), at most one per code.
type Finding struct {
	Code FindingCode
	// At is the time of the event that raised it.
	At int64
	// Confidence 0-1 (stored in hundredths).
	Confidence float64
	Discount   Discount
	// Travel and mismatch: the two places and their distances in km.
	From, To  Location
	RawKm, Km float64
	// Approval after burst: the window crossed (ms, 0 for a streak), its
	// threshold, the pushes in it and the streak before the approval.
	Window    int64
	Threshold int32
	Pushes    int32
	Streak    int32
	// Approval after burst: whose pushes the burst was made of, the pushes
	// by context (counted as Pushes is) and the approving device.
	Class                         BurstClass
	Familiar, Partial, Unfamiliar int32
	Approver                      Approver
}

// UserState is everything scoring keeps about one user. It is bounded:
// Pushes holds at most Config.MaxPushes entries no older than the largest
// window, every history list is capped and Findings holds one per code.
type UserState struct {
	// Pushes in time order.
	Pushes []Push
	// Seen holds hashes of recent attempt and event ids, newest last, so a
	// retried attempt or a re-delivered event is counted once.
	Seen []uint64
	// Streak of consecutive denied or unanswered pushes.
	Streak, StreakDenied, StreakTimedOut int
	// StreakSince and StreakLast are the first and last push of the streak.
	StreakSince, StreakLast int64
	// LastApprovedAt is the newest approval (0 when none).
	LastApprovedAt int64
	// FraudAt is the time of the last fraud report (0 when none).
	FraudAt int64
	// LastTrusted is the last successful login or approval with a location.
	LastTrusted Location
	// Devices (id hashes), Countries and ASNs are the user's recent trusted
	// history, newest last.
	Devices   []uint64
	Countries []string
	ASNs      []uint32
	// Findings still in force or recently so.
	Findings []Finding
	// StrongAuthAt is the last successful phishing-resistant authentication.
	StrongAuthAt int64
	// UpdatedAt is the time of the newest activity.
	UpdatedAt int64
}

func (s *UserState) finding(code FindingCode) *Finding {
	for i := range s.Findings {
		if s.Findings[i].Code == code {
			return &s.Findings[i]
		}
	}
	return nil
}

// putFinding keeps f unless a newer finding of its code is held.
func (s *UserState) putFinding(f Finding) {
	if old := s.finding(f.Code); old != nil {
		if old.At <= f.At {
			*old = f
		}
		return
	}
	s.Findings = append(s.Findings, f)
}

const (
	stateV1      = 1
	stateV2      = 2
	stateVersion = 3
)

var errCorrupt = errors.New("scoring: corrupt user state")

// MarshalBinary encodes the state compactly (varints, times as deltas).
func (s *UserState) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(make([]byte, 0, 96+len(s.Pushes)*3+len(s.Seen)*8+len(s.Devices)*8))
}

// AppendBinary appends the encoding of s to b.
func (s *UserState) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, stateVersion)
	b = binary.AppendVarint(b, s.UpdatedAt)
	b = binary.AppendUvarint(b, uint64(len(s.Pushes)))
	prev := int64(0)
	for _, p := range s.Pushes {
		b = binary.AppendVarint(b, p.At-prev)
		// Version 3: the context and the approver share the kind's byte.
		b = append(b, byte(p.Kind)&kindMask|byte(p.Context)&3<<3|byte(p.Approver)&3<<5)
		prev = p.At
	}
	b = binary.AppendUvarint(b, uint64(len(s.Seen)))
	for _, h := range s.Seen {
		b = binary.LittleEndian.AppendUint64(b, h)
	}
	b = binary.AppendUvarint(b, uint64(s.Streak))
	b = binary.AppendUvarint(b, uint64(s.StreakDenied))
	b = binary.AppendUvarint(b, uint64(s.StreakTimedOut))
	b = binary.AppendVarint(b, s.StreakSince)
	b = binary.AppendVarint(b, s.FraudAt)
	b = binary.AppendVarint(b, s.StrongAuthAt)
	b = appendLocation(b, s.LastTrusted)
	b = binary.AppendUvarint(b, uint64(len(s.Devices)))
	for _, h := range s.Devices {
		b = binary.LittleEndian.AppendUint64(b, h)
	}
	b = appendStrings(b, s.Countries)
	b = binary.AppendUvarint(b, uint64(len(s.ASNs)))
	for _, a := range s.ASNs {
		b = binary.AppendUvarint(b, uint64(a))
	}
	// Version 2.
	b = binary.AppendVarint(b, s.StreakLast)
	b = binary.AppendVarint(b, s.LastApprovedAt)
	b = binary.AppendUvarint(b, uint64(len(s.Findings)))
	for _, f := range s.Findings {
		b = append(b, byte(f.Code), byte(f.Discount), byte(math.Round(min(max(f.Confidence, 0), 1)*100)))
		b = binary.AppendVarint(b, f.At)
		switch f.Code {
		case FindingTravel, FindingMismatch:
			b = appendLocation(b, f.From)
			b = appendLocation(b, f.To)
			b = binary.AppendUvarint(b, uint64(math.Round(f.RawKm*10)))
			b = binary.AppendUvarint(b, uint64(math.Round(f.Km*10)))
		default:
			b = binary.AppendVarint(b, f.Window)
			b = binary.AppendVarint(b, int64(f.Threshold))
			b = binary.AppendVarint(b, int64(f.Pushes))
			b = binary.AppendVarint(b, int64(f.Streak))
			// Version 3.
			b = append(b, byte(f.Class), byte(f.Approver))
			b = binary.AppendVarint(b, int64(f.Familiar))
			b = binary.AppendVarint(b, int64(f.Partial))
			b = binary.AppendVarint(b, int64(f.Unfamiliar))
		}
	}
	return b, nil
}

// kindMask keeps the kind from a push's byte (version 3 keeps the context
// and the approver above it).
const kindMask = 7

// UnmarshalBinary decodes what MarshalBinary wrote, and the encodings of
// earlier releases: version 2 (pushes and findings without context: their
// context is unknown) and version 1 (device ids as strings, no findings).
func (s *UserState) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	v := d.byte()
	if v != stateV1 && v != stateV2 && v != stateVersion {
		return errCorrupt
	}
	*s = UserState{}
	s.UpdatedAt = d.varint()
	n := d.count()
	if n > 0 {
		s.Pushes = make([]Push, n)
	}
	prev := int64(0)
	for i := range s.Pushes {
		prev += d.varint()
		k := d.byte()
		if v < stateVersion {
			s.Pushes[i] = Push{At: prev, Kind: PushKind(k)}
			continue
		}
		if k>>7 != 0 {
			d.fail()
		}
		s.Pushes[i] = Push{At: prev, Kind: PushKind(k & kindMask), Context: PushContext(k >> 3 & 3), Approver: Approver(k >> 5 & 3)}
	}
	n = d.count()
	if n > 0 {
		s.Seen = make([]uint64, n)
	}
	for i := range s.Seen {
		s.Seen[i] = d.uint64()
	}
	s.Streak = int(d.uvarint())
	s.StreakDenied = int(d.uvarint())
	s.StreakTimedOut = int(d.uvarint())
	s.StreakSince = d.varint()
	s.FraudAt = d.varint()
	s.StrongAuthAt = d.varint()
	s.LastTrusted = d.location()
	if v == stateV1 {
		for _, id := range d.strings() {
			s.Devices = append(s.Devices, hashID(id))
		}
	} else {
		n = d.count()
		if n > 0 {
			s.Devices = make([]uint64, n)
		}
		for i := range s.Devices {
			s.Devices[i] = d.uint64()
		}
	}
	s.Countries = d.strings()
	n = d.count()
	if n > 0 {
		s.ASNs = make([]uint32, n)
	}
	for i := range s.ASNs {
		s.ASNs[i] = uint32(d.uvarint())
	}
	if v == stateV1 {
		return d.err
	}
	s.StreakLast = d.varint()
	s.LastApprovedAt = d.varint()
	n = d.count()
	for i := 0; i < n && d.err == nil; i++ {
		f := Finding{Code: FindingCode(d.byte()), Discount: Discount(d.byte()), Confidence: float64(d.byte()) / 100}
		f.At = d.varint()
		switch f.Code {
		case FindingTravel, FindingMismatch:
			f.From, f.To = d.location(), d.location()
			f.RawKm, f.Km = float64(d.uvarint())/10, float64(d.uvarint())/10
		case FindingAfterBurst:
			f.Window = d.varint()
			f.Threshold, f.Pushes, f.Streak = int32(d.varint()), int32(d.varint()), int32(d.varint())
			if v >= stateVersion {
				f.Class, f.Approver = BurstClass(d.byte()), Approver(d.byte())
				f.Familiar, f.Partial, f.Unfamiliar = int32(d.varint()), int32(d.varint()), int32(d.varint())
				if f.Class > BurstUnfamiliar || f.Approver > ApproverDisagrees {
					d.fail()
				}
			}
		default:
			d.fail()
		}
		s.Findings = append(s.Findings, f)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	if d.err != nil {
		*s = UserState{}
	}
	return d.err
}

func appendLocation(b []byte, l Location) []byte {
	b = binary.AppendVarint(b, l.At)
	b = appendString(b, l.IP)
	b = binary.LittleEndian.AppendUint32(b, uint32(int32(math.Round(l.Lat*1e5))))
	b = binary.LittleEndian.AppendUint32(b, uint32(int32(math.Round(l.Lon*1e5))))
	b = binary.AppendUvarint(b, uint64(math.Round(max(l.AccuracyKm, 0)*10)))
	b = appendString(b, l.Country)
	return appendString(b, l.City)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() { d.err = errCorrupt; d.b = nil }

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uint64() uint64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) uint32() uint32 {
	if len(d.b) < 4 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length and rejects one longer than the remaining input.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.count()
	if d.err != nil {
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) strings() []string {
	n := d.count()
	if n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		out = append(out, d.string())
	}
	return out
}

func (d *decoder) location() Location {
	var l Location
	l.At = d.varint()
	l.IP = d.string()
	l.Lat = float64(int32(d.uint32())) / 1e5
	l.Lon = float64(int32(d.uint32())) / 1e5
	l.AccuracyKm = float64(d.uvarint()) / 10
	l.Country = d.string()
	l.City = d.string()
	return l
}

// remember appends v to a bounded history, moving it to the end when present.
func remember[T comparable](list []T, v T, limit int) []T {
	if i := slices.Index(list, v); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	list = append(list, v)
	if len(list) > limit {
		list = slices.Delete(list, 0, len(list)-limit)
	}
	return list
}
