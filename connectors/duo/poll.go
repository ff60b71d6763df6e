package duo

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pushbackhq/pushback/connectors/poll"
	"github.com/pushbackhq/pushback/connectors/respond"
)

// LogDelay is how far behind the present Duo's authentication logs are
// complete: a read never asks for records later than now − LogDelay.
const LogDelay = 2 * time.Minute

// LogRetention is how far back the Authentication Logs API reaches; a
// first read from an older since starts there.
const LogRetention = 180 * 24 * time.Hour

// LogPageLimit is the records asked for per read (Duo's maximum).
const LogPageLimit = 1000

// MaxLogPageBody bounds a page's body: a thousand records of a few KiB.
const MaxLogPageBody = 16 << 20

// maxBodyLine is the longest line intake's format reader takes for one
// record of newline-delimited input (formats.MaxRecordBytes): it reads a
// one-line body as such, so a longer one-line page is indented first.
const maxBodyLine = poll.MaxLine

const (
	logsPath = "/admin/v2/logs/authentication"
	logsCall = "GET " + logsPath
)

// LogSource reads the account's authentication logs (Admin API v2) for
// the poll runner; its pages are parsed by intake's "duo" format. It needs
// the Admin API application's "Grant read log" permission.
type LogSource struct {
	c   *Client
	now func() time.Time
}

var _ poll.Source = (*LogSource)(nil)

// LogSource returns the poll.Source of the account's authentication logs.
func (c *Client) LogSource() *LogSource { return &LogSource{c: c, now: time.Now} }

// Name implements poll.Source.
func (s *LogSource) Name() string { return "duo" }

// Format implements poll.Source.
func (s *LogSource) Format() string { return "duo" }

// logCursor is what the next read needs; it is stored base64url JSON and
// holds times and a txid, nothing secret.
type logCursor struct {
	// Min is mintime, Unix ms.
	Min int64 `json:"min"`
	// Max is maxtime of the page set being followed (with Offset).
	Max int64 `json:"max,omitempty"`
	// Offset is Duo's next_offset, [time in ms, txid], while a page set
	// continues.
	Offset []string `json:"off,omitempty"`
	// Newest is the newest record time (Unix ms) read in the page set so
	// far, 0 when none.
	Newest int64 `json:"new,omitempty"`
}

func (c logCursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (logCursor, error) {
	var c logCursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		d := json.NewDecoder(bytes.NewReader(b))
		d.DisallowUnknownFields()
		err = d.Decode(&c)
	}
	if err == nil && (c.Min <= 0 || (c.Offset != nil && (c.Max <= c.Min || checkOffset(c.Offset) != nil))) {
		err = errors.New("out of range")
	}
	if err != nil {
		return logCursor{}, respond.Permanent("duo: %s: unreadable cursor %.40q: %v", logsCall, s, err)
	}
	return c, nil
}

func checkOffset(off []string) error {
	if len(off) != 2 || off[1] == "" || strings.Contains(off[1], ",") {
		return fmt.Errorf("next_offset %q is not [time, txid]", off)
	}
	if _, err := strconv.ParseUint(off[0], 10, 63); err != nil {
		return fmt.Errorf("next_offset time %q is not a number", off[0])
	}
	return nil
}

// logPage is what Read uses of an answer.
type logPage struct {
	AuthLogs []struct {
		TxID         string      `json:"txid"`
		Timestamp    json.Number `json:"timestamp"`
		IsoTimestamp string      `json:"isotimestamp"`
	} `json:"authlogs"`
	Metadata struct {
		NextOffset []json.RawMessage `json:"next_offset"`
	} `json:"metadata"`
}

