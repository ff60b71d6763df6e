package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/pushbackhq/pushback/connectors/respond"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/ids"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/userid"
	"github.com/pushbackhq/pushback/pkg/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Response actions. A response rule's match reaches notify as a SOC alert
// (or a KIND_RESPONSE_ACTION request when the rule does not alert) that
// lists actions. Each action is taken once per incident: one delivery per
// connector that can take it, keyed "action:{incident}:{action}", durable,
// retried, audited (the delivery keeps what was done and its result).
// revoke_sessions also sends a CAEP session-revoked Security Event Token to
// the configured receivers; caep_credential_change and
// caep_risk_level_change send only their Security Event Tokens.
//
// Every action that logs people out passes the per-tenant brake: past
// Brake actions a minute, the rest are held (STATUS_HELD) until an
// operator releases them, and one alert says so. A dry-run action is
// recorded with what it would have done, and not taken. An action that
// fails for good raises an alert.

// MaxResponseActions caps the actions of one request.
const MaxResponseActions = 16

// ActionChannel runs a response connector as a channel.
type ActionChannel struct {
	Connector respond.Connector
	// Aliases maps the user to their id at the connector's IdP.
	Aliases *userid.Aliases
}

// Name implements Channel: the connector's name.
func (c *ActionChannel) Name() string { return c.Connector.Name() }

// Accepts implements Channel.
func (c *ActionChannel) Accepts(kind notifyv1.Kind) bool {
	return kind == notifyv1.Kind_KIND_RESPONSE_ACTION
}

// Supports reports whether the connector can take action a.
func (c *ActionChannel) Supports(a string) bool { return c.Connector.Supports(respond.Action(a)) }

// Target is the user's id at the connector's IdP: the alias map's, else
// the id the IdP itself logged (when the event came from it), else
// Pushback's id.
func (c *ActionChannel) Target(n *notifyv1.NotifyRequest) string {
	if p, ok := c.Aliases.Lookup(n.GetTenant(), n.GetUserId()); ok {
		if id := p.At(c.Name()); id != "" {
			return id
		}
	}
	if raw := n.GetAttributes()["raw_user_id"]; raw != "" && n.GetAttributes()["source"] == c.Name() {
		return raw
	}
	return n.GetUserId()
}

// Deliver implements Channel.
func (c *ActionChannel) Deliver(ctx context.Context, d *notifyv1.Delivery) error {
	_, err := c.Act(ctx, d)
	return err
}

// Act takes the delivery's action and says what was done.
func (c *ActionChannel) Act(ctx context.Context, d *notifyv1.Delivery) (string, error) {
	n := d.GetNotification()
	if len(n.GetResponseActions()) != 1 {
		return "", Permanent(errors.New("a response action delivery carries one action"))
	}
	a := n.GetResponseActions()[0]
	res, err := c.Connector.Do(ctx, respond.Request{
		Tenant: n.GetTenant(), UserID: c.Target(n), Action: respond.Action(a.GetAction()), Status: a.GetUserStatus(),
		IncidentID: d.GetIncident().GetIncidentId(), Reason: "Pushback response rule " + a.GetRule(),
	})
	if err != nil {
		if respond.IsPermanent(err) {
			return "", Permanent(err)
		}
		return "", err
	}
	detail := res.Detail
	if detail == "" {
		detail = a.GetAction() + ": done"
	}
	return detail, nil
}

// Actor is a channel that reports what it did.
type Actor interface {
	Act(ctx context.Context, d *notifyv1.Delivery) (string, error)
}

// actionTaker is a channel that takes some response actions.
type actionTaker interface {
	Supports(a string) bool
}

