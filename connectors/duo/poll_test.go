package duo_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/connectors/duo"
	"github.com/pushbackhq/pushback/connectors/duo/duotest"
	"github.com/pushbackhq/pushback/connectors/poll"
	"github.com/pushbackhq/pushback/connectors/respond"
	"github.com/pushbackhq/pushback/services/intake/formats"
)

// logSetup starts a fake and a LogSource whose clock is now.
func logSetup(t *testing.T, now time.Time) (*duotest.Server, *duo.Client, *duo.LogSource) {
	t.Helper()
	s, c := setup(t)
	src := c.LogSource()
	duo.SetLogClock(src, func() time.Time { return now })
	return s, c, src
}

// addLogs adds n records, one a second from start, txids prefix-0001...
func addLogs(s *duotest.Server, prefix string, start time.Time, n int) []string {
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s-%04d", prefix, i+1)
		s.AddAuthLog(duotest.AuthLog(id, "alice@example.com", start.Add(time.Duration(i)*time.Second)))
		ids = append(ids, id)
	}
	return ids
}

// txids parses a page body with intake's duo format and returns the event
// ids of the outcomes (a push's "#push" twin left out).
func txids(t *testing.T, body []byte) []string {
	t.Helper()
	if len(body) == 0 {
		return nil
	}
	b, err := formats.Parse(formats.Duo, body, formats.Options{Tenant: "t1"})
	if err != nil {
		t.Fatalf("intake's duo format refused the page: %v", err)
	}
	var ids []string
	for _, e := range b.Events {
		if !strings.HasSuffix(e.GetEventId(), "#push") {
			ids = append(ids, e.GetEventId())
		}
	}
	return ids
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func read(t *testing.T, src poll.Source, cursor string, since time.Time) poll.Page {
	t.Helper()
	p, err := src.Read(context.Background(), cursor, since)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return p
}

// drain reads until a page has More false and returns the txids read, the
// pages and the last cursor.
func drain(t *testing.T, src poll.Source, cursor string, since time.Time) ([]string, []poll.Page, string) {
	t.Helper()
	var ids []string
	var pages []poll.Page
	for range 50 {
		p := read(t, src, cursor, since)
		pages = append(pages, p)
		ids = append(ids, txids(t, p.Body)...)
		cursor = p.Cursor
		if !p.More {
			return ids, pages, cursor
		}
	}
	t.Fatal("the page set never ends")
	return nil, nil, ""
}

func TestLogSourceNames(t *testing.T) {
	_, c := setup(t)
	var src poll.Source = c.LogSource()
	if src.Name() != "duo" || src.Format() != "duo" {
		t.Fatalf("Name %q Format %q", src.Name(), src.Format())
	}
	if _, err := formats.ParseFormat(src.Format()); err != nil {
		t.Fatal(err)
	}
}

func TestLogFirstReadFromSince(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	s, _, src := logSetup(t, now)
	since := now.Add(-time.Hour)
	addLogs(s, "old", since.Add(-10*time.Minute), 3) // before since
	want := addLogs(s, "new", since.Add(time.Minute), 3)

	p := read(t, src, "", since)
	if got := txids(t, p.Body); !slices.Equal(got, want) {
		t.Fatalf("txids %v, want %v", got, want)
	}
	if p.More {
		t.Error("More on the only page")
	}
	if wantNewest := since.Add(time.Minute + 2*time.Second); !p.Newest.Equal(wantNewest) {
		t.Errorf("Newest %v, want %v", p.Newest, wantNewest)
	}
	reqs := s.AuthLogRequests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	q := reqs[0]
	for k, v := range map[string]string{"mintime": ms(since), "maxtime": ms(now.Add(-duo.LogDelay)), "limit": "1000", "sort": "ts:asc"} {
		if q.Get(k) != v {
			t.Errorf("%s=%q, want %q", k, q.Get(k), v)
		}
	}
	if q.Has("next_offset") {
		t.Errorf("next_offset sent on a first read: %q", q.Get("next_offset"))
	}
}

func TestLogPagingThroughThreePages(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	s, _, src := logSetup(t, now)
	since := now.Add(-3 * time.Hour)
	want := addLogs(s, "tx", since.Add(time.Minute), 2*duo.LogPageLimit+5)

	ids, pages, _ := drain(t, src, "", since)
	if len(pages) != 3 {
		t.Fatalf("%d pages, want 3", len(pages))
	}
	if !pages[0].More || !pages[1].More || pages[2].More {
		t.Errorf("More: %v %v %v, want true true false", pages[0].More, pages[1].More, pages[2].More)
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("read %d records, want %d in order", len(ids), len(want))
	}
	reqs := s.AuthLogRequests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests", len(reqs))
	}
	for i, q := range reqs {
		// A page set keeps its mintime and maxtime.
		if q.Get("mintime") != reqs[0].Get("mintime") || q.Get("maxtime") != reqs[0].Get("maxtime") {
			t.Errorf("request %d: mintime %s maxtime %s, want those of the first", i, q.Get("mintime"), q.Get("maxtime"))
		}
	}
	last := since.Add(time.Minute + (duo.LogPageLimit-1)*time.Second)
	if got, wantOff := reqs[1].Get("next_offset"), ms(last)+","+want[duo.LogPageLimit-1]; got != wantOff {
		t.Errorf("second request next_offset %q, want %q", got, wantOff)
	}
	if !pages[0].Newest.Equal(last) {
		t.Errorf("first page Newest %v, want %v", pages[0].Newest, last)
	}
}

