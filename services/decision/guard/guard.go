// Package guard is the decision service's own per-user memory of push
// attempts and cooldowns: enough to enforce the policy's burst limits and
// cooldowns when scoring cannot answer, and to bind a cooldown to the
// context that caused it. It is pure: time is passed in, nothing is stored.
//
// A State is a grow-only set of attempts (by id) plus registers that only
// move one way (a cooldown's end, its level, the last clearing), so two
// copies of one user's state — the one in a process's memory and the one
// in the shared store, or those of two replicas — merge without losing an
// attempt whatever order they meet in.
package guard

import (
	"cmp"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"slices"
	"time"
)

// Limits of what one user's state keeps.
const (
	// MaxAttempts is how many push attempts are kept: counts saturate
	// there, far above any burst threshold.
	MaxAttempts = 64
	// MaxBound is how many sources of each kind (IPs, networks, devices)
	// a cooldown binds; the newest are kept.
	MaxBound = 8
	// Horizon is how long an attempt is kept: the largest burst window.
	Horizon = time.Hour
)

// Attempt is one push attempt.
type Attempt struct {
	// ID identifies the attempt across copies of the state (AttemptID).
	ID uint64
	// At is when Pushback saw it (its own clock), unix ms.
	At int64
	// Familiar is set when it came from the user's familiar context.
	Familiar bool
}

// Context is where an attempt comes from.
type Context struct {
	IP     string
	ASN    uint32
	Device string
}

// Cooldown is the state of the user's cooldown.
type Cooldown struct {
	// Until is when it ends, unix ms (0: none yet).
	Until int64
	// Since is when it started, unix ms.
	Since int64
	// Level counts the denials that escalated it (1 for the first).
	Level int
}

// mark is a bound source and when it was last seen driving pushes.
type mark[T comparable] struct {
	V    T
	Seen int64
}

// State is one user's guard state.
type State struct {
	// Attempts in time order, at most MaxAttempts, none past Horizon.
	Attempts []Attempt
	Cooldown Cooldown
	// ClearedAt voids every cooldown that started before it (an operator
	// cleared it, or the user signed in with a phishing-resistant factor).
	ClearedAt int64
	ips       []mark[string]
	asns      []mark[uint32]
	devices   []mark[string]
}

// AttemptID derives an attempt's id: from the caller's attempt id when
// there is one (a retry is the same attempt), else from the decision id.
func AttemptID(tenant, user, attemptID, decisionID string) uint64 {
	h := fnv.New64a()
	if attemptID != "" {
		_, _ = h.Write([]byte(tenant))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(user))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(attemptID))
	} else {
		_, _ = h.Write([]byte{1})
		_, _ = h.Write([]byte(decisionID))
	}
	return h.Sum64()
}

// Clone returns a deep copy.
func (s State) Clone() State {
	s.Attempts = slices.Clone(s.Attempts)
	s.ips, s.asns, s.devices = slices.Clone(s.ips), slices.Clone(s.asns), slices.Clone(s.devices)
	return s
}

// Has reports whether the attempt id is known.
func (s *State) Has(id uint64) bool {
	return slices.ContainsFunc(s.Attempts, func(a Attempt) bool { return a.ID == id })
}

// Record adds a push attempt made from ctx. An unfamiliar attempt marks
// its sources, which a cooldown then binds. It reports false when the
// attempt was already recorded (a retry), changing nothing.
func (s *State) Record(a Attempt, ctx Context, now int64) bool {
	if s.Has(a.ID) {
		return false
	}
	s.insert(a)
	if !a.Familiar {
		s.Bind(ctx, a.At)
	}
	s.Prune(now)
	return true
}

// Bind marks ctx as a source that drove pushes at the time seen.
func (s *State) Bind(ctx Context, seen int64) {
	if ctx.IP != "" {
		s.ips = touch(s.ips, ctx.IP, seen)
	}
	if ctx.ASN != 0 {
		s.asns = touch(s.asns, ctx.ASN, seen)
	}
	if ctx.Device != "" {
		s.devices = touch(s.devices, ctx.Device, seen)
	}
}

func touch[T comparable](ms []mark[T], v T, seen int64) []mark[T] {
	if i := slices.IndexFunc(ms, func(m mark[T]) bool { return m.V == v }); i >= 0 {
		ms[i].Seen = max(ms[i].Seen, seen)
		return ms
	}
	ms = append(ms, mark[T]{V: v, Seen: seen})
	if len(ms) > MaxBound {
		// Drop the one seen longest ago.
		oldest := 0
		for i, m := range ms {
			if m.Seen < ms[oldest].Seen {
				oldest = i
			}
		}
		ms = slices.Delete(ms, oldest, oldest+1)
	}
	return ms
}