func validateActions(v *apierr.Violations, req *notifyv1.NotifyRequest) {
	acts := req.GetResponseActions()
	switch k := req.GetKind(); {
	case len(acts) > MaxResponseActions:
		v.Add("response_actions", "more than %d actions", MaxResponseActions)
		return
	case k == notifyv1.Kind_KIND_RESPONSE_ACTION && len(acts) == 0:
		v.Add("response_actions", "is required for KIND_RESPONSE_ACTION")
	case len(acts) > 0 && k != notifyv1.Kind_KIND_RESPONSE_ACTION && k != notifyv1.Kind_KIND_SOC_ALERT:
		v.Add("response_actions", "are only for KIND_SOC_ALERT and KIND_RESPONSE_ACTION")
	}
	if len(acts) > 0 && req.GetUserId() == "" {
		v.Add("user_id", "is required for response actions")
	}
	for i, a := range acts {
		f := fmt.Sprintf("response_actions[%d]", i)
		if !respond.Action(a.GetAction()).Valid() {
			v.Add(f+".action", "%q is not a response action", a.GetAction())
		}
		want := signalType(respond.Action(a.GetAction()))
		switch se := a.GetSecurityEvent(); {
		case want == notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_UNSPECIFIED && se != nil:
			v.Add(f+".security_event", "is only for caep_credential_change and caep_risk_level_change")
		case want != notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_UNSPECIFIED && se.GetType() != want:
			v.Add(f+".security_event.type", "must be %v for %s", want, a.GetAction())
		case se != nil:
			checkSecurityEvent(v, f+".security_event", se)
		}
		switch {
		case a.GetAction() == string(respond.SetUserStatus) && a.GetUserStatus() != "disabled":
			v.Add(f+".user_status", "must be disabled for set_user_status (Duo sets no other status an API client may use to lock a user out)")
		case a.GetAction() != string(respond.SetUserStatus) && a.GetUserStatus() != "":
			v.Add(f+".user_status", "is only for set_user_status")
		}
	}
}

// takeActions queues, inside tx, the actions of req its incident has not
// taken yet.
func (s *Service) takeActions(tx store.Txn, req *notifyv1.NotifyRequest, in *incident, now time.Time, resp *notifyv1.NotifyResponse) error {
	for _, a := range req.GetResponseActions() {
		if _, done := in.Actions[a.GetAction()]; done {
			continue
		}
		in.Actions[a.GetAction()] = nil
		attrs := map[string]string{"rule": a.GetRule()}
		for _, k := range []string{"source", "raw_user_id", "signals", "rules"} {
			if v := req.GetAttributes()[k]; v != "" {
				attrs[k] = v
			}
		}
		if a.GetDryRun() {
			attrs["dry_run"] = "true"
		}
		act := &notifyv1.NotifyRequest{
			Kind: notifyv1.Kind_KIND_RESPONSE_ACTION, IdempotencyKey: "action:" + in.ID + ":" + a.GetAction(),
			UserId: req.GetUserId(), Tenant: req.GetTenant(), UserEmail: req.GetUserEmail(), SessionId: req.GetSessionId(),
			Title: fmt.Sprintf("%s for %s (rule %s)", a.GetAction(), req.GetUserId(), a.GetRule()), Message: req.GetMessage(),
			Attributes: attrs, Time: req.GetTime(), TraceId: req.GetTraceId(), ResponseActions: []*notifyv1.ResponseAction{a},
		}
		snap := in.proto()
		taken := 0
		for _, ch := range s.accepting(act) {
			if t, ok := ch.(actionTaker); !ok || !t.Supports(a.GetAction()) {
				continue
			}
			d, err := s.enqueue(tx, ch, act, snap, now, now, rankUrgent)
			if err != nil {
				return err
			}
			in.Actions[a.GetAction()] = append(in.Actions[a.GetAction()], d.GetDeliveryId())
			in.note(d.GetDeliveryId())
			resp.DeliveryIds = append(resp.DeliveryIds, d.GetDeliveryId())
			taken++
		}
		if a.GetAction() == string(respond.RevokeSessions) || a.GetAction() == string(respond.RevokeTokens) {
			n, err := s.revokeBySET(tx, req, a, in, now, resp)
			if err != nil {
				return err
			}
			taken += n
		}
		if respond.Action(a.GetAction()).Signals() {
			n, err := s.signalBySET(tx, req, a, in, now, resp)
			if err != nil {
				return err
			}
			taken += n
		}
		if taken == 0 {
			// Asked for and nobody can take it: said out loud, once per
			// incident.
			s.log.Warn("no connector takes a response action", slog.String("action", a.GetAction()), slog.String("rule", a.GetRule()),
				slog.String("incident_id", in.ID))
			s.tel.action(context.Background(), "none", a.GetAction(), "unsupported")
			if err := s.raiseOperational(tx, "unsupported:"+in.ID+":"+a.GetAction(), req.GetTenant(), req.GetUserId(), now,
				"Pushback: no connector can "+a.GetAction(),
				fmt.Sprintf("Response rule %s asked to %s for %s, and no configured connector takes that action. Configure one (docs/respond.md) or change the rule.", a.GetRule(), a.GetAction(), req.GetUserId()),
				map[string]string{"action": a.GetAction(), "rule": a.GetRule(), "incident_id": in.ID}); err != nil {
				return err
			}
		}
	}
	return nil
}