func TestLogPageSetBoundaryNoneTwiceNoneSkipped(t *testing.T) {
	start := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	now := start.Add(30 * time.Minute)
	s, _, src := logSetup(t, now)
	first := addLogs(s, "a", start.Add(time.Minute), duo.LogPageLimit+1)
	// Late arrivals inside the first window after its newest record, and
	// one exactly at the newest record's millisecond plus one.
	newest := start.Add(time.Minute + duo.LogPageLimit*time.Second)
	ids, _, cursor := drain(t, src, "", start)
	if !slices.Equal(ids, first) {
		t.Fatalf("first set: %d records, want %d", len(ids), len(first))
	}
	s.AddAuthLog(duotest.AuthLog("b-edge", "alice@example.com", newest.Add(time.Millisecond)))
	later := addLogs(s, "c", newest.Add(time.Second), 3)
	// And records past the first maxtime, seen once the clock moves.
	now2 := now.Add(10 * time.Minute)
	duo.SetLogClock(src, func() time.Time { return now2 })
	after := addLogs(s, "d", now.Add(time.Minute), 2)

	ids2, _, _ := drain(t, src, cursor, start)
	want := append(append([]string{"b-edge"}, later...), after...)
	if !slices.Equal(ids2, want) {
		t.Fatalf("second set %v, want %v", ids2, want)
	}
	reqs := s.AuthLogRequests()
	q := reqs[len(reqs)-1]
	if q.Get("mintime") != ms(newest.Add(time.Millisecond)) {
		t.Errorf("mintime %s after the set, want newest+1ms %s", q.Get("mintime"), ms(newest.Add(time.Millisecond)))
	}
	if q.Has("next_offset") {
		t.Error("a new page set sent next_offset")
	}
}

// A server may give a full last page a next_offset; the empty page that
// follows ends the set, and the next set still starts after the newest
// record of the full page.
func TestLogEmptyLastPageOfASet(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	s, _, src := logSetup(t, now)
	s.OffsetOnFullPage(true)
	start := now.Add(-time.Hour)
	want := addLogs(s, "f", start, duo.LogPageLimit)
	ids, pages, cursor := drain(t, src, "", start)
	if len(pages) != 2 || len(txids(t, pages[1].Body)) != 0 || !pages[1].Newest.IsZero() {
		t.Fatalf("%d pages, want a full one and an empty one", len(pages))
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("read %d, want %d", len(ids), len(want))
	}
	read(t, src, cursor, start)
	reqs := s.AuthLogRequests()
	newest := start.Add((duo.LogPageLimit - 1) * time.Second)
	if got := reqs[len(reqs)-1].Get("mintime"); got != ms(newest.Add(time.Millisecond)) {
		t.Errorf("next set mintime %s, want %s", got, ms(newest.Add(time.Millisecond)))
	}
}

