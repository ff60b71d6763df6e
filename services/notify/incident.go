package notify

import (
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/ids"
	"github.com/pushbackhq/pushback/pkg/store"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// incident is the stored state of one attack on one user. Pending names,
// per channel, the alert that later denials are folded into while it waits;
// Notices the user's notice per channel (one per incident).
type incident struct {
	ID       string               `json:"id"`
	Count    int32                `json:"count"`
	First    time.Time            `json:"first"`
	Last     time.Time            `json:"last"`
	Seen     time.Time            `json:"seen"`
	Pending  map[string]string    `json:"pending,omitempty"`
	LastSent map[string]time.Time `json:"lastSent,omitempty"`
	Notices  map[string]string    `json:"notices,omitempty"`
	Revoked  bool                 `json:"revoked,omitempty"`
	Tenant   string               `json:"tenant,omitempty"`
	User     string               `json:"user,omitempty"`
	Rules    []string             `json:"rules,omitempty"`
	Signals  []string             `json:"signals,omitempty"`
	// Deliveries lists what the incident raised, oldest first (at most
	// maxIncidentDeliveries).
	Deliveries []string `json:"deliveries,omitempty"`
	// Actions maps a response action taken to its deliveries.
	Actions map[string][]string `json:"actions,omitempty"`
	// Critical is set once a critical alert (the attack succeeded, the
	// user reported it) was raised: the first one goes out at once, not
	// after the update interval.
	Critical bool `json:"critical,omitempty"`
}

// maxIncidentDeliveries bounds the deliveries an incident lists.
const maxIncidentDeliveries = 256

func (in *incident) proto() *notifyv1.Incident {
	return &notifyv1.Incident{IncidentId: in.ID, Count: in.Count, FirstTime: timestamppb.New(in.First), LastTime: timestamppb.New(in.Last),
		Tenant: in.Tenant, UserId: in.User, Rules: slices.Clone(in.Rules), Signals: slices.Clone(in.Signals), DeliveryIds: slices.Clone(in.Deliveries)}
}

// note lists a delivery the incident raised.
func (in *incident) note(id string) {
	if len(in.Deliveries) < maxIncidentDeliveries && !slices.Contains(in.Deliveries, id) {
		in.Deliveries = append(in.Deliveries, id)
	}
}

// merge adds what a request says of the attack: its rules and signals.
func (in *incident) merge(req *notifyv1.NotifyRequest) {
	for _, list := range []struct {
		to   *[]string
		from string
	}{{&in.Rules, req.GetAttributes()["rules"]}, {&in.Signals, req.GetAttributes()["signals"]}} {
		for _, v := range strings.Split(list.from, ",") {
			if v = strings.TrimSpace(v); v != "" && len(*list.to) < 32 && !slices.Contains(*list.to, v) {
				*list.to = append(*list.to, v)
			}
		}
	}
}

func incidentKey(tenant, user string) []byte {
	return []byte("notify/incident/" + url.PathEscape(tenant) + "/" + url.PathEscape(user))
}

func loadIncident(tx store.Reader, tenant, user string) (*incident, error) {
	b, err := tx.Get(incidentKey(tenant, user))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	in := &incident{}
	if err := json.Unmarshal(b, in); err != nil {
		return nil, nil // an unreadable record starts a new incident
	}
	in.init()
	return in, nil
}

func (in *incident) init() {
	if in.Pending == nil {
		in.Pending = map[string]string{}
	}
	if in.LastSent == nil {
		in.LastSent = map[string]time.Time{}
	}
	if in.Notices == nil {
		in.Notices = map[string]string{}
	}
	if in.Actions == nil {
		in.Actions = map[string][]string{}
	}
}

func (s *Service) saveIncident(tx store.Txn, tenant, user string, in *incident) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	// Kept past the window so that a follow-up finds it; it ends by itself.
	if err := tx.Set(incidentKey(tenant, user), b, max(s.opts.IncidentWindow, 0)+s.opts.UpdateInterval+s.opts.NoticeDelay+24*time.Hour); err != nil {
		return err
	}
	// The record by id is what `pushback incidents` lists; it stays as
	// long as the deliveries it names.
	return tx.Set(incidentRecordKey(in.ID), b, s.opts.Retention)
}

// incidentRecordKey is where an incident is kept by id, for listing:
// ids sort by time.
func incidentRecordKey(id string) []byte { return []byte(incidentRecordPrefix + id) }

const incidentRecordPrefix = "notify/incidents/"

// RevokeSignal is the scoring signal of a fatigue attack that succeeded (a
// push approved after a burst): it makes an alert critical. Revoking the
// user's sessions is a response rule's action (docs/respond.md).
const RevokeSignal = "APPROVAL_AFTER_BURST"