// revokeBySET queues the CAEP session-revoked event of a revoke action.
func (s *Service) revokeBySET(tx store.Txn, req *notifyv1.NotifyRequest, a *notifyv1.ResponseAction, in *incident, now time.Time, resp *notifyv1.NotifyResponse) (int, error) {
	if in.Revoked {
		return 0, nil
	}
	attrs := map[string]string{"rule": a.GetRule()}
	if a.GetDryRun() {
		attrs["dry_run"] = "true"
	}
	revoke := &notifyv1.NotifyRequest{
		Kind: notifyv1.Kind_KIND_SECURITY_EVENT, IdempotencyKey: "revoke:" + in.ID, UserId: req.GetUserId(), Tenant: req.GetTenant(),
		UserEmail: req.GetUserEmail(), SessionId: req.GetSessionId(), DecisionId: req.GetDecisionId(), Time: req.GetTime(), TraceId: req.GetTraceId(),
		Attributes: attrs, ResponseActions: []*notifyv1.ResponseAction{a},
		SecurityEvent: &notifyv1.SecurityEvent{
			Type:        notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_SESSION_REVOKED,
			ReasonAdmin: "Pushback response rule " + a.GetRule() + ": " + req.GetMessage(),
			ReasonUser:  "a sign-in to your account looked like an attack, so your sessions were ended",
		},
	}
	n := 0
	for _, ch := range s.accepting(revoke) {
		d, err := s.enqueue(tx, ch, revoke, in.proto(), now, now, rankUrgent)
		if err != nil {
			return n, err
		}
		in.note(d.GetDeliveryId())
		resp.DeliveryIds = append(resp.DeliveryIds, d.GetDeliveryId())
		n++
	}
	in.Revoked = n > 0
	return n, nil
}

// signalType is the security event a signalling action sends.
func signalType(a respond.Action) notifyv1.SecurityEventType {
	switch a {
	case respond.CAEPCredentialChange:
		return notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_CREDENTIAL_CHANGE
	case respond.CAEPRiskLevelChange:
		return notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_RISK_LEVEL_CHANGE
	}
	return notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_UNSPECIFIED
}

// signalBySET queues the CAEP event a caep_* action asks for, on every
// security event channel, once per incident (takeActions skips an action
// its incident already took). Like revocations, these pass the brake and
// honour dry runs: a receiver may log the user out on either.
func (s *Service) signalBySET(tx store.Txn, req *notifyv1.NotifyRequest, a *notifyv1.ResponseAction, in *incident, now time.Time, resp *notifyv1.NotifyResponse) (int, error) {
	se := proto.Clone(a.GetSecurityEvent()).(*notifyv1.SecurityEvent)
	if se.GetReasonAdmin() == "" {
		se.ReasonAdmin = "Pushback response rule " + a.GetRule() + ": " + req.GetMessage()
	}
	attrs := map[string]string{"rule": a.GetRule()}
	if a.GetDryRun() {
		attrs["dry_run"] = "true"
	}
	ev := &notifyv1.NotifyRequest{
		Kind: notifyv1.Kind_KIND_SECURITY_EVENT, IdempotencyKey: "signal:" + in.ID + ":" + a.GetAction(), UserId: req.GetUserId(), Tenant: req.GetTenant(),
		// No session: a credential and a risk level are the user's, and a
		// receiver must not read them as one session's.
		UserEmail: req.GetUserEmail(), DecisionId: req.GetDecisionId(), Time: req.GetTime(), TraceId: req.GetTraceId(),
		Attributes: attrs, ResponseActions: []*notifyv1.ResponseAction{a}, SecurityEvent: se,
	}
	n := 0
	for _, ch := range s.accepting(ev) {
		d, err := s.enqueue(tx, ch, ev, in.proto(), now, now, rankUrgent)
		if err != nil {
			return n, err
		}
		in.Actions[a.GetAction()] = append(in.Actions[a.GetAction()], d.GetDeliveryId())
		in.note(d.GetDeliveryId())
		resp.DeliveryIds = append(resp.DeliveryIds, d.GetDeliveryId())
		n++
	}
	return n, nil
}

