package scoring

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/ids"
	"github.com/pushbackhq/pushback/pkg/store"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
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

// noteChange writes the change an event made to the feed, inside tx.
func (s *Service) noteChange(tx store.Txn, tenant string, ra *scoringv1.RiskAssessment, e *eventv1.AuthEvent) error {
	if e == nil || len(ra.GetSignals()) == 0 || fromDecision(e) {
		return nil
	}
	id := s.feed.ids.Next(s.now())
	b, err := proto.Marshal(&scoringv1.RiskChange{ChangeId: id, Tenant: tenant, Assessment: ra, Event: e})
	if err != nil {
		return err
	}
	return tx.Set(changeKey(id), b, ChangeRetention)
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
	opts := store.ScanOptions{Prefix: []byte(changePrefix), Limit: size}
	if a := req.GetAfter(); a != "" {
		opts.After = changeKey(a)
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		woken := s.feed.waiter()
		items, err := s.store.Scan(ctx, opts)
		if err != nil {
			if ctx.Err() != nil {
				return nil, status.FromContextError(ctx.Err()).Err()
			}
			s.logFailure(ctx, "read risk changes", err)
			return nil, apierr.StoreUnavailable()
		}
		resp := &scoringv1.ListRiskChangesResponse{}
		for _, it := range items {
			c := &scoringv1.RiskChange{}
			if err := proto.Unmarshal(it.Value, c); err != nil {
				s.log.ErrorContext(ctx, "skip unreadable risk change", slog.String("key", string(it.Key)), slog.Any("error", err))
				continue
			}
			resp.Changes = append(resp.Changes, c)
		}
		if len(items) > 0 || wait == 0 {
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
