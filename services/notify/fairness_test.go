package notify_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/redistest"
	"github.com/pushbackhq/pushback/services/notify"
)

// sentAlert is one alert a recorder delivered.
type sentAlert struct {
	tenant, user string
	count        int32
	signals      string
}

// recorder is a SOC alert channel that records what it delivers, in
// order. The tests read the order, never the wall clock.
type recorder struct {
	mu   sync.Mutex
	sent []sentAlert
}

func (r *recorder) Name() string                 { return "soc" }
func (r *recorder) Accepts(k notifyv1.Kind) bool { return k == notifyv1.Kind_KIND_SOC_ALERT }
func (r *recorder) Deliver(_ context.Context, d *notifyv1.Delivery) error {
	n := d.GetNotification()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, sentAlert{tenant: n.GetTenant(), user: n.GetUserId(), count: d.GetIncident().GetCount(), signals: n.GetAttributes()["signals"]})
	return nil
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sent)
}

// since returns what was delivered from the n-th delivery on.
func (r *recorder) since(n int) []sentAlert {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sentAlert(nil), r.sent[n:]...)
}

// position is the 1-based place of the first alert for tenant/user in
// sent, or 0 when it is not there.
func position(sent []sentAlert, tenant, user string) int {
	for i, a := range sent {
		if a.tenant == tenant && a.user == user {
			return i + 1
		}
	}
	return 0
}

// sprayAlert is a denial of one user in a spray: one source pushing to
// many users of a tenant (scoring's PUSH_SPRAY).
func sprayAlert(key, tenant, user string, at time.Time) *notifyv1.NotifyRequest {
	req := alert(key, user, at, "PUSH_SPRAY")
	req.Tenant = tenant
	return req
}

// targetedAlert is a denial of one user under a burst aimed at them.
func targetedAlert(key, tenant, user string, at time.Time, signals ...string) *notifyv1.NotifyRequest {
	req := alert(key, user, at, append([]string{"DENIAL_STREAK"}, signals...)...)
	req.Tenant = tenant
	return req
}

// sprayUsers is the size of the flood: the issue saw a victim's alert
// queued for 6.5 minutes after about 300 incidents.
const sprayUsers = 300

// flood plays a spray against tenant "acme": every minute each of
// sprayUsers users is denied again (their incidents stay open and collect
// updates), and the worker runs every 2 s of clock, the production rate
// limit of a channel. It returns when minutes of clock have passed.
type flood struct {
	t      *testing.T
	s      *notify.Service
	clk    *clock
	rec    *recorder
	start  time.Time
	minute int
}

func newFlood(t *testing.T, st store.Store, opts notify.Options) *flood {
	f := &flood{t: t, clk: newClock(), rec: &recorder{}}
	f.start = f.clk.Now()
	opts.Channels = append(opts.Channels, f.rec)
	f.s = newService(t, st, f.clk, opts)
	return f
}

// deny denies every sprayed user once more.
func (f *flood) deny() {
	for i := range sprayUsers {
		notifyOK(f.t, f.s, sprayAlert(fmt.Sprintf("deny:%d:%d", f.minute, i), "acme", fmt.Sprint("user-", i), f.clk.Now()))
	}
	f.minute++
}

// run lets d of clock pass: the worker runs every 2 s, the spray goes on
// every minute while spraying.
func (f *flood) run(d time.Duration, spraying bool) {
	for end := f.clk.Now().Add(d); f.clk.Now().Before(end); {
		if spraying && f.clk.Now().Sub(f.start) >= time.Duration(f.minute)*time.Minute {
			f.deny()
		}
		deliverDue(f.t, f.s)
		f.clk.Advance(2 * time.Second)
	}
}

// until runs the worker every 2 s of clock, the spray going on while
// spraying, until done holds or limit of clock has passed.
func (f *flood) until(limit time.Duration, spraying bool, done func() bool) {
	for end := f.clk.Now().Add(limit); !done() && f.clk.Now().Before(end); {
		f.run(2*time.Second, spraying)
	}
}