func TestLogSinceBeforeRetention(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	s, _, src := logSetup(t, now)
	read(t, src, "", time.Time{})
	want := now.Add(-duo.LogRetention + time.Hour)
	if got := s.AuthLogRequests()[0].Get("mintime"); got != ms(want) {
		t.Errorf("mintime %s, want %s (within Duo's retention)", got, ms(want))
	}
}

func TestLogEmptyWindowKeepsMintime(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	s, _, src := logSetup(t, now)
	since := now.Add(-time.Hour)
	p := read(t, src, "", since)
	if p.More || len(txids(t, p.Body)) != 0 || !p.Newest.IsZero() {
		t.Fatalf("empty log: More %v Newest %v", p.More, p.Newest)
	}
	id := addLogs(s, "x", since.Add(time.Second), 1)
	p = read(t, src, p.Cursor, since)
	if got := txids(t, p.Body); !slices.Equal(got, id) {
		t.Fatalf("got %v, want %v", got, id)
	}
}

func TestLogMaxtimeNeverPastDelay(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	s, _, src := logSetup(t, now)
	addLogs(s, "ok", now.Add(-5*time.Minute), 2)
	tooNew := addLogs(s, "new", now.Add(-time.Minute), 1) // still within Duo's delay
	ids, _, cursor := drain(t, src, "", now.Add(-10*time.Minute))
	if slices.Contains(ids, tooNew[0]) {
		t.Error("read a record younger than the delay")
	}
	for i, q := range s.AuthLogRequests() {
		mx, _ := strconv.ParseInt(q.Get("maxtime"), 10, 64)
		if mx > now.Add(-duo.LogDelay).UnixMilli() {
			t.Errorf("request %d: maxtime %d is after now-%s", i, mx, duo.LogDelay)
		}
	}

	// A since within the delay asks nothing: Duo refuses mintime >= maxtime.
	_, _, src2 := logSetup(t, now)
	p := read(t, src2, "", now.Add(-30*time.Second))
	if p.More || p.Body != nil || p.Cursor == "" {
		t.Fatalf("page %+v", p)
	}

	// Once the clock passes the delay the younger record is read.
	duo.SetLogClock(src, func() time.Time { return now.Add(3 * time.Minute) })
	ids, _, _ = drain(t, src, cursor, time.Time{})
	if !slices.Equal(ids, tooNew) {
		t.Fatalf("later read %v, want %v", ids, tooNew)
	}
}

func TestLogRestartMidPageSet(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	s, _, src := logSetup(t, now)
	since := now.Add(-2 * time.Hour)
	want := addLogs(s, "r", since.Add(time.Second), 2*duo.LogPageLimit+10)

	p1 := read(t, src, "", since)
	if !p1.More {
		t.Fatal("first page has no More")
	}
	stored := p1.Cursor

	// A new process: a new client and source, the stored cursor, a clock
	// that moved on (the page set's maxtime must not move).
	c2, err := duo.New(config(s))
	if err != nil {
		t.Fatal(err)
	}
	src2 := c2.LogSource()
	duo.SetLogClock(src2, func() time.Time { return now.Add(7 * time.Minute) })
	ids, _, _ := drain(t, src2, stored, time.Time{})
	got := append(txids(t, p1.Body), ids...)
	if !slices.Equal(got, want) {
		t.Fatalf("read %d records across the restart, want %d in order", len(got), len(want))
	}
	reqs := s.AuthLogRequests()
	if reqs[1].Get("next_offset") != ms(since.Add(duo.LogPageLimit*time.Second))+","+want[duo.LogPageLimit-1] {
		t.Errorf("after restart next_offset %q", reqs[1].Get("next_offset"))
	}
	if reqs[1].Get("maxtime") != reqs[0].Get("maxtime") || reqs[1].Get("mintime") != reqs[0].Get("mintime") {
		t.Errorf("after restart mintime/maxtime %s/%s, want %s/%s", reqs[1].Get("mintime"), reqs[1].Get("maxtime"), reqs[0].Get("mintime"), reqs[0].Get("maxtime"))
	}
}

