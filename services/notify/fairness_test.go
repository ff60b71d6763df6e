package notify_test

import (
	"context"
	"fmt"
	"sync"
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

// until runs the worker every 2 s of clock, the spray going on, until
// done holds or limit of clock has passed.
func (f *flood) until(limit time.Duration, done func() bool) {
	for end := f.clk.Now().Add(limit); !done() && f.clk.Now().Before(end); {
		f.run(2*time.Second, true)
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
			f.until(30*time.Minute, func() bool { return position(f.rec.since(before), tc.tenant, "victim") > 0 })
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
	st, err := store.OpenRedis(context.Background(), store.RedisOptions{Addrs: []string{srv.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	f := newFlood(t, st, notify.Options{})
	f.deny()
	f.run(2*time.Minute, false)
	before := f.rec.len()
	notifyOK(t, f.s, targetedAlert("deny:victim", "globex", "victim", f.clk.Now()))
	f.until(10*time.Minute, func() bool { return position(f.rec.since(before), "globex", "victim") > 0 })
	if pos := position(f.rec.since(before), "globex", "victim"); pos == 0 || pos > 3 {
		t.Fatalf("on Redis the victim's first alert was delivery %d after it was queued, want within the first 3", pos)
	}
}
