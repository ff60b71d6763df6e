package decision

import (
	"context"
	"sync"
)

// followUps runs the calls that follow a suppressed push (recording it with
// scoring, queueing the SOC alert) after Decide has answered: the caller,
// an IdP hook with a deadline of its own, never waits for them. At most
// slots run at once; beyond that, and once closed, a follow-up runs in the
// caller's goroutine instead, so none is dropped.
type followUps struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
	slots  chan struct{}
}

func newFollowUps(slots int) *followUps {
	return &followUps{slots: make(chan struct{}, slots)}
}

// run starts fn in the background, or runs it now when no slot is free or
// the service is shutting down.
func (f *followUps) run(fn func()) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		fn()
		return
	}
	select {
	case f.slots <- struct{}{}:
	default:
		f.mu.Unlock()
		fn()
		return
	}
	f.wg.Add(1)
	f.mu.Unlock()
	go func() {
		defer func() { <-f.slots; f.wg.Done() }()
		fn()
	}()
}

// close makes later follow-ups run in their caller and waits, until ctx
// ends, for those in the background.
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
