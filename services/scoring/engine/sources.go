package engine

import (
	"cmp"
	"encoding/binary"
	"slices"
	"time"

	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
)

// SourceKey names one source of pushes in a tenant: a client IP, or an
// ASN (exactly one of the two is set).
type SourceKey struct {
	Tenant string
	IP     string
	ASN    uint32
}

// Sources is the spray state the engine counts PUSH_SPRAY from: each
// user's mark on each source (a SourceUser: the time of the user's last
// push from it, whether the user vouched for it, whether the user was
// dormant). Whoever keeps it decides where marks live; a mark may expire
// once its ttl has passed.
type Sources interface {
	// Recent returns at most limit marks on src, in any order. A source
	// with more marks may return any limit of them: its count is then a
	// lower bound, which is past the threshold anyway.
	Recent(src SourceKey, limit int) ([]SourceUser, error)
	// Mark returns the mark on src of the user whose hash is user (the
	// hash every SourceUser carries); ok is false when there is none.
	Mark(src SourceKey, user uint64) (m SourceUser, ok bool, err error)
	// SetMark writes m (the mark of user m.User) on src, to live for ttl.
	SetMark(src SourceKey, m SourceUser, ttl time.Duration) error
}

// sourceKeys are the sources of a client in a tenant: its IP, then its
// ASN, each when known.
func sourceKeys(tenant string, ci ClientInfo) []SourceKey {
	keys := make([]SourceKey, 0, 2)
	if ci.IP != "" {
		keys = append(keys, SourceKey{Tenant: tenant, IP: ci.IP})
	}
	if ci.ASN != 0 {
		keys = append(keys, SourceKey{Tenant: tenant, ASN: ci.ASN})
	}
	return keys
}

// named sets on sc the source it counts.
func (k SourceKey) named(sc SprayCount) SprayCount {
	if k.IP != "" {
		sc.IP = k.IP
	} else {
		sc.ASN = k.ASN
	}
	return sc
}

// Observe applies o to the user's state s and to the spray state of o's
// client in src, and assesses the user as Record does. It is what the
// scoring service does for every event and recorded attempt. A duplicate
// changes nothing (applied is false); an error comes from src only, and
// leaves s unchanged.
func (c Config) Observe(src Sources, tenant, user string, s *UserState, o Observation) (ra *scoringv1.RiskAssessment, applied bool, err error) {
	var spray []SprayCount
	role := SprayIgnored
	if !c.duplicate(s, o) {
		role = c.SprayRole(s, o)
	}
	switch role {
	case SprayCounted, SprayDormant:
		if spray, err = c.noteSources(src, tenant, user, o, role == SprayDormant); err != nil {
			return nil, false, err
		}
	case SprayVouches:
		if err := c.vouchSources(src, tenant, user, o); err != nil {
			return nil, false, err
		}
	}
	ra, applied = c.Record(user, s, o, spray)
	return ra, applied, nil
}

// Inspect assesses o as Observe would, changing neither s nor src (o is
// not counted).
func (c Config) Inspect(src Sources, tenant, user string, s *UserState, o Observation) (*scoringv1.RiskAssessment, error) {
	var spray []SprayCount
	if role := c.SprayRole(s, o); role == SprayCounted || role == SprayDormant {
		for _, k := range sourceKeys(tenant, o.Client) {
			users, err := src.Recent(k, c.sourceLimit())
			if err != nil {
				return nil, err
			}
			spray = append(spray, k.named(c.SourceUsers(&SourceState{Users: users}, o.At)))
		}
	}
	return c.Preview(user, s, o, spray), nil
}

// sourceLimit is how many marks a count reads: enough to decide the
// threshold with a margin, so a busy source costs a bounded read.
func (c Config) sourceLimit() int {
	sp := c.Spray
	return min(2*max(sp.IPThreshold, sp.ASNThreshold)+8, max(sp.MaxUsers, 1))
}

// markTTL keeps a user's mark on a source a little longer than the window.
func markTTL(sp SprayConfig) time.Duration { return sp.Window + sp.Window/10 + time.Second }

