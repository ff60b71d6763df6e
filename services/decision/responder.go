package decision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pushbackhq/pushback/connectors/respond"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/ids"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/services/decision/core"
	"github.com/pushbackhq/pushback/services/decision/policy"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// RiskFeed is the part of the scoring service the responder reads.
type RiskFeed interface {
	ListRiskChanges(ctx context.Context, in *scoringv1.ListRiskChangesRequest, opts ...grpc.CallOption) (*scoringv1.ListRiskChangesResponse, error)
}

// The responder follows scoring's feed of risk changes that ingested events
// made, evaluates the policy's respond: rules on each (and the shadow
// policy's, counted only), and hands every match to notify: an alert and
// the actions, folded into the user's incident, durable in notify's outbox.
// Its cursor is durable too: a restart resumes where it stopped, and
// re-reads a few seconds before it, because changes written at the same
// moment by different writers may land out of id order. A change handled
// twice is harmless: notify queues an idempotency key once.
//
//	decision/respond/cursor                  last change id handled
//	decision/respond/causes/{tenant}/{user}  causes already seen (JSON)
const (
	respondCursorKey = "decision/respond/cursor"
	// respondOverlap is how far before its cursor each pass re-reads.
	respondOverlap = 5 * time.Second
	// respondStartBack is how far back a responder without a cursor
	// starts.
	respondStartBack = 5 * time.Minute
	respondPage      = 200
	respondWait      = 10 * time.Second
	// causeTTL is how long a cause is remembered; the signals that carry
	// causes last at most a day in scoring.
	causeTTL = 25 * time.Hour
)

func causesKey(tenant, user string) []byte {
	return []byte("decision/respond/causes/" + url.PathEscape(tenant) + "/" + url.PathEscape(user))
}

// RunResponder follows the risk feed until ctx ends. It is a no-op when no
// feed is configured.
func (s *Service) RunResponder(ctx context.Context) error {
	if s.opts.Feed == nil || s.opts.Notifier == nil {
		return nil
	}
	r := &responder{s: s, seen: map[string]time.Time{}}
	if b, err := s.opts.Store.Get(ctx, []byte(respondCursorKey)); err == nil {
		r.cursor = string(b)
	} else {
		// A responder without a cursor (a new deployment, a new store)
		// starts a little before now: a day of old changes in the feed is
		// history, not an attack to act on now.
		r.cursor = ids.Floor(s.now().Add(-respondStartBack))
		if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
			s.log.WarnContext(ctx, "read the responder's cursor; starting from the last minutes of the feed", slog.Any("error", err))
		}
	}
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		err := r.wait(ctx)
		if err == nil {
			err = r.pass(ctx)
		}
		if err == nil {
			backoff = 0
			continue
		}
		if ctx.Err() != nil {
			break
		}
		backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
		s.count.RespondFailures.Add(1)
		s.logRespondFailure(ctx, err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
	}
	return nil
}

type responder struct {
	s      *Service
	cursor string
	// seen holds the changes handled within the overlap of the cursor.
	seen map[string]time.Time
}

// wait blocks until the feed holds something past the cursor (or the wait
// ends).
func (r *responder) wait(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, respondWait+5*time.Second)
	defer cancel()
	resp, err := r.s.opts.Feed.ListRiskChanges(cctx, &scoringv1.ListRiskChangesRequest{After: r.cursor, PageSize: 1, MaxWait: durationpb.New(respondWait), LoggedOnly: true})
	if err != nil {
		return fmt.Errorf("wait for risk changes: %w", err)
	}
	if len(resp.GetChanges()) == 0 && resp.GetLastChangeId() > r.cursor {
		// Only changes the responder does not act on (Decide's) were
		// read: move past them.
		r.cursor = resp.GetLastChangeId()
	}
	return nil
}