// raiseOperational queues, inside tx, an alert about Pushback itself (a
// held or failed action) on every alert channel, once per key. It is not
// folded into an incident: it must not be coalesced away.
func (s *Service) raiseOperational(tx store.Txn, key, tenant, user string, now time.Time, title, message string, attrs map[string]string) error {
	k := idemKey("ops:" + key)
	if _, err := tx.Get(k); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	alert := &notifyv1.NotifyRequest{Kind: notifyv1.Kind_KIND_SOC_ALERT, IdempotencyKey: "ops:" + key, Tenant: tenant, UserId: user,
		Title: title, Message: message, Attributes: attrs, Time: timestamppb.New(now)}
	var delivered []string
	for _, ch := range s.accepting(alert) {
		d, err := s.enqueue(tx, ch, alert, nil, now, now, rankCritical)
		if err != nil {
			return err
		}
		delivered = append(delivered, d.GetDeliveryId())
	}
	return tx.Set(k, []byte(strings.Join(delivered, ",")), s.opts.Retention)
}

// isAction reports whether a delivery takes a response action: an
// action at an IdP, or the session-revoked event of one (an alert that
// lists actions only reports them).
func isAction(n *notifyv1.NotifyRequest) bool {
	k := n.GetKind()
	return len(n.GetResponseActions()) > 0 && (k == notifyv1.Kind_KIND_RESPONSE_ACTION || k == notifyv1.Kind_KIND_SECURITY_EVENT)
}

// dryRun reports whether a delivery only records its action.
func dryRun(n *notifyv1.NotifyRequest) bool {
	return n.GetAttributes()["dry_run"] == "true" || slices.ContainsFunc(n.GetResponseActions(), func(a *notifyv1.ResponseAction) bool { return a.GetDryRun() })
}

// braked reports whether a delivery passes the brake: an action (or its
// session-revoked event) that logs a person out, not dry, not released.
func braked(n *notifyv1.NotifyRequest) bool {
	return isAction(n) && !dryRun(n) && n.GetAttributes()["released"] != "true"
}

// Brake keys:
//
//	notify/brake/{tenant}       token bucket of the tenant's actions
//	notify/held/{tenant}/{id}   a held action, for ReleaseActions
func brakeKey(tenant string) []byte { return []byte("notify/brake/" + store.KeyPart(tenant)) }

func heldKey(tenant, id string) []byte {
	return []byte("notify/held/" + url.PathEscape(tenant) + "/" + id)
}

// brakeLimit is the bucket of Brake actions a minute.
func (s *Service) brakeLimit() RateLimit {
	return RateLimit{Every: time.Minute / time.Duration(s.opts.Brake), Burst: s.opts.Brake}
}