// noteSources marks user on the client's IP and ASN (dormant: the user has
// no history) and returns the count of each in the window (see
// SourceUsers), this user included.
func (c Config) noteSources(src Sources, tenant, user string, o Observation, dormant bool) ([]SprayCount, error) {
	sp := c.Spray
	if sp.Window <= 0 || (sp.IPThreshold <= 0 && sp.ASNThreshold <= 0) {
		return nil, nil
	}
	h := hashID(user)
	keys := sourceKeys(tenant, o.Client)
	var out []SprayCount
	if len(keys) > 0 {
		out = make([]SprayCount, 0, len(keys))
	}
	for _, k := range keys {
		users, err := src.Recent(k, c.sourceLimit())
		if err != nil {
			return nil, err
		}
		slices.SortFunc(users, func(a, b SourceUser) int { return cmp.Compare(a.At, b.At) })
		sc := c.NoteSource(&SourceState{Users: users}, user, o.At, dormant)
		// The user's own mark is read whole: Recent may have left it out.
		at, vouched := o.At.UnixMilli(), false
		prev, ok, err := src.Mark(k, h)
		if err != nil {
			return nil, err
		}
		if ok {
			at, vouched = max(at, prev.At), prev.Vouched
		}
		if err := src.SetMark(k, SourceUser{User: h, At: at, Vouched: vouched, Dormant: dormant}, markTTL(sp)); err != nil {
			return nil, err
		}
		out = append(out, k.named(sc))
	}
	return out, nil
}

// vouchSources marks that user succeeded from the client's IP and ASN (a
// success SprayRole accepts as the user's own), so the user no longer
// counts toward their spray. Users without a mark on the source (the usual
// case) cost one read each and no write.
func (c Config) vouchSources(src Sources, tenant, user string, o Observation) error {
	if c.Spray.Window <= 0 {
		return nil
	}
	h := hashID(user)
	for _, k := range sourceKeys(tenant, o.Client) {
		m, ok, err := src.Mark(k, h)
		if err != nil {
			return err
		}
		if !ok || m.Vouched {
			continue
		}
		m.Vouched = true
		if err := src.SetMark(k, m, markTTL(c.Spray)); err != nil {
			return err
		}
	}
	return nil
}

// EncodeMark encodes a user's mark on a source as a store keeps it under
// a key of its own: the time of the last push and the flags (the user is
// in the key).
func EncodeMark(m SourceUser) []byte {
	return append(binary.AppendVarint(nil, m.At), markFlags(m.Vouched, m.Dormant))
}

// DecodeMark decodes what EncodeMark wrote for user; ok is false when b is
// not a mark.
func DecodeMark(user uint64, b []byte) (m SourceUser, ok bool) {
	at, n := binary.Varint(b)
	if n <= 0 || len(b) != n+1 {
		return SourceUser{}, false
	}
	f := b[n]
	return SourceUser{User: user, At: at, Vouched: f&markVouched != 0, Dormant: f&markDormant != 0}, true
}

// MemSources keeps the spray state in memory, on the clock of the marks
// it is given: replay runs events in time order, so the newest mark's time
// is the time of the replay. It is not safe for concurrent use.
type MemSources struct {
	marks map[SourceKey]map[uint64]memMark
	// now is the newest mark time written (unix ms); writes counts the
	// writes since the last sweep of expired marks.
	now    int64
	writes int
}

type memMark struct {
	SourceUser
	until int64
}

// NewMemSources returns an empty in-memory spray state.
func NewMemSources() *MemSources { return &MemSources{marks: map[SourceKey]map[uint64]memMark{}} }

// memSweep is how many writes pass between sweeps of every source.
const memSweep = 4096

// Recent implements Sources. Past limit it returns the marks of the lowest
// user hashes, as a store scanning keys in order does.
func (ms *MemSources) Recent(src SourceKey, limit int) ([]SourceUser, error) {
	marks := ms.marks[src]
	out := make([]SourceUser, 0, len(marks))
	for _, m := range marks {
		if m.until > ms.now {
			out = append(out, m.SourceUser)
		}
	}
	slices.SortFunc(out, func(a, b SourceUser) int { return cmp.Compare(a.User, b.User) })
	if len(out) > limit {
		out = out[:max(limit, 0)]
	}
	return out, nil
}

// Mark implements Sources.
func (ms *MemSources) Mark(src SourceKey, user uint64) (SourceUser, bool, error) {
	m, ok := ms.marks[src][user]
	if !ok || m.until <= ms.now {
		return SourceUser{}, false, nil
	}
	return m.SourceUser, true, nil
}

// SetMark implements Sources.
func (ms *MemSources) SetMark(src SourceKey, m SourceUser, ttl time.Duration) error {
	ms.now = max(ms.now, m.At)
	marks := ms.marks[src]
	if marks == nil {
		marks = map[uint64]memMark{}
		ms.marks[src] = marks
	}
	marks[m.User] = memMark{SourceUser: m, until: ms.now + ttl.Milliseconds()}
	if ms.writes++; ms.writes >= memSweep {
		ms.writes = 0
		for k, marks := range ms.marks {
			for u, m := range marks {
				if m.until <= ms.now {
					delete(marks, u)
				}
			}
			if len(marks) == 0 {
				delete(ms.marks, k)
			}
		}
	}
	return nil
}