// enqueueIncident folds a SOC alert into the user's incident: a new
// incident raises an alert on every channel and schedules the user's
// notice; a running one updates the alert still pending on a channel, or
// schedules one update no sooner than UpdateInterval after the last alert
// sent there.
func (s *Service) enqueueIncident(tx store.Txn, req *notifyv1.NotifyRequest, now time.Time, resp *notifyv1.NotifyResponse) error {
	tenant, user := req.GetTenant(), req.GetUserId()
	in, err := loadIncident(tx, tenant, user)
	if err != nil {
		return err
	}
	at := now
	if req.GetTime() != nil {
		at = req.GetTime().AsTime()
	}
	if in == nil || now.Sub(in.Seen) > s.opts.IncidentWindow {
		in = &incident{ID: ids.New(now), First: at, Tenant: tenant, User: user}
	} else {
		resp.Coalesced = true
	}
	in.init()
	in.merge(req)
	in.Count++
	in.Seen = now
	if at.After(in.Last) {
		in.Last = at
	}
	if at.Before(in.First) {
		in.First = at
	}
	snap := in.proto()
	resp.IncidentId = in.ID
	if req.GetKind() != notifyv1.Kind_KIND_SOC_ALERT {
		// Actions without an alert.
		if err := s.takeActions(tx, req, in, now, resp); err != nil {
			return err
		}
		return s.saveIncident(tx, tenant, user, in)
	}

	// An incident that turns critical says so at once.
	escalates := !in.Critical && severityOf(req) == sevCritical
	if escalates {
		in.Critical = true
	}
	for _, ch := range s.accepting(req) {
		name := ch.Name()
		if id := in.Pending[name]; id != "" {
			d, err := getDelivery(tx, id)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			// An escalation is not folded into an update that waits for
			// the interval: it goes out now, on its own.
			waiting := escalates && d.GetNextAttemptTime().AsTime().After(now)
			if err == nil && d.GetStatus() == notifyv1.Status_STATUS_PENDING && !waiting {
				if err := raiseDue(tx, d, severityOf(req)); err != nil {
					return err
				}
				d.Notification, d.Incident = req, snap
				if err := putDelivery(tx, d, 0); err != nil {
					return err
				}
				resp.DeliveryIds = append(resp.DeliveryIds, id)
				continue
			}
		}
		due := now
		last, sent := in.LastSent[name]
		if sent && now.Before(last.Add(s.opts.UpdateInterval)) && !escalates {
			due = last.Add(s.opts.UpdateInterval)
		}
		d, err := s.enqueue(tx, ch, req, snap, now, due, alertRank(severityOf(req), !sent))
		if err != nil {
			return err
		}
		in.Pending[name] = d.GetDeliveryId()
		in.note(d.GetDeliveryId())
		resp.DeliveryIds = append(resp.DeliveryIds, d.GetDeliveryId())
	}

	notice := &notifyv1.NotifyRequest{
		Kind: notifyv1.Kind_KIND_USER_NOTICE, IdempotencyKey: "notice:" + in.ID, UserId: user, Tenant: tenant,
		UserEmail: req.GetUserEmail(), DeviceId: req.GetDeviceId(), DecisionId: req.GetDecisionId(), Time: req.GetTime(), TraceId: req.GetTraceId(),
	}
	for _, ch := range s.accepting(notice) {
		name := ch.Name()
		if id := in.Notices[name]; id != "" {
			d, err := getDelivery(tx, id)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err == nil && d.GetStatus() == notifyv1.Status_STATUS_PENDING {
				d.Incident = snap
				if err := putDelivery(tx, d, 0); err != nil {
					return err
				}
			}
			continue
		}
		d, err := s.enqueue(tx, ch, notice, snap, now, now.Add(s.opts.NoticeDelay), rankNotice)
		if err != nil {
			return err
		}
		in.Notices[name] = d.GetDeliveryId()
		in.note(d.GetDeliveryId())
	}
	if err := s.takeActions(tx, req, in, now, resp); err != nil {
		return err
	}

	return s.saveIncident(tx, tenant, user, in)
}

// raiseDue raises the rank of a waiting (or in-flight) alert into which a
// denial of severity sev is folded: an approval after a burst moves the
// incident's alert ahead of the rest. The due entry keeps its key, so a
// lease stays valid.
func raiseDue(tx store.Txn, d *notifyv1.Delivery, sev severity) error {
	key := dueKey(d)
	v, err := tx.Get(key)
	if errors.Is(err, store.ErrNotFound) {
		return nil // an entry of the older layout: its claim ranks it
	} else if err != nil {
		return err
	}
	e, ok := parseDue(key, v)
	if !ok || e.unread || e.rank.raise(sev) == e.rank {
		return nil
	}
	return tx.Set(key, dueValue(e.rank.raise(sev), e.id, e.channel), 0)
}

// afterIncidentAttempt records an alert attempt in its incident. When the
// alert was finished (delivered or dead) while denials kept arriving, a
// follow-up carrying the newest count is scheduled, so no count is lost.
// The follow-up is an update once something went out on the channel, and
// keeps the severity r reached.
func (s *Service) afterIncidentAttempt(tx store.Txn, sent, cur, out *notifyv1.Delivery, now time.Time, r rank) error {
	n := sent.GetNotification()
	in, err := loadIncident(tx, n.GetTenant(), n.GetUserId())
	if err != nil || in == nil || in.ID != sent.GetIncident().GetIncidentId() {
		return err
	}
	name := sent.GetChannel()
	if out.GetStatus() == notifyv1.Status_STATUS_DELIVERED {
		in.LastSent[name] = now
	}
	if out.GetStatus() == notifyv1.Status_STATUS_PENDING || in.Pending[name] != sent.GetDeliveryId() {
		return s.saveIncident(tx, n.GetTenant(), n.GetUserId(), in)
	}
	delete(in.Pending, name)
	if cur.GetIncident().GetCount() > sent.GetIncident().GetCount() {
		ch := s.channel(name)
		if ch != nil {
			n := proto.Clone(cur.GetNotification()).(*notifyv1.NotifyRequest)
			_, delivered := in.LastSent[name]
			next := alertRank(max(severityOf(n), r.severity()), !delivered)
			d, err := s.enqueue(tx, ch, n, cur.GetIncident(), now, now.Add(s.opts.UpdateInterval), next)
			if err != nil {
				return err
			}
			in.Pending[name] = d.GetDeliveryId()
			in.note(d.GetDeliveryId())
		}
	}
	return s.saveIncident(tx, n.GetTenant(), n.GetUserId(), in)
}
