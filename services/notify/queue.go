package notify

import (
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/store"
)

// This file holds the order in which due deliveries go out. A flood of
// incidents in one tenant must not hold up a victim's first alert: the
// queue is split per channel and tenant into fair-share queues that take
// turns, and within one queue a delivery's rank (what it is and how severe)
// decides before its due time.

// severity is how much an alert tells the SOC, from the signals the
// decision attached to it (the "signals" attribute). Higher is more severe.
type severity uint8

const (
	// sevSpray: the user is one of many targets of one source (PUSH_SPRAY);
	// each further alert of a spray repeats what its first alerts said.
	sevSpray severity = iota
	// sevTargeted: an attack on this user; every alert without a spray or
	// a critical signal.
	sevTargeted
	// sevCritical: the attack may have succeeded (a push approved after a
	// burst, or far from where the login came from) or the user confirmed
	// it (fraud report).
	sevCritical
)

// criticalSignals are the scoring signals that make an alert critical.
var criticalSignals = []string{RevokeSignal, "RESPONSE_LOCATION_MISMATCH", "FRAUD_REPORTED"}

// severityOf reads an alert's severity from its signals.
func severityOf(n *notifyv1.NotifyRequest) severity {
	sigs := strings.Split(n.GetAttributes()["signals"], ",")
	for i := range sigs {
		sigs[i] = strings.TrimSpace(sigs[i])
	}
	switch {
	case slices.ContainsFunc(sigs, func(s string) bool { return slices.Contains(criticalSignals, s) }):
		return sevCritical
	case slices.Contains(sigs, "PUSH_SPRAY"):
		return sevSpray
	}
	return sevTargeted
}

// rank orders the due deliveries of one fair-share queue: lower goes first.
// It is kept in the delivery's due entry, so the worker orders the queue
// without reading every delivery.
type rank uint8

const (
	// rankUrgent: pushes (a person waits at a login) and security events
	// (an attacker's session ends). Never rate limited.
	rankUrgent rank = iota
	// rankCritical: a critical alert, first or update.
	rankCritical
	// rankFirst: the first alert of an incident on its channel.
	rankFirst
	// rankFirstSpray: the first alert of an incident of a spray.
	rankFirstSpray
	// rankNotice: the user's "we blocked N pushes" notice.
	rankNotice
	// rankUpdate: an update to an incident whose alert went out already.
	rankUpdate
	// rankUpdateSpray: an update to an incident of a spray.
	rankUpdateSpray
	// rankCount bounds the ranks (a stored rank at or above is unread).
	rankCount
)

// alertRank ranks a SOC alert of severity sev; first is true while nothing
// of its incident went out on its channel.
func alertRank(sev severity, first bool) rank {
	switch {
	case sev == sevCritical:
		return rankCritical
	case first && sev == sevSpray:
		return rankFirstSpray
	case first:
		return rankFirst
	case sev == sevSpray:
		return rankUpdateSpray
	}
	return rankUpdate
}

// rankOf ranks a notification that starts its own delivery: an alert
// outside an incident is a first alert.
func rankOf(n *notifyv1.NotifyRequest) rank {
	switch n.GetKind() {
	case notifyv1.Kind_KIND_SOC_ALERT:
		return alertRank(severityOf(n), true)
	case notifyv1.Kind_KIND_USER_NOTICE:
		return rankNotice
	}
	return rankUrgent
}

// alert reports whether r ranks a SOC alert.
func (r rank) alert() bool { return r >= rankCritical && r < rankCount && r != rankNotice }

// severity is the severity an alert rank stands for.
func (r rank) severity() severity {
	switch r {
	case rankCritical:
		return sevCritical
	case rankFirstSpray, rankUpdateSpray:
		return sevSpray
	}
	return sevTargeted
}

// first reports whether an alert rank is a first alert (a critical one
// counts as first: it goes ahead either way).
func (r rank) first() bool { return r != rankUpdate && r != rankUpdateSpray }

// raise is the rank of an alert after a denial of severity sev was folded
// into it: severity only rises while an incident goes on, so an approval
// folded into a waiting alert moves it ahead, and a later plain denial does
// not move it back.
func (r rank) raise(sev severity) rank {
	if !r.alert() {
		return r
	}
	return alertRank(max(r.severity(), sev), r.first())
}

