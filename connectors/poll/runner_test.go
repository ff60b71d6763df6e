package poll_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/connectors/poll"
	"github.com/pushbackhq/pushback/connectors/respond"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/redistest"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
)

// read is one call of Read.
type read struct {
	cursor string
	since  time.Time
	at     time.Time
}

// fakeSource serves pages "p1", "p2", ...: page n carries event "e<n>" and
// the cursor "c<n>"; a read after cursor "c<n>" serves page n+1. Errors
// queued with fail are returned first.
type fakeSource struct {
	mu    sync.Mutex
	reads []read
	errs  []error
	last  int
}

func (f *fakeSource) Name() string   { return "fake" }
func (f *fakeSource) Format() string { return "fakefmt" }
func (f *fakeSource) Read(_ context.Context, cursor string, since time.Time) (poll.Page, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, read{cursor: cursor, since: since, at: time.Now()})
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return poll.Page{}, err
	}
	n := 1
	if cursor != "" {
		fmt.Sscanf(cursor, "c%d", &n)
		n++
	}
	if n > f.last {
		// Caught up: an empty page keeps the cursor.
		return poll.Page{Cursor: cursor}, nil
	}
	return poll.Page{Body: []byte(fmt.Sprintf("e%d", n)), Cursor: fmt.Sprintf("c%d", n), More: n < f.last, Newest: time.Now().Add(-time.Minute)}, nil
}

func (f *fakeSource) Reads() []read {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]read(nil), f.reads...)
}

func parse(format string, body []byte) ([]*eventv1.AuthEvent, error) {
	if format != "fakefmt" {
		return nil, fmt.Errorf("format %q", format)
	}
	var out []*eventv1.AuthEvent
	for _, id := range strings.Fields(string(body)) {
		out = append(out, &eventv1.AuthEvent{EventId: id})
	}
	return out, nil
}

// sink is a Save that can be made to fail.
type sink struct {
	mu   sync.Mutex
	ids  []string
	fail int
}

func (s *sink) Save(_ context.Context, evs []*eventv1.AuthEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		return errors.New("store unavailable")
	}
	for _, e := range evs {
		s.ids = append(s.ids, e.GetEventId())
	}
	return nil
}

func (s *sink) IDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...)
}