// pass reads the feed from a little before the cursor to its end and
// handles every change not handled yet. The cursor is stored after each
// page.
func (r *responder) pass(ctx context.Context) error {
	after := ""
	if t, ok := ids.Time(r.cursor); ok {
		after = ids.Floor(t.Add(-respondOverlap))
	}
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := r.s.opts.Feed.ListRiskChanges(cctx, &scoringv1.ListRiskChangesRequest{After: after, PageSize: respondPage, LoggedOnly: true})
		cancel()
		if err != nil {
			return fmt.Errorf("read risk changes: %w", err)
		}
		changes := resp.GetChanges()
		moved := false
		for _, c := range changes {
			after = c.GetChangeId()
			if _, done := r.seen[c.GetChangeId()]; done {
				continue
			}
			if err := r.s.respondTo(ctx, c); err != nil {
				return err
			}
			r.seen[c.GetChangeId()] = time.Now()
			if c.GetChangeId() > r.cursor {
				r.cursor, moved = c.GetChangeId(), true
			}
		}
		if last := resp.GetLastChangeId(); last > after {
			after = last
			if len(changes) < respondPage && last > r.cursor {
				r.cursor, moved = last, true
			}
		}
		if moved {
			r.forget()
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := r.s.opts.Store.Update(wctx, func(tx store.Txn) error { return tx.Set([]byte(respondCursorKey), []byte(r.cursor), 0) })
			cancel()
			if err != nil {
				return fmt.Errorf("store the responder's cursor: %w", err)
			}
		}
		if len(changes) < respondPage {
			return nil
		}
	}
}

// forget drops handled changes that the next pass will not re-read.
func (r *responder) forget() {
	t, ok := ids.Time(r.cursor)
	if !ok {
		return
	}
	floor := ids.Floor(t.Add(-2 * respondOverlap))
	for id := range r.seen {
		if id < floor {
			delete(r.seen, id)
		}
	}
}

// respondTo evaluates the response rules on one change and queues what
// they ask for.
func (s *Service) respondTo(ctx context.Context, c *scoringv1.RiskChange) error {
	ra := c.GetAssessment()
	causes := core.Causes(ra)
	var known map[string]int64
	if len(causes) > 0 {
		var err error
		if known, err = s.loadCauses(ctx, c.GetTenant(), ra.GetUserId()); err != nil {
			return err
		}
	}
	seen := make(map[string]bool, len(known))
	for k := range known {
		seen[k] = true
	}
	in := core.RespondInput(c, seen)
	s.count.RiskChanges.Add(1)
	matches, err := s.Policy().Respond.Evaluate(in)
	if err != nil {
		s.count.RuleErrors.Add(1)
		s.log.WarnContext(ctx, "response rule failed to evaluate", slog.Any("error", err))
	}
	if sh := s.ShadowPolicy(); sh != nil {
		shadow, _ := sh.Respond.Evaluate(in)
		if !sameRules(matches, shadow) {
			s.count.ShadowRespondDifferences.Add(1)
			s.log.InfoContext(ctx, "shadow response rules differ", slog.String("change_id", c.GetChangeId()),
				slog.Any("enforced", ruleNames(matches)), slog.Any("shadow", ruleNames(shadow)))
		}
	}
	if len(matches) > 0 {
		if err := s.queueResponse(ctx, c, matches); err != nil {
			return err
		}
	}
	if len(causes) > 0 {
		return s.saveCauses(ctx, c.GetTenant(), ra.GetUserId(), known, causes)
	}
	return nil
}