// TestAlertFloodDoesNotDelayAVictimsFirstAlert plays the issue: a spray
// opens about 300 incidents in one tenant and keeps them busy for six and
// a half minutes; then a real victim's first alert is queued. It must be
// among the next few alerts delivered, whether the victim is in another
// tenant or in the sprayed one, on the production rate limit (30 a minute,
// burst 10).
func TestAlertFloodDoesNotDelayAVictimsFirstAlert(t *testing.T) {
	for _, tc := range []struct{ name, tenant string }{
		{"victim in another tenant", "globex"},
		{"victim in the sprayed tenant", "acme"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFlood(t, newStore(t), notify.Options{})
			f.run(6*time.Minute+30*time.Second, true)
			before := f.rec.len()
			notifyOK(t, f.s, targetedAlert("deny:victim", tc.tenant, "victim", f.clk.Now()))
			f.until(30*time.Minute, true, func() bool { return position(f.rec.since(before), tc.tenant, "victim") > 0 })
			pos := position(f.rec.since(before), tc.tenant, "victim")
			t.Logf("%d alerts delivered during the flood; the victim's first alert was delivery %d after it was queued", before, pos)
			if pos == 0 || pos > 3 {
				t.Fatalf("the victim's first alert was delivery %d after it was queued (0: not within 30 minutes), want within the first 3", pos)
			}
		})
	}
}

