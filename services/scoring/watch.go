package scoring

import (
	"sync"

	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
)

// hub fans risk changes out to WatchRisk subscribers. Each subscriber holds
// only the newest assessment (a one-slot mailbox), so publishing never
// blocks and never allocates per subscriber: a slow subscriber skips the
// intermediate states and its next message is the newest assessment marked
// resync. Every assessment is complete, so dropping the ones in between
// loses no state, only history.
type hub struct {
	mu    sync.Mutex
	byKey map[watchKey]map[*subscriber]struct{}
}

type watchKey struct{ tenant, user string }

type subscriber struct {
	key    watchKey
	notify chan struct{}
	mu     sync.Mutex
	latest *scoringv1.RiskAssessment
	missed int
}

func newHub() *hub {
	return &hub{byKey: map[watchKey]map[*subscriber]struct{}{}}
}

func (h *hub) subscribe(tenant, user string) *subscriber {
	k := watchKey{tenant, user}
	sub := &subscriber{key: k, notify: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byKey[k] == nil {
		h.byKey[k] = map[*subscriber]struct{}{}
	}
	h.byKey[k][sub] = struct{}{}
	return sub
}

func (h *hub) unsubscribe(sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.byKey[sub.key], sub)
	if len(h.byKey[sub.key]) == 0 {
		delete(h.byKey, sub.key)
	}
}

func (h *hub) publish(tenant, user string, ra *scoringv1.RiskAssessment) {
	h.mu.Lock()
	subs := h.byKey[watchKey{tenant, user}]
	if len(subs) == 0 {
		h.mu.Unlock()
		return
	}
	list := make([]*subscriber, 0, len(subs))
	for s := range subs {
		list = append(list, s)
	}
	h.mu.Unlock()
	c := clone(ra)
	for _, s := range list {
		s.mu.Lock()
		if s.latest != nil {
			s.missed++
		}
		s.latest = c
		s.mu.Unlock()
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}

// take returns the newest assessment and whether updates were skipped.
func (s *subscriber) take() (*scoringv1.RiskAssessment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ra, missed := s.latest, s.missed
	s.latest, s.missed = nil, 0
	return ra, missed > 0
}
