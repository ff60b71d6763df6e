// Package poll reads identity providers' logs by polling their APIs (the
// Okta System Log, Duo's authentication logs, Entra sign-ins from Microsoft
// Graph) and hands each page to intake through the same format adapters
// that push delivery uses. A Source reads pages; the Runner stores each
// page's events, then its cursor, so a restart resumes where it stopped.
package poll

import (
	"bytes"
	"context"
	"encoding/json"
	"time"
)

// Page is one read from a source.
type Page struct {
	// Body is the page as the vendor sent it (a JSON array of Okta events,
	// a Duo authentication-log response, a Graph sign-in page): intake's
	// format adapter named by Source.Format parses it.
	Body []byte
	// Cursor is where the next read starts. The runner stores it only
	// after the events of Body are stored.
	Cursor string
	// More is true when another page is ready now (follow it at once).
	More bool
	// Newest is the time of the newest record in Body (zero when none),
	// for the lag metric.
	Newest time.Time
}

// Source reads one identity provider's log.
type Source interface {
	// Name identifies the source in cursors, leases, logs and metrics
	// ("okta", "duo", "entra").
	Name() string
	// Format is the intake format that parses its pages.
	Format() string
	// Read returns the page after cursor; an empty cursor starts at since.
	// An error wrapping respond.ErrPermanent will not succeed on retry; a
	// *respond.RetryAfter asks for a later read no sooner than its Wait.
	Read(ctx context.Context, cursor string, since time.Time) (Page, error)
}

// MaxLine is the longest line intake's format reader takes as one record
// of newline-delimited input (formats.MaxRecordBytes): it reads a body on
// one line as such.
const MaxLine = 1 << 20

// Readable returns a page body intake's reader takes whole: a one-line
// JSON document longer than MaxLine (vendors answer compact JSON, and a
// full page of a thousand records is longer) is indented, which changes
// no value.
func Readable(body []byte) ([]byte, error) {
	if len(body) <= MaxLine {
		return body, nil
	}
	var b bytes.Buffer
	if err := json.Indent(&b, body, "", " "); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