// TestAlertFloodOnRedisDoesNotDelayAVictimsFirstAlert plays the flood on
// the distributed store, whose ordered indexes differ from badger's.
func TestAlertFloodOnRedisDoesNotDelayAVictimsFirstAlert(t *testing.T) {
	srv := redistest.Start(t)
	st, err := store.OpenRedis(context.Background(), store.RedisOptions{Addrs: []string{srv.Addr}, Keyspaces: notify.Keyspaces()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	f := newFlood(t, st, notify.Options{})
	f.deny()
	f.run(2*time.Minute, false)
	before := f.rec.len()
	notifyOK(t, f.s, targetedAlert("deny:victim", "globex", "victim", f.clk.Now()))
	f.until(10*time.Minute, true, func() bool { return position(f.rec.since(before), "globex", "victim") > 0 })
	if pos := position(f.rec.since(before), "globex", "victim"); pos == 0 || pos > 3 {
		t.Fatalf("on Redis the victim's first alert was delivery %d after it was queued, want within the first 3", pos)
	}
}

// TestTenantFloodDoesNotStarveOtherTenants: one tenant floods a channel
// with 100 alerts, two others queue 10 each just after; the channel sends
// one alert per round. While all three have alerts waiting they take
// turns: no tenant is ever more than one alert ahead of another.
func TestTenantFloodDoesNotStarveOtherTenants(t *testing.T) {
	clk := newClock()
	rec := &recorder{}
	s := newService(t, newStore(t), clk, notify.Options{Channels: []notify.Channel{rec},
		RateLimits: map[string]notify.RateLimit{"soc": {Every: 2 * time.Second, Burst: 1}}})
	for i := range 100 {
		notifyOK(t, s, sprayAlert(fmt.Sprint("deny:acme:", i), "acme", fmt.Sprint("user-", i), clk.Now()))
	}
	clk.Advance(time.Second)
	for i := range 10 {
		notifyOK(t, s, targetedAlert(fmt.Sprint("deny:globex:", i), "globex", fmt.Sprint("user-", i), clk.Now()))
		notifyOK(t, s, sprayAlert(fmt.Sprint("deny:initech:", i), "initech", fmt.Sprint("user-", i), clk.Now()))
	}
	for range 200 {
		if rec.len() == 120 {
			break
		}
		deliverDue(t, s)
		clk.Advance(2 * time.Second)
	}
	sent := rec.since(0)
	if len(sent) != 120 {
		t.Fatalf("%d alerts delivered, want all 120", len(sent))
	}
	firstOf, lastOf := map[string]int{}, map[string]int{}
	for i, a := range sent {
		if firstOf[a.tenant] == 0 {
			firstOf[a.tenant] = i + 1
		}
		lastOf[a.tenant] = i + 1
	}
	t.Logf("globex's alerts were deliveries %d to %d, initech's %d to %d", firstOf["globex"], lastOf["globex"], firstOf["initech"], lastOf["initech"])
	count := map[string]int{}
	for i, a := range sent[:30] {
		count[a.tenant]++
		lo, hi := min(count["acme"], count["globex"], count["initech"]), max(count["acme"], count["globex"], count["initech"])
		if hi-lo > 1 {
			t.Fatalf("after %d deliveries the tenants had %v: one is more than one turn ahead", i+1, count)
		}
	}
	if count["globex"] != 10 || count["initech"] != 10 {
		t.Fatalf("first 30 deliveries %v, want globex's and initech's 10 each among them", count)
	}
}

// TestApprovalDuringASprayJumpsTheQueue: while a spray's alerts wait for
// the rate limit, one sprayed user approves a push (the fatigue attack
// succeeded). The denial is folded into that user's waiting alert, which
// becomes critical and goes out next, ahead of the spray.
func TestApprovalDuringASprayJumpsTheQueue(t *testing.T) {
	f := newFlood(t, newStore(t), notify.Options{})
	f.deny()
	f.run(time.Minute, false)
	delivered := map[string]bool{}
	for _, a := range f.rec.since(0) {
		delivered[a.user] = true
	}
	user := ""
	for i := sprayUsers - 1; i >= 0 && user == ""; i-- {
		if u := fmt.Sprint("user-", i); !delivered[u] {
			user = u
		}
	}
	before := f.rec.len()
	approval := sprayAlert("deny:approved", "acme", user, f.clk.Now())
	approval.Attributes["signals"] += ",APPROVAL_AFTER_BURST"
	if resp := notifyOK(t, f.s, approval); !resp.GetCoalesced() {
		t.Fatalf("the approval was not folded into %s's waiting alert: %v", user, resp)
	}
	f.until(10*time.Minute, false, func() bool { return position(f.rec.since(before), "acme", user) > 0 })
	sent := f.rec.since(before)
	pos := position(sent, "acme", user)
	t.Logf("%d spray alerts were waiting; %s's alert with the approval was delivery %d after it", sprayUsers-before, user, pos)
	if pos != 1 {
		t.Fatalf("%s's alert with the approval was delivery %d after the approval, want the next one", user, pos)
	}
	if got := sent[0]; got.count != 2 || !strings.Contains(got.signals, "APPROVAL_AFTER_BURST") {
		t.Fatalf("delivered %+v, want the folded alert (count 2) naming the approval", got)
	}
}

// TestFirstAlertGoesAheadOfUpdates: in one tenant, 50 incidents whose
// first alerts went out have updates waiting for the rate limit; a new
// incident's first alert, of the same severity, goes out before them.
func TestFirstAlertGoesAheadOfUpdates(t *testing.T) {
	clk := newClock()
	rec := &recorder{}
	s := newService(t, newStore(t), clk, notify.Options{Channels: []notify.Channel{rec},
		RateLimits: map[string]notify.RateLimit{"soc": {Every: time.Minute, Burst: 50}}})
	for i := range 50 {
		notifyOK(t, s, targetedAlert(fmt.Sprint("deny:1:", i), "acme", fmt.Sprint("user-", i), clk.Now()))
	}
	deliverDue(t, s)
	clk.Advance(time.Minute)
	for i := range 50 {
		notifyOK(t, s, targetedAlert(fmt.Sprint("deny:2:", i), "acme", fmt.Sprint("user-", i), clk.Now()))
	}
	clk.Advance(5 * time.Minute) // the updates are due; the bucket holds 6 tokens
	deliverDue(t, s)
	if got := rec.len(); got != 56 {
		t.Fatalf("%d alerts delivered, want 50 first alerts and 6 updates", got)
	}
	before := rec.len()
	notifyOK(t, s, targetedAlert("deny:victim", "acme", "victim", clk.Now()))
	for range 100 {
		if position(rec.since(before), "acme", "victim") > 0 {
			break
		}
		clk.Advance(time.Minute)
		deliverDue(t, s)
	}
	if pos := position(rec.since(before), "acme", "victim"); pos != 1 {
		t.Fatalf("the new incident's first alert was delivery %d after it was queued behind 44 waiting updates, want the next one", pos)
	}
}

// TestFloodUpdatesStillGoOut: after the flood and the victim, nothing is
// lost: every sprayed user's last alert carries the incident's full count,
// nothing is dead, and the outbox empties.
func TestFloodUpdatesStillGoOut(t *testing.T) {
	f := newFlood(t, newStore(t), notify.Options{})
	f.run(6*time.Minute+30*time.Second, true)
	notifyOK(t, f.s, targetedAlert("deny:victim", "globex", "victim", f.clk.Now()))
	for range 120 { // at most an hour of clock
		if len(list(t, f.s, notifyv1.Status_STATUS_PENDING)) == 0 {
			break
		}
		f.run(30*time.Second, false)
	}
	if p := list(t, f.s, notifyv1.Status_STATUS_PENDING); len(p) != 0 {
		t.Fatalf("%d deliveries still pending an hour after the flood", len(p))
	}
	if d := list(t, f.s, notifyv1.Status_STATUS_DEAD); len(d) != 0 {
		t.Fatalf("%d dead deliveries", len(d))
	}
	last := map[string]int32{}
	for _, a := range f.rec.since(0) {
		if a.count < last[a.tenant+"/"+a.user] {
			t.Fatalf("%s/%s: an alert with count %d went out after one with %d", a.tenant, a.user, a.count, last[a.tenant+"/"+a.user])
		}
		last[a.tenant+"/"+a.user] = a.count
	}
	for i := range sprayUsers {
		if got := last["acme/user-"+fmt.Sprint(i)]; got != int32(f.minute) {
			t.Fatalf("user-%d's last alert counts %d denials, want all %d", i, got, f.minute)
		}
	}
	if last["globex/victim"] != 1 {
		t.Fatalf("the victim's alert: %d", last["globex/victim"])
	}
}

// countingStore counts the transactions run on a store.
type countingStore struct {
	store.Store
	updates atomic.Int64
}

func (c *countingStore) Update(ctx context.Context, fn func(tx store.Txn) error) error {
	c.updates.Add(1)
	return c.Store.Update(ctx, fn)
}

// TestRateLimitedFloodDoesNotKeepTheWorkerBusy: with a spray's alerts
// waiting for the rate limit, a round of the worker writes to the store
// only for what it can send now, not for every waiting alert: it neither
// holds up the victim's alert behind the backlog nor loads the store.
func TestRateLimitedFloodDoesNotKeepTheWorkerBusy(t *testing.T) {
	st := &countingStore{Store: newStore(t)}
	f := newFlood(t, st, notify.Options{})
	f.deny()
	deliverDue(t, f.s) // the burst
	var most int64
	var slowest time.Duration
	for range 30 {
		f.clk.Advance(2 * time.Second)
		n, start := st.updates.Load(), time.Now()
		deliverDue(t, f.s)
		slowest = max(slowest, time.Since(start))
		most = max(most, st.updates.Load()-n)
	}
	t.Logf("with %d alerts waiting, a round ran at most %d store transactions and took at most %v", sprayUsers-f.rec.len(), most, slowest)
	// One token a round: its claim, its token and its record.
	if most > 4 {
		t.Fatalf("a round over a rate-limited backlog ran %d store transactions, want at most 4", most)
	}
}