// Due entries. The key names the delivery's kind, tenant, due time and id,
// all of which the delivery itself holds, so a delivery names its one due
// entry; the value holds what the worker orders by.
//
//	notify/due/{kind}/{tenant}/{ms:020d}/{id}  ->  {rank}/{id}/{channel}
//
// The kind keeps pushes from queueing behind a tenant's rate-limited
// alerts. An older layout, notify/due/{ms:020d}/{id} -> {id}, is still
// read: such an entry is claimed like any other and moves to this layout.
const duePrefix = "notify/due/"

// kindPart names a kind in due keys.
func kindPart(k notifyv1.Kind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "KIND_"))
}

// kindOfPart is kindPart read back (KIND_UNSPECIFIED when unknown).
func kindOfPart(p string) notifyv1.Kind {
	return notifyv1.Kind(notifyv1.Kind_value["KIND_"+strings.ToUpper(p)])
}

// dueKey is the due entry a delivery names: its kind, tenant, next attempt
// time and id.
func dueKey(d *notifyv1.Delivery) []byte {
	n := d.GetNotification()
	return fmt.Appendf(nil, "%s%s/%s/%020d/%s", duePrefix, kindPart(n.GetKind()), store.KeyPart(n.GetTenant()),
		d.GetNextAttemptTime().AsTime().UnixMilli(), d.GetDeliveryId())
}

// legacyDueKey is the entry of the older layout a delivery names.
func legacyDueKey(d *notifyv1.Delivery) []byte {
	return fmt.Appendf(nil, "%s%020d/%s", duePrefix, d.GetNextAttemptTime().AsTime().UnixMilli(), d.GetDeliveryId())
}

// legacyEnd sorts after every key of the older layout (they begin with
// digits) and before every key of this one (kinds begin with letters).
var legacyEnd = []byte(duePrefix + "9\xff")

// dueValue encodes what a due entry holds.
func dueValue(r rank, id, channel string) []byte {
	return []byte(strconv.Itoa(int(r)) + "/" + id + "/" + channel)
}

// dueEntry is one due entry as the worker reads it.
type dueEntry struct {
	key []byte
	// group is the key up to the due time: the entries of one kind and
	// tenant, in due-time order.
	group   string
	kind    notifyv1.Kind
	tenant  string // key part
	due     int64  // Unix ms
	id      string
	rank    rank
	channel string // "" when unread
	legacy  bool   // an entry of the older layout
	// unread is set when the value holds no rank and channel this worker
	// can read (the older layout, a damaged value, a rank of a newer
	// version): the entry is ordered first, and its claim ranks the
	// delivery itself. The key alone names the delivery, so it is never
	// left behind.
	unread bool
}

// parseDue reads a due entry; ok is false for a key this worker did not
// write.
func parseDue(key, value []byte) (e dueEntry, ok bool) {
	rest, found := bytes.CutPrefix(key, []byte(duePrefix))
	if !found {
		return e, false
	}
	parts := strings.Split(string(rest), "/")
	e.key = key
	switch len(parts) {
	case 2: // the older layout: the worker learns the rest when it claims
		e.legacy, e.group = true, duePrefix
	case 4:
		e.kind, e.tenant = kindOfPart(parts[0]), parts[1]
		e.group = duePrefix + parts[0] + "/" + parts[1] + "/"
		parts = parts[2:]
	default:
		return e, false
	}
	ms, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || len(parts[0]) != 20 || parts[1] == "" {
		return e, false
	}
	e.due, e.id = ms, parts[1]
	r, rest2, ok1 := strings.Cut(string(value), "/")
	id, channel, ok2 := strings.Cut(rest2, "/")
	n, err := strconv.Atoi(r)
	if e.legacy || !ok1 || !ok2 || err != nil || n < 0 || n >= int(rankCount) || id != e.id {
		e.unread, e.rank = true, rankUrgent
		return e, true
	}
	e.rank, e.channel = rank(n), channel
	return e, true
}

// names reports whether e is the due entry d names. Any other entry of d
// is stale.
func (e dueEntry) names(d *notifyv1.Delivery) bool {
	if e.legacy {
		return bytes.Equal(e.key, legacyDueKey(d))
	}
	return bytes.Equal(e.key, dueKey(d))
}

// dueLookahead bounds the entries read per kind and tenant in one round:
// within it the rank decides, beyond it (a backlog of one tenant larger
// than this) the oldest entries come first.
const dueLookahead = 1024

