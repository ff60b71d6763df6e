// Package formats turns identity-provider event formats (Okta, Microsoft
// Entra ID, Duo, Auth0, PingID, OCSF and Pushback's own AuthEvent JSON) into
// normalised AuthEvents. The same parsers serve the HTTP adapters (one
// request body, all or nothing) and offline files (a stream of records that
// continues past a bad one).
//
// Every input may be one JSON object, a JSON array, newline-delimited JSON,
// or the format's own envelope (an Okta Event Hook's data.events, Entra's
// records, Duo's response.authlogs, Auth0's log stream array, native
// {"events": [...]}). Records of event types that carry no authentication
// signal are counted by type and skipped, never an error.
package formats

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/userid"
	"github.com/pushbackhq/pushback/pkg/validate"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Format names an input format.
type Format string

// Supported formats.
const (
	Okta   Format = "okta"
	Entra  Format = "entra"
	Duo    Format = "duo"
	Auth0  Format = "auth0"
	PingID Format = "pingid"
	OCSF   Format = "ocsf"
	Native Format = "native"
)

// All lists every supported format.
var All = []Format{Okta, Entra, Duo, Auth0, PingID, OCSF, Native}

// ParseFormat returns the format named s.
func ParseFormat(s string) (Format, error) {
	f := Format(strings.ToLower(strings.TrimSpace(s)))
	if slices.Contains(All, f) {
		return f, nil
	}
	names := make([]string, len(All))
	for i, f := range All {
		names[i] = string(f)
	}
	return "", fmt.Errorf("unknown format %q (one of %s)", s, strings.Join(names, ", "))
}

// Options configures parsing.
type Options struct {
	// Tenant is set on every event that does not name one; an event that
	// names another tenant is an error.
	Tenant string
	// UserIDs, when set, canonicalises every event's user id by its
	// tenant's rule and keeps the spelling read in raw_user_id; a user id
	// with no valid canonical form fails its record. Nil keeps user ids as
	// spelled: the HTTP adapters leave that to intake, which canonicalises
	// every event it stores; replay reads files with it set.
	UserIDs *userid.Rules
}

// Batch is what one request body parsed into.
type Batch struct {
	Events []*eventv1.AuthEvent
	// Skipped counts records by their source event type when that type
	// carries no authentication signal.
	Skipped map[string]int
}

// SkippedTotal is the number of skipped records.
func (b Batch) SkippedTotal() int {
	n := 0
	for _, c := range b.Skipped {
		n += c
	}
	return n
}

// RecordError says which record could not be mapped and why.
type RecordError struct {
	// Record is the record's path in the input: "[3]" for the fourth
	// top-level value (or line), "records[2]" inside an envelope.
	Record string
	// Field is the source field at fault, relative to the record.
	Field string
	Msg   string
}

func (e *RecordError) Error() string { return e.Path() + ": " + e.Msg }

// Path joins the record path and the field.
func (e *RecordError) Path() string {
	switch {
	case e.Field == "":
		return e.Record
	case e.Record == "":
		return e.Field
	}
	return e.Record + "." + e.Field
}

// SyntaxError is input that is not JSON; reading cannot continue past it.
type SyntaxError struct {
	// Offset is the byte offset of the error in the input.
	Offset int64
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("malformed JSON at byte %d: %s", e.Offset, e.Msg)
}

// fieldError is a mapping error before the record path is known.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func errField(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// mapped is what one source record turned into.
type mapped struct {
	events []*eventv1.AuthEvent
	// skip is the source event type when the record carries no signal.
	skip string
}

// codec maps one top-level JSON value of a format. When the value is the
// format's envelope it returns the records inside and their path instead.
type codec func(raw []byte, o Options) (m mapped, inner []json.RawMessage, innerPath string, err error)

func codecOf(f Format) codec {
	switch f {
	case Okta:
		return oktaCodec
	case Entra:
		return entraCodec
	case Duo:
		return duoCodec
	case Auth0:
		return auth0Codec
	case PingID:
		return pingCodec
	case OCSF:
		return ocsfCodec
	case Native:
		return nativeCodec
	}
	return nil
}