func newRunner(t *testing.T, st store.Store, src poll.Source, sk *sink, owner string) *poll.Runner {
	t.Helper()
	r, err := poll.New(poll.Options{Source: src, Store: st, Parse: parse, Save: sk.Save, Owner: owner, LeaseTTL: 3 * time.Second,
		Config: poll.Config{Interval: time.Second, Backfill: time.Hour}, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// start runs r until the returned stop is called.
func start(r *poll.Runner) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	return func() { cancel(); <-done }
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func cursorOf(t *testing.T, st store.Store) string {
	t.Helper()
	v, err := st.Get(context.Background(), []byte(poll.CursorPrefix+"fake"))
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

func TestRunnerStoreFailureDoesNotAdvanceCursor(t *testing.T) {
	st := storetest.Memory(t, poll.Keyspaces()...)
	src := &fakeSource{last: 3}
	sk := &sink{fail: 2}
	stop := start(newRunner(t, st, src, sk, "a"))
	defer stop()
	waitFor(t, "three pages stored", func() bool { return cursorOf(t, st) == "c3" })
	stop()
	if got := strings.Join(sk.IDs(), ","); got != "e1,e2,e3" {
		t.Fatalf("stored %s, want e1,e2,e3", got)
	}
	reads := src.Reads()
	// The two failed stores re-read the first page from no cursor.
	for i := 0; i < 3; i++ {
		if reads[i].cursor != "" {
			t.Fatalf("read %d after a failed store used cursor %q, want none", i, reads[i].cursor)
		}
	}
	if since := time.Since(reads[0].since); since < time.Hour-time.Minute || since > time.Hour+time.Minute {
		t.Fatalf("first read since %v ago, want the 1h backfill", since)
	}
	if reads[3].cursor != "c1" || reads[4].cursor != "c2" {
		t.Fatalf("reads after success: %+v", reads[3:])
	}
}

func TestRunnerResumesFromStoredCursor(t *testing.T) {
	st := storetest.Memory(t, poll.Keyspaces()...)
	src := &fakeSource{last: 2}
	sk := &sink{}
	stop := start(newRunner(t, st, src, sk, "a"))
	waitFor(t, "two pages", func() bool { return cursorOf(t, st) == "c2" })
	stop()

	src2 := &fakeSource{last: 3}
	stop = start(newRunner(t, st, src2, sk, "b"))
	defer stop()
	waitFor(t, "a read", func() bool { return len(src2.Reads()) > 0 })
	if c := src2.Reads()[0].cursor; c != "c2" {
		t.Fatalf("first read after restart used cursor %q, want c2", c)
	}
	waitFor(t, "page 3", func() bool { return cursorOf(t, st) == "c3" })
}

func TestRunnerHonoursRetryAfter(t *testing.T) {
	st := storetest.Memory(t, poll.Keyspaces()...)
	src := &fakeSource{last: 1, errs: []error{&respond.RetryAfter{Wait: 400 * time.Millisecond, Err: errors.New("HTTP 429")}}}
	sk := &sink{}
	stop := start(newRunner(t, st, src, sk, "a"))
	defer stop()
	waitFor(t, "page 1", func() bool { return cursorOf(t, st) == "c1" })
	reads := src.Reads()
	if gap := reads[1].at.Sub(reads[0].at); gap < 400*time.Millisecond {
		t.Fatalf("read again %v after a 400ms Retry-After", gap)
	}
}

func TestRunnerBacksOffOnErrors(t *testing.T) {
	st := storetest.Memory(t, poll.Keyspaces()...)
	src := &fakeSource{last: 1, errs: []error{errors.New("boom"), errors.New("boom"), errors.New("boom")}}
	sk := &sink{}
	stop := start(newRunner(t, st, src, sk, "a"))
	defer stop()
	waitFor(t, "page 1", func() bool { return cursorOf(t, st) == "c1" })
	reads := src.Reads()
	// 20ms, 40ms, 80ms.
	if g1, g3 := reads[1].at.Sub(reads[0].at), reads[3].at.Sub(reads[2].at); g1 < 20*time.Millisecond || g3 < 80*time.Millisecond {
		t.Fatalf("backoff gaps %v and %v, want at least 20ms and 80ms", g1, g3)
	}
}

func TestRunnerLeaseOnlyOnePolls(t *testing.T) {
	st := storetest.Memory(t, poll.Keyspaces()...)
	srcA, srcB := &fakeSource{last: 50}, &fakeSource{last: 50}
	sk := &sink{}
	stopA := start(newRunner(t, st, srcA, sk, "a"))
	waitFor(t, "a polls", func() bool { return len(srcA.Reads()) > 0 })
	stopB := start(newRunner(t, st, srcB, sk, "b"))
	time.Sleep(300 * time.Millisecond)
	if n := len(srcB.Reads()); n != 0 {
		t.Fatalf("the second runner read %d pages while the first held the lease", n)
	}
	// The holder stops and releases the lease: the other takes over from
	// the stored cursor.
	stopA()
	want := cursorOf(t, st)
	defer stopB()
	waitFor(t, "b polls", func() bool { return len(srcB.Reads()) > 0 })
	if c := srcB.Reads()[0].cursor; c == "" || c != want {
		t.Fatalf("b started at %q, want the stored cursor", c)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := poll.DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	err := poll.Config{Interval: time.Millisecond, Backfill: -time.Second}.Validate()
	if err == nil || !strings.Contains(err.Error(), "poll-interval") || !strings.Contains(err.Error(), "poll-backfill") {
		t.Fatalf("Validate = %v", err)
	}
}

// TestRunnerLeaseOnRedis: two intake replicas on one Redis poll a source
// once.
func TestRunnerLeaseOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	open := func() store.Store {
		st, err := store.OpenRedis(context.Background(), store.RedisOptions{Addrs: []string{srv.Addr}, Keyspaces: poll.Keyspaces()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	stA, stB := open(), open()
	srcA, srcB := &fakeSource{last: 3}, &fakeSource{last: 3}
	sk := &sink{}
	stopA := start(newRunner(t, stA, srcA, sk, "a"))
	defer stopA()
	waitFor(t, "a polls", func() bool { return cursorOf(t, stA) == "c3" })
	stopB := start(newRunner(t, stB, srcB, sk, "b"))
	defer stopB()
	time.Sleep(1200 * time.Millisecond)
	if n := len(srcB.Reads()); n != 0 {
		t.Fatalf("the second replica read %d pages while the first held the lease", n)
	}
	if got := strings.Join(sk.IDs(), ","); got != "e1,e2,e3" {
		t.Fatalf("stored %s, want each page once", got)
	}
}