// queueResponse hands the matches of one change to notify: a SOC alert
// carrying the actions when a rule alerts, otherwise the actions alone.
func (s *Service) queueResponse(ctx context.Context, c *scoringv1.RiskChange, matches []policy.RespondMatch) error {
	ra, e := c.GetAssessment(), c.GetEvent()
	alert := false
	var rules, reasons []string
	var actions []*notifyv1.ResponseAction
	for _, m := range matches {
		alert = alert || m.Alert
		rules = append(rules, m.Rule)
		reasons = append(reasons, m.Reason)
		for _, a := range m.Actions {
			actions = append(actions, &notifyv1.ResponseAction{Action: string(a), Rule: m.Rule, DryRun: m.DryRun || s.opts.RespondDryRun, UserStatus: m.UserStatus,
				SecurityEvent: securityEvent(a, m)})
		}
		s.tel.responded(ctx, m.Rule)
	}
	s.count.RespondMatches.Add(int64(len(matches)))
	codes := make([]string, 0, len(ra.GetSignals()))
	for _, sig := range ra.GetSignals() {
		codes = append(codes, sig.GetCode())
	}
	kind := notifyv1.Kind_KIND_RESPONSE_ACTION
	if alert {
		kind = notifyv1.Kind_KIND_SOC_ALERT
	}
	if len(actions) == 0 && !alert {
		return nil
	}
	attrs := map[string]string{
		"signals":    strings.Join(codes, ","),
		"score":      strconv.Itoa(int(ra.GetScore())),
		"rules":      strings.Join(rules, ","),
		"event_type": strings.TrimPrefix(e.GetType().String(), "EVENT_TYPE_"),
		"event_id":   e.GetEventId(),
		"change_id":  c.GetChangeId(),
	}
	if idp := e.GetSource().GetIdp(); idp != "" {
		attrs["source"] = idp
	}
	if raw := e.GetRawUserId(); raw != "" {
		attrs["raw_user_id"] = raw
	}
	req := &notifyv1.NotifyRequest{
		Kind: kind, IdempotencyKey: "respond:" + c.GetChangeId(), Tenant: c.GetTenant(), UserId: ra.GetUserId(),
		Title:   fmt.Sprintf("Pushback: %s (score %d)", strings.Join(rules, ", "), ra.GetScore()),
		Message: strings.Join(reasons, "; "), Attributes: attrs, Time: e.GetTime(), SessionId: e.GetSessionId(),
		ResponseActions: actions,
	}
	nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.opts.Notifier.Notify(nctx, req); err != nil {
		if status.Code(err) == grpccodes.InvalidArgument {
			// Notify will never take it: retrying would hold every later
			// change behind this one. Said loudly, and passed over.
			s.count.RespondFailures.Add(1)
			s.log.ErrorContext(ctx, "notify refuses a response; it is passed over", slog.String("change_id", c.GetChangeId()),
				slog.Any("rules", rules), slog.Any("error", err))
			return nil
		}
		return fmt.Errorf("queue the response to change %s: %w", c.GetChangeId(), err)
	}
	return nil
}

func (s *Service) loadCauses(ctx context.Context, tenant, user string) (map[string]int64, error) {
	b, err := s.opts.Store.Get(ctx, causesKey(tenant, user))
	if errors.Is(err, store.ErrNotFound) {
		return map[string]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the user's known causes: %w", err)
	}
	known := map[string]int64{}
	if json.Unmarshal(b, &known) != nil {
		return map[string]int64{}, nil
	}
	return known, nil
}

// saveCauses remembers the causes of this change (and forgets old ones).
func (s *Service) saveCauses(ctx context.Context, tenant, user string, known map[string]int64, causes []string) error {
	now := s.now()
	changed := false
	for _, c := range causes {
		if _, ok := known[c]; !ok {
			known[c] = now.UnixMilli()
			changed = true
		}
	}
	for c, at := range known {
		if now.Sub(time.UnixMilli(at)) > causeTTL {
			delete(known, c)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	b, err := json.Marshal(known)
	if err != nil {
		return err
	}
	return s.opts.Store.Update(ctx, func(tx store.Txn) error { return tx.Set(causesKey(tenant, user), b, causeTTL) })
}

func ruleNames(ms []policy.RespondMatch) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Rule
	}
	return out
}

func sameRules(a, b []policy.RespondMatch) bool { return slices.Equal(ruleNames(a), ruleNames(b)) }

// logRespondFailure logs a failed pass at most once a second.
func (s *Service) logRespondFailure(ctx context.Context, err error) {
	now := time.Now().UnixNano()
	if last := s.respondLogged.Load(); now-last < int64(time.Second) || !s.respondLogged.CompareAndSwap(last, now) {
		return
	}
	s.log.ErrorContext(ctx, "respond to risk changes; will retry", slog.Any("error", err))
}

// securityEvent is the CAEP event a signalling action sends, with the
// claims its rule gives; nil for the other actions.
func securityEvent(a respond.Action, m policy.RespondMatch) *notifyv1.SecurityEvent {
	switch {
	case a == respond.CAEPCredentialChange && m.CredentialChange != nil:
		return &notifyv1.SecurityEvent{Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_CREDENTIAL_CHANGE,
			CredentialType: m.CredentialChange.CredentialType, ChangeType: m.CredentialChange.ChangeType}
	case a == respond.CAEPRiskLevelChange && m.RiskLevelChange != nil:
		// The subject of Pushback's events is a user: the risk is the
		// user's.
		return &notifyv1.SecurityEvent{Type: notifyv1.SecurityEventType_SECURITY_EVENT_TYPE_RISK_LEVEL_CHANGE, Principal: "USER",
			CurrentLevel: m.RiskLevelChange.CurrentLevel, PreviousLevel: m.RiskLevelChange.PreviousLevel, RiskReason: m.RiskLevelChange.RiskReason}
	}
	return nil
}
