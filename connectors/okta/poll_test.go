package okta_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/connectors/respond"
)

func logEvent(id string, at time.Time) []byte {
	b, _ := json.Marshal(map[string]any{"uuid": id, "published": at.UTC().Format(time.RFC3339Nano), "eventType": "user.session.start"})
	return b
}

func ids(t *testing.T, body []byte) []string {
	t.Helper()
	var evs []struct {
		UUID string `json:"uuid"`
	}
	if err := json.Unmarshal(body, &evs); err != nil {
		t.Fatalf("page %s: %v", body, err)
	}
	out := []string{}
	for _, e := range evs {
		out = append(out, e.UUID)
	}
	return out
}

func TestLogSourcePollsWithSinceThenFollowsNext(t *testing.T) {
	org, c := fake(t)
	now := time.Now()
	org.AddLogEvent(logEvent("old", now.Add(-2*time.Hour)))
	org.AddLogEvent(logEvent("e1", now.Add(-30*time.Minute)))
	org.AddLogEvent(logEvent("e2", now.Add(-20*time.Minute)))
	src := c.LogSource()
	ctx := context.Background()
	p, err := src.Read(ctx, "", now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ids(t, p.Body), ","); got != "e1,e2" {
		t.Fatalf("first page %s, want e1,e2", got)
	}
	if p.More || p.Newest.Unix() != now.Add(-20*time.Minute).Unix() {
		t.Fatalf("page More %v Newest %v", p.More, p.Newest)
	}
	first := org.Requests()[0]
	q, _ := url.ParseQuery(first.RawQuery)
	if first.Path != "/api/v1/logs" || q.Get("sortOrder") != "ASCENDING" || q.Get("limit") != "1000" || q.Get("since") == "" || first.Authorization != "SSWS "+org.Token {
		t.Fatalf("first request %+v", first)
	}
	if !strings.HasPrefix(p.Cursor, org.URL()+"/api/v1/logs?") || !strings.Contains(p.Cursor, "after=") {
		t.Fatalf("cursor %q is not the next link", p.Cursor)
	}

	// Caught up: an empty page keeps a next link to poll again.
	p2, err := src.Read(ctx, p.Cursor, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(t, p2.Body); len(got) != 0 || p2.Cursor == "" || !p2.Newest.IsZero() {
		t.Fatalf("empty page %v cursor %q newest %v", got, p2.Cursor, p2.Newest)
	}
	org.AddLogEvent(logEvent("e3", now))
	p3, err := src.Read(ctx, p2.Cursor, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ids(t, p3.Body), ","); got != "e3" {
		t.Fatalf("after the empty page %s, want e3", got)
	}
	reqs := org.Requests()
	if last := reqs[len(reqs)-1]; strings.Contains(last.RawQuery, "since=") {
		t.Fatalf("the cursor read asked with since: %+v", last)
	}
}

func TestLogSourceFullPageHasMore(t *testing.T) {
	org, c := fake(t)
	now := time.Now()
	for i := range 1001 {
		org.AddLogEvent(logEvent(fmt.Sprintf("e%d", i), now.Add(-time.Minute)))
	}
	src := c.LogSource()
	p, err := src.Read(context.Background(), "", now.Add(-time.Hour))
	if err != nil || !p.More || len(ids(t, p.Body)) != 1000 {
		t.Fatalf("full page More %v, %v", p.More, err)
	}
	p, err = src.Read(context.Background(), p.Cursor, time.Time{})
	if err != nil || p.More || strings.Join(ids(t, p.Body), ",") != "e1000" {
		t.Fatalf("second page %s More %v, %v", ids(t, p.Body), p.More, err)
	}
}

// TestLogSourceRefusesForeignNextLink: the next link carries the API
// token's next request; a link to another origin or path is refused, and
// nothing is sent there.
func TestLogSourceRefusesForeignNextLink(t *testing.T) {
	org, c := fake(t)
	src := c.LogSource()
	org.SetLogLinkBase("http://evil.example")
	_, err := src.Read(context.Background(), "", time.Now().Add(-time.Hour))
	if err == nil || !respond.IsPermanent(err) || !strings.Contains(err.Error(), "evil.example") {
		t.Fatalf("Read with a foreign next link = %v, want a permanent refusal", err)
	}
	n := len(org.Requests())
	for _, cursor := range []string{
		"http://evil.example/api/v1/logs?after=x",
		org.URL() + "/api/v1/users/00u1/sessions",
		strings.Replace(org.URL(), "http://", "http://admin:pw@", 1) + "/api/v1/logs?after=x",
		strings.Replace(org.URL(), "http://", "https://", 1) + "/api/v1/logs?after=x",
	} {
		if _, err := src.Read(context.Background(), cursor, time.Time{}); err == nil || !respond.IsPermanent(err) {
			t.Fatalf("Read(%q) = %v, want a permanent refusal", cursor, err)
		}
	}
	if len(org.Requests()) != n {
		t.Fatalf("a refused cursor was requested: %+v", org.Requests()[n:])
	}
}

func TestLogSourceRateLimits(t *testing.T) {
	org, c := fake(t)
	src := c.LogSource()
	org.SetRateLimit(1)
	// Within the limit, but nothing remains: the source pauses until the
	// window resets, without asking Okta.
	if _, err := src.Read(context.Background(), "", time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	_, err := src.Read(context.Background(), "", time.Now().Add(-time.Hour))
	var ra *respond.RetryAfter
	if !errors.As(err, &ra) || ra.Wait < 30*time.Second || ra.Wait > 61*time.Second {
		t.Fatalf("read with no rate left = %v, want a RetryAfter until the reset", err)
	}
	if n := len(org.Requests()); n != 1 {
		t.Fatalf("%d requests, want the paused read not sent", n)
	}

	// A 429 asks for a wait until X-Rate-Limit-Reset.
	org2, c2 := fake(t)
	org2.SetRateLimit(0)
	_, err = c2.LogSource().Read(context.Background(), "", time.Now().Add(-time.Hour))
	if !errors.As(err, &ra) || ra.Wait < 30*time.Second || ra.Wait > 61*time.Second || !strings.Contains(err.Error(), "429") {
		t.Fatalf("429 = %v, want a RetryAfter until the reset", err)
	}
}

func TestLogSourceBadToken(t *testing.T) {
	org, _ := fake(t)
	c := newClient(t, org.URL(), "wrong-token")
	_, err := c.LogSource().Read(context.Background(), "", time.Now())
	if err == nil || !respond.IsPermanent(err) || !strings.Contains(err.Error(), "E0000011") || strings.Contains(err.Error(), "wrong-token") {
		t.Fatalf("bad token = %v", err)
	}
}
