package entra

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pushbackhq/pushback/connectors/poll"
	"github.com/pushbackhq/pushback/connectors/respond"
)

// LogOverlap is how much of a finished window the next one reads again.
// Entra writes sign-ins minutes after they happen, not in createdDateTime
// order, so a window that starts exactly at the newest sign-in read would
// miss one that was created a little earlier and written a little later.
// The next window starts LogOverlap before that newest sign-in; the
// sign-ins read twice are dropped by intake, which deduplicates by the
// signIn id. A sign-in that appears later than LogOverlap after a newer
// one was read is missed.
const LogOverlap = 5 * time.Minute

// LogRetention is how long Entra ID P1/P2 keeps sign-ins for Graph; a
// first read from an older since starts there.
const LogRetention = 30 * 24 * time.Hour

// LogPageLimit is the sign-ins asked for per read ($top): Graph's maximum
// and default.
const LogPageLimit = 1000

// MaxLogPageBody bounds a page's body: a thousand sign-ins of several KiB.
const MaxLogPageBody = 32 << 20

// maxBodyLine is the longest line intake's format reader takes for one
// record of newline-delimited input (formats.MaxRecordBytes): it reads a
// one-line body as such, so a longer one-line page is indented first.
const maxBodyLine = poll.MaxLine

const (
	signInsPath = "/v1.0/auditLogs/signIns"
	signInsCall = "GET " + signInsPath
)

// LogSource reads the tenant's sign-ins from Microsoft Graph (List
// signIns) for the poll runner; its pages are parsed by intake's "entra"
// format. It needs the AuditLog.Read.All application permission, and the
// tenant needs a Microsoft Entra ID P1 or P2 licence.
//
// Graph lists sign-ins newest first and its List signIns documents $top,
// $skiptoken and $filter only (no $orderby), so the source reads windows:
// a window is every sign-in created at or after its start, read page by
// page through @odata.nextLink; when its pages end, the next window
// starts LogOverlap before the newest sign-in it held.
type LogSource struct {
	c   *Client
	now func() time.Time
}

var _ poll.Source = (*LogSource)(nil)

// LogSource returns the poll.Source of the tenant's sign-ins.
func (c *Client) LogSource() *LogSource { return &LogSource{c: c, now: time.Now} }

// Name implements poll.Source.
func (s *LogSource) Name() string { return "entra" }

// Format implements poll.Source.
func (s *LogSource) Format() string { return "entra" }

// logCursor is what the next read needs; it is stored base64url JSON and
// holds times and Graph's nextLink, nothing secret.
type logCursor struct {
	// From is the window's start, RFC 3339: createdDateTime ge From.
	From string `json:"from"`
	// Next is the @odata.nextLink of the window's next page, while the
	// window continues.
	Next string `json:"next,omitempty"`
	// Newest is the newest createdDateTime read in the window so far.
	Newest string `json:"new,omitempty"`
}

func (c logCursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *LogSource) decodeCursor(str string) (logCursor, time.Time, time.Time, error) {
	var c logCursor
	var from, newest time.Time
	b, err := base64.RawURLEncoding.DecodeString(str)
	if err == nil {
		d := json.NewDecoder(bytes.NewReader(b))
		d.DisallowUnknownFields()
		err = d.Decode(&c)
	}
	if err == nil {
		from, err = time.Parse(time.RFC3339Nano, c.From)
	}
	if err == nil && c.Newest != "" {
		newest, err = time.Parse(time.RFC3339Nano, c.Newest)
	}
	if err == nil && c.Next != "" {
		_, err = s.c.nextLinkQuery(c.Next)
	}
	if err != nil {
		return logCursor{}, time.Time{}, time.Time{}, respond.Permanent("entra: %s: unreadable cursor %.40q: %v", signInsCall, str, err)
	}
	return c, from, newest, nil
}