// scanDue reads the due entries at now: per kind and tenant, up to
// dueLookahead, skipping to the next tenant at the first entry not yet
// due. more reports that some tenant had more due entries than were read.
func scanDue(ctx context.Context, st store.Store, now time.Time) (entries []dueEntry, more bool, err error) {
	const batch = 256
	nowMs := now.UnixMilli()
	var after []byte
	group, inGroup := "", 0
	for {
		items, err := st.Scan(ctx, store.ScanOptions{Prefix: []byte(duePrefix), After: after, Limit: batch})
		if err != nil {
			return nil, false, err
		}
		skipped := false
		for _, it := range items {
			e, ok := parseDue(it.Key, it.Value)
			if !ok {
				after = it.Key
				continue
			}
			if e.group != group {
				group, inGroup = e.group, 0
			}
			if e.due > nowMs || inGroup == dueLookahead {
				more = more || e.due <= nowMs
				// The rest of this group is later (or beyond the
				// look-ahead): go on with the next kind or tenant.
				after = append([]byte(e.group), 0xff)
				if e.legacy {
					after = legacyEnd
				}
				skipped = true
				break
			}
			entries = append(entries, e)
			inGroup++
			after = it.Key
		}
		if !skipped && len(items) < batch {
			return entries, more, nil
		}
	}
}

// queueKey names one fair-share queue: the due deliveries of one tenant on
// one channel.
type queueKey struct{ channel, tenant string }

func (e dueEntry) queue() queueKey { return queueKey{e.channel, e.tenant} }

// compareEntries orders the entries of one queue: rank, then due time,
// then id (ids sort by creation).
func compareEntries(a, b dueEntry) int {
	return cmp.Or(cmp.Compare(a.rank, b.rank), cmp.Compare(a.due, b.due), strings.Compare(a.id, b.id))
}

// plan orders due entries for delivery. Each channel's entries are split
// into one queue per tenant, ordered by compareEntries; the queues take
// turns, the next entry coming from the queue served least recently, so a
// tenant that floods a channel gets one turn like any other and cannot
// starve the rest. Pushes and security events go before every other kind:
// a person waits at a login, or an attacker's session ends. Between queues
// served equally recently (both new, say) the better head goes first, so
// severity orders the queue across tenants too.
//
// served holds the turn each queue was last served at (0: not recently);
// turn is the last turn given out. Both are read, not changed.
func plan(entries []dueEntry, served map[queueKey]uint64, turn uint64) []dueEntry {
	byQueue := map[queueKey][]dueEntry{}
	for _, e := range entries {
		byQueue[e.queue()] = append(byQueue[e.queue()], e)
	}
	h := make(fairQueues, 0, len(byQueue))
	for k, es := range byQueue {
		slices.SortFunc(es, compareEntries)
		h = append(h, &fairQueue{key: k, entries: es, served: served[k]})
	}
	heap.Init(&h)
	out := make([]dueEntry, 0, len(entries))
	for h.Len() > 0 {
		q := h[0]
		out = append(out, q.entries[0])
		q.entries = q.entries[1:]
		if len(q.entries) == 0 {
			heap.Pop(&h)
			continue
		}
		turn++
		q.served = turn
		heap.Fix(&h, 0)
	}
	return out
}

// fairQueue is one queue while plan takes turns.
type fairQueue struct {
	key     queueKey
	entries []dueEntry
	served  uint64
}

// fairQueues is a heap of queues by whose turn it is.
type fairQueues []*fairQueue

func (h fairQueues) Len() int      { return len(h) }
func (h fairQueues) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h fairQueues) Less(i, j int) bool {
	a, b := h[i], h[j]
	if ua, ub := a.entries[0].rank == rankUrgent, b.entries[0].rank == rankUrgent; ua != ub {
		return ua
	}
	if a.served != b.served {
		return a.served < b.served
	}
	if c := compareEntries(a.entries[0], b.entries[0]); c != 0 {
		return c < 0
	}
	return cmp.Or(strings.Compare(a.key.channel, b.key.channel), strings.Compare(a.key.tenant, b.key.tenant)) < 0
}
func (h *fairQueues) Push(x any) { *h = append(*h, x.(*fairQueue)) }
func (h *fairQueues) Pop() any {
	old := *h
	q := old[len(old)-1]
	*h = old[:len(old)-1]
	return q
}