// Parse parses a whole request body. Any record that cannot be mapped fails
// the batch with an InvalidArgument naming it; skipped types are counted.
func Parse(f Format, data []byte, o Options) (Batch, error) {
	r := NewReader(f, bytes.NewReader(data), o)
	b := Batch{}
	var v apierr.Violations
	for {
		evs, skip, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var re *RecordError
		if errors.As(err, &re) {
			v.Add(re.Path(), "%s", re.Msg)
			if v.Len() >= 20 {
				break
			}
			continue
		}
		if err != nil {
			var se *SyntaxError
			if errors.As(err, &se) {
				return Batch{}, apierr.InvalidArgument(apierr.FieldViolation{Field: "body", Description: se.Error()})
			}
			return Batch{}, apierr.InvalidArgument(apierr.FieldViolation{Field: "body", Description: err.Error()})
		}
		if skip != "" {
			if b.Skipped == nil {
				b.Skipped = map[string]int{}
			}
			b.Skipped[skip]++
		}
		b.Events = append(b.Events, evs...)
	}
	if err := v.Err(); err != nil {
		return Batch{}, err
	}
	return b, nil
}

// jsonMsg shortens an encoding/json error to what a caller can act on.
func jsonMsg(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		field := ute.Field
		if field == "" {
			field = "record"
		}
		return fmt.Sprintf("%s: a JSON %s cannot be %s", field, ute.Value, typeName(ute.Type.Kind().String()))
	}
	return err.Error()
}

func typeName(kind string) string {
	switch kind {
	case "struct", "map":
		return "read here (want an object)"
	case "slice":
		return "read here (want an array)"
	case "string":
		return "read here (want a string)"
	}
	return "read here (want a " + kind + ")"
}

// ---- shared value types ----

// flexString accepts a JSON string, number or bool and keeps its text.
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = flexString(v)
		return nil
	}
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && (b[0] == '{' || b[0] == '[') {
		return errors.New("want a string or number")
	}
	*s = flexString(b)
	return nil
}

// flexFloat accepts a JSON number or a string holding one.
type flexFloat float64

func (f *flexFloat) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("%q is not a number", s)
	}
	*f = flexFloat(v)
	return nil
}

// timeLayouts are the timestamp shapes seen in IdP logs and SIEM exports.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999-0700",
}

// parseTime reads an RFC 3339 time, a zone-less time (UTC), or unix
// seconds / milliseconds.
func parseTime(field string, s flexString) (time.Time, error) {
	v := strings.TrimSpace(string(s))
	if v == "" {
		return time.Time{}, errField(field, "is required")
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		switch {
		case n > 1e17: // nanoseconds
			return time.Unix(0, int64(n)).UTC(), nil
		case n > 1e14: // microseconds
			return time.UnixMicro(int64(n)).UTC(), nil
		case n > 1e11: // milliseconds
			return time.UnixMilli(int64(n)).UTC(), nil
		case n > 0:
			sec, frac := math.Modf(n)
			return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
		}
		return time.Time{}, errField(field, "%q is not a time", truncate(v, 64))
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errField(field, "%q is not an RFC 3339 time or unix timestamp", truncate(v, 64))
}

// countryCode normalises a country name or code to ISO 3166-1 alpha-2;
// an unknown name is kept as given.
func countryCode(s string) string {
	s = strings.TrimSpace(s)
	if len(s) == 2 {
		return strings.ToUpper(s)
	}
	if c, ok := countryCodes[strings.ToLower(s)]; ok {
		return c
	}
	return s
}

// syntheticID derives a stable event id from the raw record, so a record
// without an id is still de-duplicated when the IdP re-delivers it.
func syntheticID(raw []byte) string {
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:16])
}

func newEvent(idp, rawType, id, user string, typ eventv1.EventType, at time.Time) *eventv1.AuthEvent {
	return &eventv1.AuthEvent{
		EventId: id,
		UserId:  user,
		Type:    typ,
		Time:    timestamppb.New(at),
		Source:  &eventv1.Source{Idp: idp, RawEventType: rawType},
	}
}

// pushPair is what a log that records only the answer to a push becomes:
// the push itself (id suffixed "#push", so windows count every push) and
// its outcome.
func pushPair(e *eventv1.AuthEvent) []*eventv1.AuthEvent {
	sent := &eventv1.AuthEvent{
		EventId:   e.GetEventId() + "#push",
		Tenant:    e.GetTenant(),
		UserId:    e.GetUserId(),
		Type:      eventv1.EventType_EVENT_TYPE_PUSH_SENT,
		Time:      e.GetTime(),
		AppId:     e.GetAppId(),
		Factor:    e.GetFactor(),
		SessionId: e.GetSessionId(),
		Client:    e.GetClient(),
		Source:    e.GetSource(),
	}
	return []*eventv1.AuthEvent{sent, e}
}

func isPushFactor(f eventv1.Factor) bool {
	return f == eventv1.Factor_FACTOR_PUSH || f == eventv1.Factor_FACTOR_PUSH_NUMBER_MATCH
}

// containsAny reports whether s contains any of the lower-case needles,
// ignoring case.
func containsAny(s string, needles ...string) bool {
	s = strings.ToLower(s)
	for _, n := range needles {
		if strings.Contains(s, n) {
			return true
		}
	}
	return false
}