// Prune drops attempts past the horizon, the oldest beyond MaxAttempts, and
// bound sources neither seen within the horizon nor held by a cooldown.
func (s *State) Prune(now int64) {
	oldest := now - Horizon.Milliseconds()
	drop := 0
	for drop < len(s.Attempts) && s.Attempts[drop].At <= oldest {
		drop++
	}
	if extra := len(s.Attempts) - drop - MaxAttempts; extra > 0 {
		drop += extra
	}
	s.Attempts = slices.Delete(s.Attempts, 0, drop)
	keep := oldest
	if s.Active(now) {
		keep = min(keep, s.Cooldown.Since-Horizon.Milliseconds())
	}
	s.ips = slices.DeleteFunc(s.ips, func(m mark[string]) bool { return m.Seen <= keep })
	s.asns = slices.DeleteFunc(s.asns, func(m mark[uint32]) bool { return m.Seen <= keep })
	s.devices = slices.DeleteFunc(s.devices, func(m mark[string]) bool { return m.Seen <= keep })
}

// Count returns the push attempts within window before now (now
// included), all of them or only the familiar ones. Attempts stamped
// after now count too: an attempt's time never hides another.
func (s *State) Count(now int64, window time.Duration, familiarOnly bool) int {
	from := now - window.Milliseconds()
	n := 0
	for i := len(s.Attempts) - 1; i >= 0; i-- {
		a := s.Attempts[i]
		if a.At <= from {
			break
		}
		if !familiarOnly || a.Familiar {
			n++
		}
	}
	return n
}

// Active reports whether a cooldown holds at now.
func (s *State) Active(now int64) bool {
	return s.Cooldown.Until > now && s.Cooldown.Since >= s.ClearedAt
}

// Clear voids the cooldowns that started before at.
func (s *State) Clear(at int64) { s.ClearedAt = max(s.ClearedAt, at) }

// Start begins a cooldown at now lasting d.
func (s *State) Start(now int64, d time.Duration) {
	s.Cooldown = Cooldown{Until: max(s.Cooldown.Until, now+d.Milliseconds()), Since: now, Level: 1}
}

// Escalate extends an active cooldown for an attempt it denied: the level
// rises and the end moves to now plus the level's length, never earlier
// than it was.
func (s *State) Escalate(now int64, at func(level int) time.Duration) {
	s.Cooldown.Level++
	s.Cooldown.Until = max(s.Cooldown.Until, now+at(s.Cooldown.Level).Milliseconds())
}

// Binds reports which part of ctx the state's bound sources hold: "ip",
// "device" or "asn", or "" when none.
func (s *State) Binds(ctx Context) string {
	switch {
	case ctx.IP != "" && slices.ContainsFunc(s.ips, func(m mark[string]) bool { return m.V == ctx.IP }):
		return "ip"
	case ctx.Device != "" && slices.ContainsFunc(s.devices, func(m mark[string]) bool { return m.V == ctx.Device }):
		return "device"
	case ctx.ASN != 0 && slices.ContainsFunc(s.asns, func(m mark[uint32]) bool { return m.V == ctx.ASN }):
		return "asn"
	}
	return ""
}

// Bound returns the bound sources (for evidence).
func (s *State) Bound() (ips []string, asns []uint32, devices []string) {
	for _, m := range s.ips {
		ips = append(ips, m.V)
	}
	for _, m := range s.asns {
		asns = append(asns, m.V)
	}
	for _, m := range s.devices {
		devices = append(devices, m.V)
	}
	return ips, asns, devices
}

// Idle reports whether the state holds nothing that matters at now.
func (s *State) Idle(now int64) bool {
	return !s.Active(now) && (len(s.Attempts) == 0 || s.Attempts[len(s.Attempts)-1].At <= now-Horizon.Milliseconds())
}

