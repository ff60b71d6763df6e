package scoring

import (
	"context"
	"fmt"
	"github.com/pushbackhq/pushback/services/scoring/engine"
	"log/slog"
	"strings"
	"sync"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/ids"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/validate"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The risk-change feed: every assessment with a signal that an ingested
// event produced, written in the transaction that applied the event, so the
// feed holds exactly what the state does. Decision's response rules read it
// with ListRiskChanges; a reader that was away catches up from its cursor.
//
//	scoring/change/{id}   RiskChange, ids sort by time
const changePrefix = "scoring/change/"

// ChangeRetention is how long a change stays in the feed.
const ChangeRetention = 24 * time.Hour

// Limits of ListRiskChanges.
const (
	maxChangePage    = 1000
	defaultPageSize  = 100
	maxChangeWait    = 30 * time.Second
	changePollPeriod = time.Second
	// maxChangeScan bounds the changes one call reads past its filter.
	maxChangeScan = 20000
)

func changeKey(id string) []byte { return []byte(changePrefix + id) }

// feed wakes ListRiskChanges calls waiting for a change. A change written
// by another replica (a shared store) is seen at the next poll.
type feed struct {
	mu   sync.Mutex
	wake chan struct{}
	// stop is closed at shutdown: waiting readers answer at once, so that
	// a long wait does not hold up a graceful stop.
	stop     chan struct{}
	stopOnce sync.Once
	// ids keeps the changes of one batch in the order they happened.
	ids ids.Sequence
}

func newFeed() *feed { return &feed{wake: make(chan struct{}), stop: make(chan struct{})} }

// StopWaiting answers every ListRiskChanges call waiting for a change, now
// and from now on: called when the server begins to shut down.
func (s *Service) StopWaiting() { s.feed.stopOnce.Do(func() { close(s.feed.stop) }) }

func (f *feed) waiter() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wake
}

func (f *feed) kick() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.wake)
	f.wake = make(chan struct{})
}

// noteChange writes the change an event or attempt made to the feed,
// inside tx. event is called only when the change enters the feed (it has
// a signal), so an attempt without risk costs nothing.
func (s *Service) noteChange(tx store.Txn, tenant string, ra *scoringv1.RiskAssessment, origin scoringv1.Origin, event func() *eventv1.AuthEvent) error {
	if len(ra.GetSignals()) == 0 {
		return nil
	}
	e := event()
	if e == nil {
		return nil
	}
	if origin == scoringv1.Origin_ORIGIN_LOG && fromDecision(e) {
		origin = scoringv1.Origin_ORIGIN_DECIDE
	}
	id := s.feed.ids.Next(s.now())
	b, err := proto.Marshal(&scoringv1.RiskChange{ChangeId: id, Tenant: tenant, Assessment: ra, Event: e, Origin: origin})
	if err != nil {
		return err
	}
	return tx.Set(changeKey(id), b, ChangeRetention)
}

// attemptEvent is a Decide attempt as the feed shows it.
func attemptEvent(a *scoringv1.Attempt, user string, at time.Time) *eventv1.AuthEvent {
	return &eventv1.AuthEvent{EventId: "attempt:" + a.GetAttemptId(), Tenant: a.GetTenant(), UserId: user, Type: eventv1.EventType_EVENT_TYPE_PUSH_REQUESTED,
		Time: timestamppb.New(at), AppId: a.GetAppId(), Factor: a.GetFactor(), SessionId: a.GetSessionId(), Client: a.GetClient(),
		Source: &eventv1.Source{Idp: "pushback", RawEventType: "decision.attempt"}}
}

// fromDecision reports whether an event is the decision service's own
// record of a push it held back: decision already alerted on it, so the
// feed, which carries what the logs show, leaves it out.
func fromDecision(e *eventv1.AuthEvent) bool {
	return e.GetType() == eventv1.EventType_EVENT_TYPE_PUSH_SUPPRESSED && e.GetSource().GetIdp() == "pushback" &&
		strings.HasPrefix(e.GetSource().GetRawEventType(), "decision.")
}

