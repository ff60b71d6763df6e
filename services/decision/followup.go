package decision

import (
	"context"
	"sync"
)

// followUps runs the calls that follow a suppressed push (recording it with
// scoring, queueing the SOC alert) after Decide has answered: the caller,
// an IdP hook with a deadline of its own, never waits for them, not even
// when a peer hangs. At most slots run at once; beyond that up to backlog
// wait for a free slot, and past that a follow-up is dropped and counted
// (the attempt itself is already counted by the guard and stored). Once
// closed (shutdown), a follow-up runs in the caller's goroutine.
type followUps struct {
	mu      sync.Mutex
	closed  bool
	wg      sync.WaitGroup
	running int
	slots   int
	queue   []func()
	backlog int
	// dropped is called for each follow-up dropped.
	dropped func()
}

func newFollowUps(slots, backlog int, dropped func()) *followUps {
	return &followUps{slots: slots, backlog: backlog, dropped: dropped}
}

// run starts fn in the background, queues it when every slot is busy, or
// runs it now when the service is shutting down.
func (f *followUps) run(fn func()) {
	f.mu.Lock()
	switch {
	case f.closed:
		f.mu.Unlock()
		fn()
		return
	case f.running < f.slots:
		f.running++
		f.wg.Add(1)
		f.mu.Unlock()
		go f.work(fn)
		return
	case len(f.queue) < f.backlog:
		f.queue = append(f.queue, fn)
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	f.dropped()
}

// work runs fn, then what waits in the queue, then frees its slot.
func (f *followUps) work(fn func()) {
	defer f.wg.Done()
	for fn != nil {
		fn()
		f.mu.Lock()
		fn = nil
		if len(f.queue) > 0 {
			fn = f.queue[0]
			f.queue[0] = nil
			f.queue = f.queue[1:]
		} else {
			f.running--
		}
		f.mu.Unlock()
	}
}

// close makes later follow-ups run in their caller and waits, until ctx
// ends, for those in the background and in the queue.
func (f *followUps) close(ctx context.Context) error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