// Read implements poll.Source: one signed GET /admin/v2/logs/authentication
// of up to LogPageLimit records, oldest first, from since (empty cursor) or
// the cursor, never later than now − LogDelay. While Duo answers a
// next_offset the cursor follows it with the same mintime and maxtime and
// More is true; once the page set is exhausted the cursor starts after the
// newest record read (+1 ms), or where it started when there was none.
// Body is Duo's answer as received, indented when it is one line longer
// than intake reads.
func (s *LogSource) Read(ctx context.Context, cursor string, since time.Time) (poll.Page, error) {
	now := s.now()
	var cur logCursor
	if cursor != "" {
		var err error
		if cur, err = decodeCursor(cursor); err != nil {
			return poll.Page{}, err
		}
	} else {
		from := since
		if oldest := now.Add(-LogRetention + time.Hour); from.Before(oldest) {
			from = oldest
		}
		cur = logCursor{Min: from.UnixMilli()}
	}
	maxtime := cur.Max
	if cur.Offset == nil {
		maxtime = now.Add(-LogDelay).UnixMilli()
		if maxtime <= cur.Min {
			// Nothing is complete yet after mintime; Duo refuses
			// mintime >= maxtime.
			return poll.Page{Cursor: cur.encode()}, nil
		}
	}
	params := url.Values{
		"mintime": {strconv.FormatInt(cur.Min, 10)},
		"maxtime": {strconv.FormatInt(maxtime, 10)},
		"limit":   {strconv.Itoa(LogPageLimit)},
		"sort":    {"ts:asc"},
	}
	if cur.Offset != nil {
		params.Set("next_offset", strings.Join(cur.Offset, ","))
	}
	body, resp, err := s.c.send(ctx, http.MethodGet, logsPath, params, logsCall, MaxLogPageBody, false)
	if err != nil {
		return poll.Page{}, err
	}
	var page logPage
	d := json.NewDecoder(bytes.NewReader(resp))
	d.UseNumber()
	if err := d.Decode(&page); err != nil {
		return poll.Page{}, fmt.Errorf("duo: %s: unreadable response: %v", logsCall, err)
	}

	var newest int64
	for i, l := range page.AuthLogs {
		ms, err := logTime(l.IsoTimestamp, l.Timestamp)
		if err != nil {
			return poll.Page{}, fmt.Errorf("duo: %s: authlogs[%d] (txid %.64q): %v", logsCall, i, l.TxID, err)
		}
		newest = max(newest, ms)
	}
	next := logCursor{Min: cur.Min, Max: maxtime, Newest: max(cur.Newest, newest)}
	if off := page.Metadata.NextOffset; len(off) > 0 {
		next.Offset = make([]string, len(off))
		for i, v := range off {
			var str string
			if json.Unmarshal(v, &str) != nil {
				str = string(v) // a number
			}
			next.Offset[i] = str
		}
		if err := checkOffset(next.Offset); err != nil {
			return poll.Page{}, fmt.Errorf("duo: %s: %v", logsCall, err)
		}
		if len(page.AuthLogs) == 0 || strings.Join(next.Offset, ",") == params.Get("next_offset") {
			// An offset that does not move would be followed forever.
			next.Offset = nil
		}
	}
	if next.Offset == nil {
		// The page set is exhausted: start after its newest record.
		next.Max = 0
		if next.Newest > 0 {
			// A record past maxtime (Duo sends none) moves it no further.
			next.Min = max(next.Min, min(next.Newest, maxtime)+1)
		}
		next.Newest = 0
	}
	if body, err = poll.Readable(body); err != nil {
		return poll.Page{}, fmt.Errorf("duo: %s: unreadable response: %v", logsCall, err)
	}
	p := poll.Page{Body: body, Cursor: next.encode(), More: next.Offset != nil}
	if newest > 0 {
		p.Newest = time.UnixMilli(newest).UTC()
	}
	return p, nil
}

// logTime is a record's time in Unix ms: its isotimestamp, else its
// timestamp (Unix seconds).
func logTime(iso string, ts json.Number) (int64, error) {
	if iso != "" {
		t, err := time.Parse(time.RFC3339Nano, iso)
		if err != nil {
			return 0, fmt.Errorf("isotimestamp: %v", err)
		}
		return t.UnixMilli(), nil
	}
	if sec, err := ts.Int64(); err == nil && sec > 0 {
		return sec * 1000, nil
	}
	if f, err := ts.Float64(); err == nil && f > 0 {
		return int64(f * 1000), nil
	}
	return 0, fmt.Errorf("no isotimestamp and no timestamp")
}