// hold spends a brake token for a claimed action, or holds the action:
// it leaves the queue, waits for ReleaseActions, and one alert a tenant
// per ten minutes says actions are held. held is true when it was held.
func (s *Service) hold(ctx context.Context, c *claimed) (held bool, err error) {
	n := c.d.GetNotification()
	tenant, now, id := n.GetTenant(), s.opts.Now(), c.d.GetDeliveryId()
	lim := s.brakeLimit()
	err = s.opts.Store.Update(ctx, func(tx store.Txn) error {
		held = false
		var b bucket
		v, err := tx.Get(brakeKey(tenant))
		switch {
		case err == nil:
			b, _ = unmarshalBucket(v)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		b, wait := lim.spend(b, now)
		if err := tx.Set(brakeKey(tenant), b.marshal(), lim.refill()); err != nil {
			return err
		}
		if wait == 0 {
			return nil
		}
		cur, err := getDelivery(tx, id)
		if err != nil {
			return err
		}
		held = true
		cur.Status = notifyv1.Status_STATUS_HELD
		cur.NextAttemptTime = nil
		cur.LastError = fmt.Sprintf("held by the brake: more than %d response actions a minute in tenant %q", s.opts.Brake, tenant)
		if err := putDelivery(tx, cur, 0); err != nil {
			return err
		}
		if err := tx.Delete(c.lease); err != nil {
			return err
		}
		if err := tx.Set(heldKey(tenant, id), nil, 0); err != nil {
			return err
		}
		window := now.Truncate(10 * time.Minute).Unix()
		return s.raiseOperational(tx, fmt.Sprintf("brake:%s:%d", tenant, window), tenant, "", now,
			"Pushback: response actions held in tenant "+tenant,
			fmt.Sprintf("More than %d response actions a minute in tenant %q: the rest are held, not taken. A rule may be matching far more users than it should. Review them with `pushback incidents list`, then release with `pushback incidents release --tenant %s` or fix the rule.", s.opts.Brake, tenant, tenant),
			map[string]string{"tenant": tenant, "brake": fmt.Sprint(s.opts.Brake)})
	})
	if err == nil && held {
		s.log.ErrorContext(ctx, "response action held by the brake", slog.String("delivery_id", id), slog.String("channel", c.d.GetChannel()),
			slog.String("tenant", tenant), slog.Int("brake_per_minute", s.opts.Brake))
		s.tel.action(ctx, c.d.GetChannel(), actionOf(n), "held")
	}
	return held, err
}

func actionOf(n *notifyv1.NotifyRequest) string {
	if a := n.GetResponseActions(); len(a) > 0 {
		return a[0].GetAction()
	}
	return ""
}

// actionFailed raises, inside tx, the alert of an action that will not be
// taken (dead-lettered).
func (s *Service) actionFailed(tx store.Txn, d *notifyv1.Delivery, now time.Time) error {
	n := d.GetNotification()
	return s.raiseOperational(tx, "failed:"+d.GetDeliveryId(), n.GetTenant(), n.GetUserId(), now,
		fmt.Sprintf("Pushback: %s failed at %s", actionOf(n), d.GetChannel()),
		fmt.Sprintf("The response action %s for %s at %s failed after %d attempts: %s. Take it by hand.", actionOf(n), n.GetUserId(), d.GetChannel(), d.GetAttempts(), d.GetLastError()),
		map[string]string{"action": actionOf(n), "channel": d.GetChannel(), "incident_id": d.GetIncident().GetIncidentId(), "delivery_id": d.GetDeliveryId()})
}

// ReleaseActions implements the RPC: held actions go back to the queue,
// due now, marked released so that the brake lets them through.
func (s *Service) ReleaseActions(ctx context.Context, req *notifyv1.ReleaseActionsRequest) (*notifyv1.ReleaseActionsResponse, error) {
	if err := validate.Request(ctx, req); err != nil {
		return nil, err
	}
	var v apierr.Violations
	for i, id := range req.GetDeliveryIds() {
		if _, ok := ids.Time(id); !ok {
			v.Add(fmt.Sprintf("delivery_ids[%d]", i), "is not a delivery id")
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	prefix := []byte("notify/held/" + url.PathEscape(req.GetTenant()) + "/")
	items, err := s.opts.Store.Scan(ctx, store.ScanOptions{Prefix: prefix, Limit: 10000})
	if err != nil {
		return nil, apierr.StoreUnavailable()
	}
	want := map[string]bool{}
	for _, id := range req.GetDeliveryIds() {
		want[id] = true
	}
	resp := &notifyv1.ReleaseActionsResponse{}
	now := s.opts.Now()
	for _, it := range items {
		id := string(it.Key[len(prefix):])
		if len(want) > 0 && !want[id] {
			continue
		}
		released := false
		err := s.opts.Store.Update(ctx, func(tx store.Txn) error {
			released = false
			d, err := getDelivery(tx, id)
			if errors.Is(err, store.ErrNotFound) {
				return tx.Delete(it.Key)
			} else if err != nil {
				return err
			}
			if d.GetStatus() != notifyv1.Status_STATUS_HELD {
				return tx.Delete(it.Key)
			}
			if d.Notification.Attributes == nil {
				d.Notification.Attributes = map[string]string{}
			}
			d.Notification.Attributes["released"] = "true"
			d.Status, d.LastError, d.NextAttemptTime = notifyv1.Status_STATUS_PENDING, "", timestamppb.New(now)
			if err := putDelivery(tx, d, 0); err != nil {
				return err
			}
			if err := tx.Set(dueKey(d), dueValue(rankUrgent, id, d.GetChannel()), 0); err != nil {
				return err
			}
			released = true
			return tx.Delete(it.Key)
		})
		if err != nil {
			return nil, apierr.StoreUnavailable()
		}
		if released {
			resp.DeliveryIds = append(resp.DeliveryIds, id)
		}
	}
	if len(resp.DeliveryIds) > 0 {
		s.log.WarnContext(ctx, "held response actions released", slog.String("tenant", req.GetTenant()), slog.Int("actions", len(resp.DeliveryIds)))
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return resp, nil
}