// finish makes a mapped event satisfy the contract: required fields must be
// present and valid (an error names them); optional fields that are not
// valid (an IP that does not parse, coordinates out of range, an id too
// long) are dropped rather than failing the record.
func finish(e *eventv1.AuthEvent, o Options) error {
	switch {
	case e.Tenant == "":
		e.Tenant = o.Tenant
	case o.Tenant != "" && e.Tenant != o.Tenant:
		// A request for one tenant must not write into another.
		return errField("tenant", "the event names tenant %q but the request is for tenant %q", e.Tenant, o.Tenant)
	}
	e.EventId = strings.TrimSpace(e.EventId)
	if e.EventId == "" {
		return errField("id", "the event id is missing")
	}
	if len(e.EventId) > validate.MaxIDBytes || !utf8.ValidString(e.EventId) {
		e.EventId = syntheticID([]byte(e.EventId))
	}
	if e.UserId == "" {
		return errField("user", "the user is missing")
	}
	if len(e.UserId) > validate.MaxIDBytes || !utf8.ValidString(e.UserId) {
		return errField("user", "is longer than %d bytes or not UTF-8", validate.MaxIDBytes)
	}
	if e.Time == nil {
		return errField("time", "is required")
	}
	if t := e.Time.AsTime(); e.Time.CheckValid() != nil || t.Year() < 2000 || t.Year() > 2200 {
		return errField("time", "%s is outside the years 2000-2200", t.Format(time.RFC3339))
	}
	e.AppId = optionalID(e.AppId)
	e.SessionId = optionalID(e.SessionId)
	e.Tenant = optionalID(e.Tenant)
	e.Client = cleanClient(e.Client)
	e.Responder = cleanClient(e.Responder)
	if e.Source != nil {
		e.Source.Idp = truncate(e.Source.Idp, 64)
		e.Source.RawEventType = truncate(strings.ToValidUTF8(e.Source.RawEventType, ""), 256)
	}
	var v apierr.Violations
	validate.Event(&v, "event", e)
	if err := v.Err(); err != nil {
		return err
	}
	if o.UserIDs != nil {
		if c := o.UserIDs.Canonical(e.Tenant, e.UserId); c != e.UserId {
			if c = o.UserIDs.Check(&v, "user", e.Tenant, e.UserId); c == "" {
				return errField("user", "%s", v.List()[0].Description)
			}
			if e.RawUserId == "" {
				e.RawUserId = e.UserId
			}
			e.UserId = c
		}
	}
	return nil
}

func optionalID(s string) string {
	s = strings.TrimSpace(s)
	if s == "unknown" || len(s) > validate.MaxIDBytes || !utf8.ValidString(s) {
		return ""
	}
	return s
}

func cleanClient(c *eventv1.Client) *eventv1.Client {
	if c == nil {
		return nil
	}
	if c.Ip != "" {
		ip := strings.TrimSpace(c.Ip)
		if a, err := netip.ParseAddr(ip); err == nil {
			c.Ip = a.String()
		} else if ap, err := netip.ParseAddrPort(ip); err == nil {
			c.Ip = ap.Addr().String()
		} else {
			c.Ip = ""
		}
	}
	c.DeviceId = optionalID(c.DeviceId)
	c.UserAgent = text(c.UserAgent)
	c.AsOrg = text(c.AsOrg)
	if g := c.Geo; g != nil {
		bad := func(x, lim float64) bool { return math.IsNaN(x) || math.IsInf(x, 0) || x < -lim || x > lim }
		if bad(g.Latitude, 90) || bad(g.Longitude, 180) {
			g.Latitude, g.Longitude = 0, 0
		}
		if math.IsNaN(g.AccuracyKm) || g.AccuracyKm < 0 || g.AccuracyKm > 20000 {
			g.AccuracyKm = 0
		}
		g.Country, g.Region, g.City = text(countryCode(g.Country)), text(g.Region), text(g.City)
		if g.Latitude == 0 && g.Longitude == 0 && g.Country == "" && g.Region == "" && g.City == "" {
			c.Geo = nil
		}
	}
	if c.Ip == "" && c.UserAgent == "" && c.DeviceId == "" && c.Asn == 0 && c.AsOrg == "" && c.Geo == nil {
		return nil
	}
	return c
}

func text(s string) string {
	return truncate(strings.ToValidUTF8(strings.TrimSpace(s), ""), validate.MaxTextBytes)
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func geo(lat, lon float64, country, region, city string) *eventv1.Geo {
	return &eventv1.Geo{Latitude: lat, Longitude: lon, Country: country, Region: region, City: city}
}
