package okta

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pushbackhq/pushback/connectors/poll"
	"github.com/pushbackhq/pushback/connectors/respond"
	"github.com/pushbackhq/pushback/pkg/outbound"
)

// LogPageLimit is the number of events asked for per System Log read: the
// most Okta returns.
const LogPageLimit = 1000

// maxLogPage bounds a System Log page read (1000 events of a few KiB).
const maxLogPage = 32 << 20

// logsPath is the System Log API.
const logsPath = "/api/v1/logs"

// LogSource reads the org's System Log by polling (poll.Source): the
// first read asks for events since a time in ascending order; each answer's
// Link rel="next" is the cursor of the next, for ever, as Okta documents
// for polling. It is safe for concurrent use.
type LogSource struct {
	c     *Client
	limit int

	mu sync.Mutex
	// notBefore pauses reads when the rate limit is nearly spent.
	notBefore time.Time
}

var _ poll.Source = (*LogSource)(nil)

// LogSource returns the System Log poller of the connector's org, with
// its URL, token and HTTP client.
func (c *Client) LogSource() *LogSource { return &LogSource{c: c, limit: LogPageLimit} }

// Name implements poll.Source.
func (s *LogSource) Name() string { return "okta" }

// Format implements poll.Source: intake's okta adapter reads the pages.
func (s *LogSource) Format() string { return "okta" }

// Read implements poll.Source.
func (s *LogSource) Read(ctx context.Context, cursor string, since time.Time) (poll.Page, error) {
	c := s.c
	now := c.now()
	s.mu.Lock()
	nb := s.notBefore
	s.mu.Unlock()
	if now.Before(nb) {
		return poll.Page{}, &respond.RetryAfter{Wait: nb.Sub(now), Err: fmt.Errorf("okta: GET %s: pausing until the rate limit resets", logsPath)}
	}
	target := cursor
	if cursor == "" {
		q := url.Values{"since": {since.UTC().Format(time.RFC3339)}, "sortOrder": {"ASCENDING"}, "limit": {strconv.Itoa(s.limit)}}
		target = c.base.String() + logsPath + "?" + q.Encode()
	} else if err := s.checkLink(cursor); err != nil {
		return poll.Page{}, respond.Permanent("okta: the stored System Log cursor: %v", err)
	}
	what := "GET " + logsPath
	resp, err := c.callURL(ctx, http.MethodGet, target)
	if err != nil {
		return poll.Page{}, fmt.Errorf("okta: %s: %w", what, err)
	}
	s.watchRate(resp, now)
	if resp.StatusCode != http.StatusOK {
		err := c.statusError(what, resp)
		if resp.StatusCode == http.StatusTooManyRequests {
			if reset, ok := rateReset(resp); ok && reset.After(now) {
				err = &respond.RetryAfter{Wait: reset.Sub(now), Err: err}
			}
		}
		return poll.Page{}, err
	}
	body, err := outbound.ReadBody(resp, maxLogPage)
	if err != nil {
		return poll.Page{}, fmt.Errorf("okta: %s: reading the page: %w", what, err)
	}
	var events []struct {
		Published time.Time `json:"published"`
	}
	if err := json.Unmarshal(body, &events); err != nil {
		return poll.Page{}, fmt.Errorf("okta: %s: the answer is not an array of log events", what)
	}
	next := nextLink(resp.Header.Values("Link"))
	if next != "" {
		if err := s.checkLink(next); err != nil {
			return poll.Page{}, respond.Permanent("okta: %s: refusing the next link: %v", what, err)
		}
	}
	if next == "" {
		// No next link (not polling, or a proxy dropped it): read again
		// from the same place; intake drops what it has seen.
		next = cursor
	}
	p := poll.Page{Body: body, Cursor: next, More: len(events) >= s.limit}
	if n := len(events); n > 0 {
		p.Newest = events[n-1].Published
	}
	return p, nil
}

// checkLink accepts only a System Log URL on the org's own origin: the
// cursor is followed with the API token.
func (s *LogSource) checkLink(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL")
	}
	base := s.c.base
	switch {
	case u.Scheme != base.Scheme || !strings.EqualFold(u.Host, base.Host) || u.User != nil:
		return fmt.Errorf("%s://%s is not the origin of okta-url", u.Scheme, u.Host)
	case u.EscapedPath() != strings.TrimRight(base.EscapedPath(), "/")+logsPath:
		return fmt.Errorf("path %q is not %s", u.EscapedPath(), logsPath)
	case u.Fragment != "":
		return fmt.Errorf("carries a fragment")
	}
	return nil
}

// watchRate pauses reads until the window resets when less than a tenth
// of Okta's rate limit remains (X-Rate-Limit-*), leaving the rest to the
// response connector and the org's other clients.
func (s *LogSource) watchRate(resp *http.Response, now time.Time) {
	limit, err1 := strconv.Atoi(resp.Header.Get("X-Rate-Limit-Limit"))
	remaining, err2 := strconv.Atoi(resp.Header.Get("X-Rate-Limit-Remaining"))
	reset, ok := rateReset(resp)
	if err1 != nil || err2 != nil || !ok || limit <= 0 {
		return
	}
	if remaining*10 < limit && reset.After(now) {
		s.mu.Lock()
		s.notBefore = reset
		s.mu.Unlock()
	}
}

// rateReset reads X-Rate-Limit-Reset (Unix seconds), bounded to an hour.
func rateReset(resp *http.Response) (time.Time, bool) {
	sec, err := strconv.ParseInt(resp.Header.Get("X-Rate-Limit-Reset"), 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}, false
	}
	t := time.Unix(sec, 0)
	if d := time.Until(t); d > time.Hour {
		t = time.Now().Add(time.Hour)
	}
	return t, true
}

// nextLink returns the target of the rel="next" link of Link headers.
func nextLink(values []string) string {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if !strings.HasPrefix(part, "<") {
				continue
			}
			end := strings.Index(part, ">")
			if end < 0 {
				continue
			}
			for _, param := range strings.Split(part[end+1:], ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(param), "=")
				if strings.EqualFold(k, "rel") && strings.Trim(v, `"`) == "next" {
					return part[1:end]
				}
			}
		}
	}
	return ""
}