// nextLinkQuery returns the query of a nextLink Graph sent, after checking
// it is a List signIns call on the configured Graph: the bearer token is
// never sent elsewhere.
func (c *Client) nextLinkQuery(link string) (string, error) {
	rest, ok := strings.CutPrefix(link, c.graph+signInsPath+"?")
	if !ok {
		return "", fmt.Errorf("@odata.nextLink %.80q is not %s%s", link, c.graph, signInsPath)
	}
	u, err := url.Parse(link)
	if err != nil || u.User != nil || u.Fragment != "" || u.RawQuery != rest || len(link) > 16<<10 || strings.ContainsFunc(link, isControl) {
		return "", fmt.Errorf("@odata.nextLink %.80q is not a Graph URL", link)
	}
	q, err := url.ParseQuery(rest)
	if err != nil || q.Get("$skiptoken") == "" {
		return "", fmt.Errorf("@odata.nextLink %.80q has no $skiptoken", link)
	}
	return rest, nil
}

// signInPage is what Read uses of an answer.
type signInPage struct {
	Value []struct {
		ID      string `json:"id"`
		Created string `json:"createdDateTime"`
	} `json:"value"`
	NextLink string `json:"@odata.nextLink"`
}

// Read implements poll.Source: one GET /v1.0/auditLogs/signIns of up to
// LogPageLimit sign-ins. An empty cursor starts a window at since (no
// earlier than LogRetention ago): $filter=createdDateTime ge {since}.
// While Graph answers an @odata.nextLink, the cursor holds it and More is
// true; when the window's pages end, the cursor starts the next window
// LogOverlap before the newest createdDateTime read in it (never before
// the window's own start), or at the same start when there was none.
// Body is Graph's answer as received, indented when it is one line longer
// than intake reads.
func (s *LogSource) Read(ctx context.Context, cursor string, since time.Time) (poll.Page, error) {
	var cur logCursor
	var from, newest time.Time
	if cursor != "" {
		var err error
		if cur, from, newest, err = s.decodeCursor(cursor); err != nil {
			return poll.Page{}, err
		}
	} else {
		from = since
		if oldest := s.now().Add(-LogRetention + time.Hour); from.Before(oldest) {
			from = oldest
		}
		// Whole seconds, rounded down: createdDateTime has no more.
		from = from.UTC().Truncate(time.Second)
		cur = logCursor{From: from.Format(time.RFC3339Nano)}
	}
	query := cur.Next
	if query != "" {
		query, _ = s.c.nextLinkQuery(cur.Next) // checked by decodeCursor
	} else {
		query = "$filter=" + url.QueryEscape("createdDateTime ge "+from.UTC().Format(time.RFC3339Nano)) +
			fmt.Sprintf("&$top=%d", LogPageLimit)
	}
	_, body, err := s.c.callLimit(ctx, http.MethodGet, signInsPath, query, nil, signInsCall, MaxLogPageBody)
	if err != nil {
		return poll.Page{}, err
	}
	var page signInPage
	if err := json.Unmarshal(body, &page); err != nil {
		return poll.Page{}, fmt.Errorf("entra: %s: unreadable response: %v", signInsCall, err)
	}
	var pageNewest time.Time
	for i, v := range page.Value {
		t, err := time.Parse(time.RFC3339Nano, v.Created)
		if err != nil {
			return poll.Page{}, fmt.Errorf("entra: %s: value[%d] (id %.64q): createdDateTime: %v", signInsCall, i, v.ID, err)
		}
		if t.After(pageNewest) {
			pageNewest = t
		}
	}
	if pageNewest.After(newest) {
		newest = pageNewest
	}
	next := logCursor{From: cur.From}
	if page.NextLink != "" && len(page.Value) > 0 && page.NextLink != cur.Next {
		if _, err := s.c.nextLinkQuery(page.NextLink); err != nil {
			return poll.Page{}, respond.Permanent("entra: %s: %v", signInsCall, err)
		}
		next.Next = page.NextLink
		if !newest.IsZero() {
			next.Newest = newest.UTC().Format(time.RFC3339Nano)
		}
	} else if !newest.IsZero() {
		// The window is read: the next starts LogOverlap before its
		// newest sign-in (ge: that sign-in is read again).
		if start := newest.Add(-LogOverlap).UTC().Truncate(time.Second); start.After(from) {
			next.From = start.Format(time.RFC3339Nano)
		}
	}
	if body, err = poll.Readable(body); err != nil {
		return poll.Page{}, fmt.Errorf("entra: %s: unreadable response: %v", signInsCall, err)
	}
	p := poll.Page{Body: body, Cursor: next.encode(), More: next.Next != ""}
	if !pageNewest.IsZero() {
		p.Newest = pageNewest.UTC()
	}
	return p, nil
}
