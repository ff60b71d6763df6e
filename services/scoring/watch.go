package scoring

import (
	"sync"

	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
)

// hub fans risk changes out to WatchRisk subscribers. Each subscriber holds
// only the newest assessment (a one-slot mailbox), so publishing never
// blocks: a slow subscriber skips intermediate states and is told to resync.
type hub struct {
	mu     sync.Mutex
	byUser map[string]map[*subscriber]struct{}
	limit  int
}

type subscriber struct {
	user   string
	notify chan struct{}
	mu     sync.Mutex
	latest *scoringv1.RiskAssessment
	missed int
	limit  int
}

func newHub(limit int) *hub {
	return &hub{byUser: map[string]map[*subscriber]struct{}{}, limit: limit}
}

func (h *hub) subscribe(user string) *subscriber {
	sub := &subscriber{user: user, notify: make(chan struct{}, 1), limit: h.limit}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byUser[user] == nil {
		h.byUser[user] = map[*subscriber]struct{}{}
	}
	h.byUser[user][sub] = struct{}{}
	return sub
}

func (h *hub) unsubscribe(sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.byUser[sub.user], sub)
	if len(h.byUser[sub.user]) == 0 {
		delete(h.byUser, sub.user)
	}
}

func (h *hub) publish(user string, ra *scoringv1.RiskAssessment) {
	h.mu.Lock()
	subs := h.byUser[user]
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
