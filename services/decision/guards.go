package decision

import (
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	"google.golang.org/protobuf/proto"

	"github.com/pushbackhq/pushback/services/decision/guard"
)

// guards keeps every user's guard state in memory, so concurrent attempts
// for one user are ordered, and counted, in this process whatever the store
// and scoring do: an answer the store could not record still counts toward
// the next one. The store holds the same state for restarts and replicas;
// the two merge (see guard.State.Merge).
type guards struct {
	seed     maphash.Seed
	shards   [guardShards]guardShard
	perShard int
}

const guardShards = 64

type guardShard struct {
	mu sync.Mutex
	m  map[string]*guardEntry
}

// guardEntry is one user's state; mu orders that user's attempts.
type guardEntry struct {
	mu sync.Mutex
	st guard.State
	// answers are the answers given to the user's recent attempts that
	// carried an attempt id: a retry gets the same answer, whatever the
	// store does, and is never judged (or pushed) again.
	answers []answer
	// turn orders the user's store commits in this process: one at a
	// time, so that they do not conflict with each other.
	turn chan struct{}
	// pending counts the calls between judging and committing; an entry
	// with any is never evicted.
	pending int
	// synced is set once a commit has merged the state the store held for
	// the user into memory. With a store no other process writes, memory
	// then holds everything the store does, and later commits need not
	// read it back (see Service.commit).
	synced atomic.Bool
}

// answer is the answer given to one attempt, kept small: what makes a
// retry the same attempt, and the response encoded (a few hundred bytes).
type answer struct {
	id      guard.ID
	at      int64 // unix ms, Pushback's clock
	attempt attempt
	resp    []byte
}

func newAnswer(id guard.ID, at int64, req *decisionv1.DecideRequest, resp *decisionv1.DecideResponse) answer {
	b, _ := proto.Marshal(resp)
	return answer{id: id, at: at, attempt: attemptOf(req), resp: b}
}

// Limits of the remembered answers.
const (
	// maxAnswers per user.
	maxAnswers = 64
	// ReplayWindow is how long a retry of an attempt id gets the answer
	// given to it: longer than a push lives (Okta's expire after 5 minutes).
	// Past it the attempt id is refused: a new attempt needs a new id.
	ReplayWindow = 10 * time.Minute
)

// answerOf returns (a copy of) the answer given to attempt id within the
// replay window before now; its id is zero when there is none. e.mu held.
func (e *guardEntry) answerOf(id guard.ID, now int64) answer {
	for _, a := range e.answers {
		if a.id == id && a.at > now-ReplayWindow.Milliseconds() {
			return a
		}
	}
	return answer{}
}

// retried returns the answer given to p's attempt, when p names one this
// process answered within the replay window.
func (e *guardEntry) retried(p pending) (answer, bool) {
	if p.req.GetAttemptId() == "" {
		return answer{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.answerOf(p.in.AttemptID, p.in.Now)
	return a, a.id != (guard.ID{})
}

// committed ends a commit counted by Service.judge.
func (e *guardEntry) committed() {
	e.mu.Lock()
	e.pending--
	e.mu.Unlock()
}

// setAnswer replaces the answer to attempt id (and what makes a retry the
// same attempt, when req is set). e.mu held.
func (e *guardEntry) setAnswer(id guard.ID, req *decisionv1.DecideRequest, resp *decisionv1.DecideResponse) {
	for i := range e.answers {
		if e.answers[i].id == id {
			r := proto.CloneOf(resp)
			r.Replayed = false
			e.answers[i].resp, _ = proto.Marshal(r)
			if req != nil {
				e.answers[i].attempt = attemptOf(req)
			}
		}
	}
}

// remember keeps the answer given to an attempt, dropping the oldest and
// those past the replay window.
func (e *guardEntry) remember(a answer) {
	e.answers = slices.DeleteFunc(e.answers, func(x answer) bool { return x.at <= a.at-ReplayWindow.Milliseconds() })
	if len(e.answers) >= maxAnswers {
		e.answers = slices.Delete(e.answers, 0, len(e.answers)-maxAnswers+1)
	}
	e.answers = append(e.answers, a)
}

// weight is how much an entry holds at now: what eviction spares longest.
func (e *guardEntry) weight(now int64) int {
	if e.pending > 0 || e.st.Active(now) {
		return 1 << 30
	}
	return e.st.Count(now, guard.Horizon, false)
}

// newGuards keeps at most about maxUsers users (idle ones are dropped
// first, then the lightest; a shard full of entries in use grows past it).
func newGuards(maxUsers int) *guards {
	g := &guards{seed: maphash.MakeSeed(), perShard: max(maxUsers/guardShards, 1)}
	for i := range g.shards {
		g.shards[i].m = map[string]*guardEntry{}
	}
	return g
}

// entry returns the user's entry, making room when the shard is full.
func (g *guards) entry(key string, now int64) *guardEntry {
	sh := &g.shards[maphash.String(g.seed, key)%guardShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.m[key]; ok {
		return e
	}
	if len(sh.m) >= g.perShard {
		sh.evict(now)
	}
	e := &guardEntry{turn: make(chan struct{}, 1)}
	sh.m[key] = e
	return e
}

// evict drops idle entries among a sample of the shard, or else the
// lightest of the sample: never one in use, waiting for its commit, or in
// a cooldown. An attacker who floods fresh user ids to push a victim's
// entry out must first give every entry of the sample more attempts than
// the victim's, and a victim in a cooldown is never dropped.
func (sh *guardShard) evict(now int64) {
	dropped, seen := 0, 0
	lightest, least := "", 1<<30
	for k, e := range sh.m {
		if e.mu.TryLock() {
			w := e.weight(now)
			idle := w == 0 && e.st.Idle(now)
			e.mu.Unlock()
			if idle {
				delete(sh.m, k)
				dropped++
			} else if w < least {
				lightest, least = k, w
			}
		}
		if seen++; seen >= 64 {
			break
		}
	}
	if dropped == 0 && lightest != "" {
		delete(sh.m, lightest)
	}
}

// peek applies f to the user's state under its lock when this process
// holds one, and never makes an entry: a read (GetCooldown) must not push
// another user's state out of memory.
func (g *guards) peek(key string, f func(st *guard.State)) {
	sh := &g.shards[maphash.String(g.seed, key)%guardShards]
	sh.mu.Lock()
	e, ok := sh.m[key]
	sh.mu.Unlock()
	if !ok {
		return
	}
	e.mu.Lock()
	f(&e.st)
	e.mu.Unlock()
}

// update applies f to the user's state under its lock.
func (g *guards) update(key string, now int64, f func(st *guard.State)) {
	e := g.entry(key, now)
	e.mu.Lock()
	f(&e.st)
	e.mu.Unlock()
}