// Real records run to a few KiB: a full page of them is past the 1 MiB
// bound of the user calls and, as one line, past the longest line intake's
// reader takes; the page still parses, every record in it.
func TestLogFullPageOverOneMiB(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	s, _, src := logSetup(t, now)
	start := now.Add(-time.Hour)
	for i := range duo.LogPageLimit {
		r := duotest.AuthLog(fmt.Sprintf("big-%04d", i), "alice@example.com", start.Add(time.Duration(i)*time.Millisecond))
		r["user"].(map[string]any)["groups"] = []any{strings.Repeat("g", 1500)}
		s.AddAuthLog(r)
	}
	p := read(t, src, "", start)
	if len(p.Body) <= 1<<20 {
		t.Fatalf("the page is %d bytes, want over 1 MiB", len(p.Body))
	}
	if n := len(txids(t, p.Body)); n != duo.LogPageLimit {
		t.Fatalf("%d records", n)
	}
	if p.More || !p.Newest.Equal(start.Add((duo.LogPageLimit-1)*time.Millisecond)) {
		t.Errorf("More %v Newest %v", p.More, p.Newest)
	}
}

func TestLogBodyLineBoundIsIntakes(t *testing.T) {
	if duo.MaxBodyLine != formats.MaxRecordBytes {
		t.Fatalf("the connector indents past %d bytes, intake reads lines up to %d", duo.MaxBodyLine, formats.MaxRecordBytes)
	}
}

func TestLogRateLimited(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{{"17", 17 * time.Second}, {"", duo.DefaultRateLimitWait}} {
		s, _, src := logSetup(t, now)
		addLogs(s, "x", now.Add(-time.Hour), 1)
		s.RateLimit(1, tc.header)
		_, err := src.Read(context.Background(), "", now.Add(-2*time.Hour))
		var ra *respond.RetryAfter
		if !errors.As(err, &ra) || ra.Wait != tc.want {
			t.Fatalf("Retry-After %q: %v, want RetryAfter %s", tc.header, err, tc.want)
		}
		if respond.IsPermanent(err) {
			t.Error("429 is permanent")
		}
		// The retry succeeds from the same place.
		if got := txids(t, read(t, src, "", now.Add(-2*time.Hour)).Body); len(got) != 1 {
			t.Errorf("after the limit: %v", got)
		}
	}
}

func TestLogServerErrorIsRetried(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	s, _, src := logSetup(t, now)
	s.FailNext(1, 503, "")
	_, err := src.Read(context.Background(), "", now.Add(-time.Hour))
	if err == nil || respond.IsPermanent(err) {
		t.Fatalf("%v, want a retryable error", err)
	}
}

func TestLogBadSignatureIsPermanent(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	s := duotest.New()
	t.Cleanup(s.Close)
	cfg := config(s)
	cfg.SKey = strings.ToUpper(cfg.SKey) + "x"
	c, err := duo.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	src := c.LogSource()
	duo.SetLogClock(src, func() time.Time { return now })
	_, err = src.Read(context.Background(), "", now.Add(-time.Hour))
	if !respond.IsPermanent(err) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("%v, want a permanent 401", err)
	}
	if strings.Contains(err.Error(), cfg.SKey) {
		t.Error("the error shows the secret key")
	}

	// No read-log permission: 403, permanent too.
	s2, _, src2 := logSetup(t, now)
	s2.SetLogPermission(false)
	if _, err := src2.Read(context.Background(), "", now.Add(-time.Hour)); !respond.IsPermanent(err) || !strings.Contains(err.Error(), "403") {
		t.Fatalf("%v, want a permanent 403", err)
	}
}

