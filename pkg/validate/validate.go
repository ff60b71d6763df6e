// Package validate checks requests against the rules their contracts
// declare (buf.validate options, checked with protovalidate by one server
// interceptor), and holds by hand the shared contract types (clients, geo,
// events) to the same rules where no interceptor runs: the formats and the
// pollers. Every problem is a field violation with its full field path.
package validate

import (
	"math"
	"net/netip"
	"time"
	"unicode/utf8"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// maxIPBytes is longer than any textual IPv6 address.
const maxIPBytes = 64

// Limits on identifiers and free text.
const (
	MaxIDBytes   = 256
	MaxTextBytes = 1024
)

// ID checks a required or optional identifier.
func ID(v *apierr.Violations, field, s string, required bool) { idAt(v, field, "", s, required) }

// idAt checks an identifier at prefix+name; the path is only built for a
// violation, so valid requests cost no allocation here.
func idAt(v *apierr.Violations, prefix, name, s string, required bool) {
	switch {
	case s == "" && required:
		v.Add(prefix+name, "is required")
	case len(s) > MaxIDBytes:
		v.Add(prefix+name, "is longer than %d bytes", MaxIDBytes)
	case !utf8.ValidString(s):
		v.Add(prefix+name, "is not valid UTF-8")
	case hasControl(s):
		v.Add(prefix+name, "contains a control or bidirectional formatting character")
	}
}

// hasControl reports whether s holds a character that has no place in an
// identifier and can forge what a terminal or a log viewer shows: C0 and C1
// controls (escape sequences, newlines, tabs) and the bidirectional
// overrides and isolates.
func hasControl(s string) bool {
	for _, r := range s {
		switch {
		case r < 0x20, r >= 0x7f && r <= 0x9f:
			return true
		case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
			return true
		}
	}
	return false
}

// Text checks free text.
func Text(v *apierr.Violations, field, s string) { textAt(v, field, "", s) }

func textAt(v *apierr.Violations, prefix, name, s string) {
	if len(s) > MaxTextBytes {
		v.Add(prefix+name, "is longer than %d bytes", MaxTextBytes)
	} else if !utf8.ValidString(s) {
		v.Add(prefix+name, "is not valid UTF-8")
	}
}

// Time checks an optional timestamp: valid and not absurdly far from now.
func Time(v *apierr.Violations, field string, ts *timestamppb.Timestamp) {
	if ts == nil {
		return
	}
	if err := ts.CheckValid(); err != nil {
		v.Add(field, "is not a valid timestamp")
		return
	}
	if t := ts.AsTime(); t.Year() < 2000 || t.Year() > 2200 {
		v.Add(field, "is outside the years 2000-2200")
	}
}

// Enum checks that an enum value is one the contract defines.
func Enum(v *apierr.Violations, field string, value int32, names map[int32]string, required bool) {
	if _, ok := names[value]; !ok {
		v.Add(field, "unknown value %d", value)
		return
	}
	if required && value == 0 {
		v.Add(field, "is required")
	}
}

// anonymizerKind reports whether s is a kind Client.anonymizer may take.
func anonymizerKind(s string) bool {
	switch s {
	case "proxy", "vpn", "tor", "relay", "hosting", "satellite":
		return true
	}
	return false
}

// Client checks a client: a parseable IP, a known anonymizer kind,
// coordinates in range.
func Client(v *apierr.Violations, field string, c *eventv1.Client) {
	if c == nil {
		return
	}
	if ip := c.GetIp(); ip != "" {
		if a, err := netip.ParseAddr(ip); err != nil || len(ip) > maxIPBytes {
			v.Add(field+".ip", "%q is not an IPv4 or IPv6 address", truncate(ip))
		} else if a.Zone() != "" {
			v.Add(field+".ip", "%q has a zone; send the address alone", truncate(ip))
		}
	}
	idAt(v, field, ".device_id", c.GetDeviceId(), false)
	textAt(v, field, ".user_agent", c.GetUserAgent())
	textAt(v, field, ".as_org", c.GetAsOrg())
	if a := c.GetAnonymizer(); a != "" && !anonymizerKind(a) {
		v.Add(field+".anonymizer", "%q is not one of proxy, vpn, tor, relay, hosting, satellite", truncate(a))
	}
	if g := c.GetGeo(); g != nil {
		lat, lon := g.GetLatitude(), g.GetLongitude()
		if math.IsNaN(lat) || lat < -90 || lat > 90 {
			v.Add(field+".geo.latitude", "%v is outside -90..90", lat)
		}
		if math.IsNaN(lon) || lon < -180 || lon > 180 {
			v.Add(field+".geo.longitude", "%v is outside -180..180", lon)
		}
		if acc := g.GetAccuracyKm(); math.IsNaN(acc) || acc < 0 || acc > 20000 {
			v.Add(field+".geo.accuracy_km", "%v is outside 0..20000", acc)
		}
		textAt(v, field, ".geo.country", g.GetCountry())
		textAt(v, field, ".geo.region", g.GetRegion())
		textAt(v, field, ".geo.city", g.GetCity())
	}
}

// Event checks one AuthEvent; prefix is its field path ("events[3]").
func Event(v *apierr.Violations, prefix string, e *eventv1.AuthEvent) {
	if e == nil {
		v.Add(prefix, "is required")
		return
	}
	idAt(v, prefix, ".event_id", e.GetEventId(), true)
	idAt(v, prefix, ".tenant", e.GetTenant(), false)
	idAt(v, prefix, ".user_id", e.GetUserId(), true)
	idAt(v, prefix, ".raw_user_id", e.GetRawUserId(), false)
	Enum(v, prefix+".type", int32(e.GetType()), eventv1.EventType_name, true)
	if e.GetTime() == nil {
		v.Add(prefix+".time", "is required")
	} else {
		Time(v, prefix+".time", e.GetTime())
	}
	idAt(v, prefix, ".app_id", e.GetAppId(), false)
	Enum(v, prefix+".factor", int32(e.GetFactor()), eventv1.Factor_name, false)
	idAt(v, prefix, ".session_id", e.GetSessionId(), false)
	Client(v, prefix+".client", e.GetClient())
	Client(v, prefix+".responder", e.GetResponder())
}

// TimeOr returns ts as a time, or def when ts is nil.
func TimeOr(ts *timestamppb.Timestamp, def time.Time) time.Time {
	if ts == nil {
		return def
	}
	return ts.AsTime()
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