// Merge folds o into s: the union of attempts and bound sources, the later
// cooldown end and clearing. Merging is commutative and idempotent.
func (s *State) Merge(o State, now int64) {
	for _, a := range o.Attempts {
		// One attempt seen twice (a retry that reached two replicas)
		// keeps its earlier sighting, whichever copy merges first.
		i := slices.IndexFunc(s.Attempts, func(x Attempt) bool { return x.ID == a.ID })
		if i >= 0 && (s.Attempts[i].At < a.At || s.Attempts[i].At == a.At && s.Attempts[i].Familiar == a.Familiar) {
			continue
		}
		if i >= 0 && s.Attempts[i].At == a.At {
			a.Familiar = false // the stricter sighting
		}
		if i >= 0 {
			s.Attempts = slices.Delete(s.Attempts, i, i+1)
		}
		s.insert(a)
	}
	for _, m := range o.ips {
		s.ips = touch(s.ips, m.V, m.Seen)
	}
	for _, m := range o.asns {
		s.asns = touch(s.asns, m.V, m.Seen)
	}
	for _, m := range o.devices {
		s.devices = touch(s.devices, m.V, m.Seen)
	}
	// The cooldown that ends later wins; one that overlaps it moves its
	// start back (a phishing-resistant sign-in after either start clears).
	a, b := s.Cooldown, o.Cooldown
	if b.Until > a.Until {
		a, b = b, a
	}
	if b.Until > a.Since && b.Level > 0 {
		a.Since = min(a.Since, b.Since)
	}
	a.Level = max(a.Level, b.Level)
	s.Cooldown = a
	s.ClearedAt = max(s.ClearedAt, o.ClearedAt)
	s.Prune(now)
}

// insert keeps Attempts ordered by time, then id.
func (s *State) insert(a Attempt) {
	i, _ := slices.BinarySearchFunc(s.Attempts, a, func(x, y Attempt) int {
		if c := cmp.Compare(x.At, y.At); c != 0 {
			return c
		}
		return cmp.Compare(x.ID, y.ID)
	})
	s.Attempts = slices.Insert(s.Attempts, i, a)
}

// encodingVersion leads every encoded state.
const encodingVersion = 1

// ErrCorrupt is returned for bytes that are not an encoded state.
var ErrCorrupt = errors.New("guard: corrupt state")

// Marshal encodes the state compactly: attempt times as deltas.
func (s *State) Marshal() []byte {
	b := make([]byte, 0, 32+len(s.Attempts)*12)
	b = append(b, encodingVersion)
	b = binary.AppendVarint(b, s.Cooldown.Until)
	b = binary.AppendVarint(b, s.Cooldown.Since)
	b = binary.AppendUvarint(b, uint64(s.Cooldown.Level))
	b = binary.AppendVarint(b, s.ClearedAt)
	b = binary.AppendUvarint(b, uint64(len(s.Attempts)))
	var prev int64
	for _, a := range s.Attempts {
		b = binary.LittleEndian.AppendUint64(b, a.ID)
		b = binary.AppendVarint(b, a.At-prev)
		prev = a.At
		if a.Familiar {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(s.ips)))
	for _, m := range s.ips {
		b = appendString(b, m.V)
		b = binary.AppendVarint(b, m.Seen)
	}
	b = binary.AppendUvarint(b, uint64(len(s.asns)))
	for _, m := range s.asns {
		b = binary.AppendUvarint(b, uint64(m.V))
		b = binary.AppendVarint(b, m.Seen)
	}
	b = binary.AppendUvarint(b, uint64(len(s.devices)))
	for _, m := range s.devices {
		b = appendString(b, m.V)
		b = binary.AppendVarint(b, m.Seen)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads what Marshal wrote; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = ErrCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint(limit uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > limit {
		d.err = ErrCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.err = ErrCorrupt
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string { return string(d.bytes(int(d.uvarint(1 << 10)))) }

// Unmarshal decodes what Marshal wrote.
func Unmarshal(b []byte) (State, error) {
	var s State
	if len(b) == 0 || b[0] != encodingVersion {
		return s, ErrCorrupt
	}
	d := &decoder{b: b[1:]}
	s.Cooldown.Until = d.varint()
	s.Cooldown.Since = d.varint()
	s.Cooldown.Level = int(d.uvarint(1 << 20))
	s.ClearedAt = d.varint()
	n := d.uvarint(4 * MaxAttempts)
	var prev int64
	for range n {
		id := d.bytes(8)
		at := prev + d.varint()
		fam := d.bytes(1)
		if d.err != nil {
			return State{}, d.err
		}
		prev = at
		s.Attempts = append(s.Attempts, Attempt{ID: binary.LittleEndian.Uint64(id), At: at, Familiar: fam[0] == 1})
	}
	for range d.uvarint(4 * MaxBound) {
		s.ips = append(s.ips, mark[string]{V: d.str(), Seen: d.varint()})
	}
	for range d.uvarint(4 * MaxBound) {
		s.asns = append(s.asns, mark[uint32]{V: uint32(d.uvarint(1<<32 - 1)), Seen: d.varint()})
	}
	for range d.uvarint(4 * MaxBound) {
		s.devices = append(s.devices, mark[string]{V: d.str(), Seen: d.varint()})
	}
	if d.err != nil || len(d.b) != 0 {
		return State{}, ErrCorrupt
	}
	return s, nil
}