func TestLogCursorHoldsNoSecret(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	s, _, src := logSetup(t, now)
	addLogs(s, "tx", now.Add(-time.Hour), duo.LogPageLimit+1)
	for _, p := range []poll.Page{read(t, src, "", now.Add(-2*time.Hour))} {
		dec, err := base64.RawURLEncoding.DecodeString(p.Cursor)
		if err != nil {
			t.Fatalf("cursor %q is not base64url: %v", p.Cursor, err)
		}
		for _, secret := range []string{s.SKey, s.IKey, s.Host, "skey", "ikey"} {
			if strings.Contains(p.Cursor, secret) || strings.Contains(string(dec), secret) {
				t.Errorf("cursor %s holds %q", dec, secret)
			}
		}
		if !strings.Contains(string(dec), "tx-1000") {
			t.Errorf("cursor %s does not hold the next_offset txid", dec)
		}
	}
}

func TestLogBadCursorIsPermanent(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	s, _, src := logSetup(t, now)
	for _, cur := range []string{"%%%", base64.RawURLEncoding.EncodeToString([]byte(`{"min":0}`)), base64.RawURLEncoding.EncodeToString([]byte(`{"min":5,"max":9,"off":["x","y"]}`))} {
		if _, err := src.Read(context.Background(), cur, now.Add(-time.Hour)); !respond.IsPermanent(err) {
			t.Errorf("cursor %q: %v, want permanent", cur, err)
		}
	}
	if n := len(s.AuthLogRequests()); n != 0 {
		t.Errorf("%d requests for bad cursors", n)
	}
}

func TestLogBodyParsesWithIntakeDuoFormat(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	s, _, src := logSetup(t, now)
	at := now.Add(-time.Hour)
	deny := duotest.AuthLog("tx-deny", "alice@example.com", at)
	fraud := duotest.AuthLog("tx-fraud", "alice@example.com", at.Add(time.Second))
	fraud["result"], fraud["reason"] = "fraud", "user_marked_fraud"
	admin := duotest.AuthLog("tx-admin", "alice@example.com", at.Add(2*time.Second))
	admin["event_type"] = "administrator_login"
	for _, r := range []map[string]any{deny, fraud, admin} {
		s.AddAuthLog(r)
	}
	p := read(t, src, "", at.Add(-time.Minute))
	b, err := formats.Parse(formats.Duo, p.Body, formats.Options{Tenant: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range b.Events {
		ids = append(ids, e.GetEventId())
		if e.GetUserId() != "alice@example.com" || e.GetTenant() != "t1" {
			t.Errorf("event %s: user %q tenant %q", e.GetEventId(), e.GetUserId(), e.GetTenant())
		}
	}
	want := []string{"tx-deny#push", "tx-deny", "tx-fraud#push", "tx-fraud"}
	if !slices.Equal(ids, want) {
		t.Fatalf("event ids %v, want %v", ids, want)
	}
	if b.Skipped["administrator_login"] != 1 {
		t.Errorf("skipped %v, want the administrator_login counted", b.Skipped)
	}
}

func TestLogRequestIsSigned(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	s, _, src := logSetup(t, now)
	read(t, src, "", now.Add(-time.Hour))
	reqs := s.Requests()
	if len(reqs) != 1 || reqs[0].Method != "GET" || reqs[0].Path != duotest.AuthLogsPath || reqs[0].Status != 200 {
		t.Fatalf("requests %+v", reqs)
	}
	if _, err := url.ParseQuery(reqs[0].Query); err != nil {
		t.Fatal(err)
	}
}