// ListRiskChanges implements the RPC.
func (s *Service) ListRiskChanges(ctx context.Context, req *scoringv1.ListRiskChangesRequest) (*scoringv1.ListRiskChangesResponse, error) {
	var v apierr.Violations
	if a := req.GetAfter(); a != "" {
		if _, ok := ids.Time(a); !ok {
			v.Add("after", "is not a change id")
		}
	}
	size := int(req.GetPageSize())
	if size < 0 || size > maxChangePage {
		v.Add("page_size", "must be between 0 and 1000")
	}
	var wait time.Duration
	if w := req.GetMaxWait(); w != nil {
		if err := w.CheckValid(); err != nil || w.AsDuration() < 0 || w.AsDuration() > maxChangeWait {
			v.Add("max_wait", "must be between 0 and 30s")
		} else {
			wait = w.AsDuration()
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if size == 0 {
		size = defaultPageSize
	}
	var after []byte
	if a := req.GetAfter(); a != "" {
		after = changeKey(a)
	}
	keep := func(c *scoringv1.RiskChange) bool {
		return !req.GetLoggedOnly() || c.GetOrigin() == scoringv1.Origin_ORIGIN_LOG
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	resp := &scoringv1.ListRiskChangesResponse{}
	scanned := 0
	for {
		woken := s.feed.waiter()
		items, err := s.store.Scan(ctx, store.ScanOptions{Prefix: []byte(changePrefix), After: after, Limit: size})
		if err != nil {
			if ctx.Err() != nil {
				return nil, status.FromContextError(ctx.Err()).Err()
			}
			s.logFailure(ctx, "read risk changes", err)
			return nil, apierr.StoreUnavailable()
		}
		for _, it := range items {
			after = it.Key
			resp.LastChangeId = string(it.Key[len(changePrefix):])
			c := &scoringv1.RiskChange{}
			if err := proto.Unmarshal(it.Value, c); err != nil {
				s.log.ErrorContext(ctx, "skip unreadable risk change", slog.String("key", string(it.Key)), slog.Any("error", err))
				continue
			}
			if keep(c) {
				resp.Changes = append(resp.Changes, c)
				if len(resp.Changes) == size {
					return resp, nil
				}
			}
		}
		scanned += len(items)
		if len(items) == size {
			if scanned >= maxChangeScan {
				return resp, nil // the caller goes on from last_change_id
			}
			continue // more to read past what the filter left out
		}
		if len(resp.Changes) > 0 || wait == 0 {
			return resp, nil
		}
		poll := time.NewTimer(changePollPeriod)
		select {
		case <-woken:
		case <-poll.C:
		case <-deadline.C:
			poll.Stop()
			return resp, nil
		case <-s.feed.stop:
			poll.Stop()
			return resp, nil
		case <-ctx.Done():
			poll.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		poll.Stop()
	}
}

// maxWatchSignals caps the signal codes a tenant-wide watch filters on.
const maxWatchSignals = 16

// ValidateTenantWatch checks a tenant-wide WatchRisk request: an
// InvalidArgument naming the field, or nil.
func ValidateTenantWatch(req *scoringv1.WatchRiskRequest) error {
	var v apierr.Violations
	validate.ID(&v, "tenant", req.GetTenant(), false)
	if a := req.GetAfter(); a != "" {
		if _, ok := ids.Time(a); !ok {
			v.Add("after", "is not a change id")
		}
	}
	if m := req.GetMinScore(); m < 0 || m > 100 {
		v.Add("min_score", "must be between 0 and 100")
	}
	if len(req.GetSignals()) > maxWatchSignals {
		v.Add("signals", "more than %d signal codes", maxWatchSignals)
	}
	for i, c := range req.GetSignals() {
		if !knownSignal(c) {
			v.Add(fmt.Sprintf("signals[%d]", i), "%q is not a signal code", c)
		}
	}
	return v.Err()
}

// watchTenant streams every risk change of a tenant from the feed, after
// the consumer's cursor (from now on without one), filtered by score and
// signal codes. A consumer that reconnects with the change id it saw last
// misses nothing the feed still keeps (ChangeRetention); when its cursor is
// older than that, the first change it gets is marked resync. Any replica
// serves it: the feed is in the store.
func (s *Service) watchTenant(req *scoringv1.WatchRiskRequest, stream grpc.ServerStreamingServer[scoringv1.WatchRiskResponse]) error {
	if err := ValidateTenantWatch(req); err != nil {
		return err
	}
	cursorAt, _ := ids.Time(req.GetAfter())
	codes := map[string]bool{}
	for _, c := range req.GetSignals() {
		codes[c] = true
	}
	ctx := stream.Context()
	var after []byte
	switch {
	case req.GetAfter() != "":
		after = changeKey(req.GetAfter())
	default:
		// From now on: after the newest change there is.
		last, err := s.store.Scan(ctx, store.ScanOptions{Prefix: []byte(changePrefix), Limit: 1, Reverse: true})
		if err != nil {
			s.logFailure(ctx, "read risk changes", err)
			return apierr.StoreUnavailable()
		}
		if len(last) == 1 {
			after = last[0].Key
		}
	}
	resync := req.GetAfter() != "" && s.now().Sub(cursorAt) > ChangeRetention
	keep := func(c *scoringv1.RiskChange) bool {
		if c.GetTenant() != req.GetTenant() || c.GetAssessment().GetScore() < req.GetMinScore() {
			return false
		}
		if len(codes) == 0 {
			return true
		}
		for _, sig := range c.GetAssessment().GetSignals() {
			if codes[sig.GetCode()] {
				return true
			}
		}
		return false
	}
	const page = 256
	for {
		woken := s.feed.waiter()
		items, err := s.store.Scan(ctx, store.ScanOptions{Prefix: []byte(changePrefix), After: after, Limit: page})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.logFailure(ctx, "read risk changes", err)
			return apierr.StoreUnavailable()
		}
		for _, it := range items {
			after = it.Key
			c := &scoringv1.RiskChange{}
			if proto.Unmarshal(it.Value, c) != nil || !keep(c) {
				continue
			}
			if err := stream.Send(&scoringv1.WatchRiskResponse{Assessment: c.GetAssessment(), Resync: resync, ChangeId: c.GetChangeId(), Event: c.GetEvent()}); err != nil {
				return err
			}
			resync = false
		}
		if len(items) == page {
			continue
		}
		poll := time.NewTimer(changePollPeriod)
		select {
		case <-woken:
		case <-poll.C:
		case <-s.feed.stop:
			poll.Stop()
			return status.Error(grpccodes.Unavailable, "scoring is shutting down; reconnect with the last change id")
		case <-ctx.Done():
			poll.Stop()
			return nil
		}
		poll.Stop()
	}
}

// knownSignal reports whether code is a public signal code.
func knownSignal(code string) bool {
	switch code {
	case engine.SignalPushBurst, engine.SignalDenialStreak, engine.SignalFraudReported, engine.SignalApprovalAfterBurst, engine.SignalImpossibleTravel,
		engine.SignalResponseMismatch, engine.SignalNewDevice, engine.SignalNewCountry, engine.SignalNewASN, engine.SignalPushSpray, engine.SignalAnonymizer:
		return true
	}
	return false
}
