package formats

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// decodeNativeFast decodes the common shape of an AuthEvent's protojson:
// known field names, strings without escapes, enum names, plain numbers,
// RFC 3339 times, each field once. It returns ok false for anything else
// (nulls, escapes, quoted or exponent numbers, enum numbers, unknown or
// repeated fields, any malformed JSON), and the caller decodes that with
// protojson, so its results and error messages stay protojson's. What it
// accepts decodes exactly as protojson would (the native fuzz target
// checks that).
func decodeNativeFast(raw []byte) (*eventv1.AuthEvent, bool) {
	d := fastDec{b: raw}
	e := &eventv1.AuthEvent{}
	var seen uint32
	ok := d.object(func(key []byte) bool {
		var bit uint32
		var ok bool
		switch string(key) {
		case "eventId", "event_id":
			bit, ok = 1<<0, d.string(&e.EventId)
		case "tenant":
			bit, ok = 1<<1, d.string(&e.Tenant)
		case "userId", "user_id":
			bit, ok = 1<<2, d.string(&e.UserId)
		case "type":
			var v int32
			bit, ok = 1<<3, d.enum(eventv1.EventType_value, &v)
			e.Type = eventv1.EventType(v)
		case "time":
			bit = 1 << 4
			e.Time, ok = d.timestamp()
		case "appId", "app_id":
			bit, ok = 1<<5, d.string(&e.AppId)
		case "factor":
			var v int32
			bit, ok = 1<<6, d.enum(eventv1.Factor_value, &v)
			e.Factor = eventv1.Factor(v)
		case "sessionId", "session_id":
			bit, ok = 1<<7, d.string(&e.SessionId)
		case "client":
			bit = 1 << 8
			e.Client, ok = d.client()
		case "source":
			bit = 1 << 9
			e.Source, ok = d.source()
		case "responder":
			bit = 1 << 10
			e.Responder, ok = d.client()
		case "rawUserId", "raw_user_id":
			bit, ok = 1<<11, d.string(&e.RawUserId)
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	})
	if !ok {
		return nil, false
	}
	d.ws()
	return e, d.i == len(d.b)
}

func (d *fastDec) client() (*eventv1.Client, bool) {
	c := &eventv1.Client{}
	var seen uint32
	return c, d.object(func(key []byte) bool {
		var bit uint32
		var ok bool
		switch string(key) {
		case "ip":
			bit, ok = 1<<0, d.string(&c.Ip)
		case "userAgent", "user_agent":
			bit, ok = 1<<1, d.string(&c.UserAgent)
		case "deviceId", "device_id":
			bit, ok = 1<<2, d.string(&c.DeviceId)
		case "asn":
			bit, ok = 1<<3, d.uint32(&c.Asn)
		case "geo":
			bit = 1 << 4
			c.Geo, ok = d.geo()
		case "asOrg", "as_org":
			bit, ok = 1<<5, d.string(&c.AsOrg)
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	})
}

func (d *fastDec) geo() (*eventv1.Geo, bool) {
	g := &eventv1.Geo{}
	var seen uint32
	return g, d.object(func(key []byte) bool {
		var bit uint32
		var ok bool
		switch string(key) {
		case "latitude":
			bit, ok = 1<<0, d.float(&g.Latitude)
		case "longitude":
			bit, ok = 1<<1, d.float(&g.Longitude)
		case "accuracyKm", "accuracy_km":
			bit, ok = 1<<2, d.float(&g.AccuracyKm)
		case "country":
			bit, ok = 1<<3, d.string(&g.Country)
		case "region":
			bit, ok = 1<<4, d.string(&g.Region)
		case "city":
			bit, ok = 1<<5, d.string(&g.City)
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	})
}

func (d *fastDec) source() (*eventv1.Source, bool) {
	s := &eventv1.Source{}
	var seen uint32
	return s, d.object(func(key []byte) bool {
		var bit uint32
		var ok bool
		switch string(key) {
		case "idp":
			bit, ok = 1<<0, d.string(&s.Idp)
		case "rawEventType", "raw_event_type":
			bit, ok = 1<<1, d.string(&s.RawEventType)
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	})
}

// fastDec is a strict JSON scanner for decodeNativeFast: every method
// returns false on input it does not take, never an error.
type fastDec struct {
	b []byte
	i int
}

func (d *fastDec) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *fastDec) consume(c byte) bool {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// object reads an object, calling field with each key to read its value.
func (d *fastDec) object(field func(key []byte) bool) bool {
	if !d.consume('{') {
		return false
	}
	if d.consume('}') {
		return true
	}
	for {
		k, ok := d.rawString()
		if !ok || !d.consume(':') || !field(k) {
			return false
		}
		if d.consume(',') {
			continue
		}
		return d.consume('}')
	}
}

// rawString reads a string without escapes or control characters.
func (d *fastDec) rawString() ([]byte, bool) {
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false
	}
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			d.i = j + 1
			return d.b[start:j], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

func (d *fastDec) string(dst *string) bool {
	s, ok := d.rawString()
	if !ok || !utf8.Valid(s) {
		return false
	}
	*dst = string(s)
	return true
}

func (d *fastDec) enum(values map[string]int32, dst *int32) bool {
	s, ok := d.rawString()
	if !ok {
		return false
	}
	v, ok := values[string(s)]
	*dst = v
	return ok
}

// number reads a JSON number's text.
func (d *fastDec) number() ([]byte, bool) {
	d.ws()
	b, i := d.b, d.i
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() bool {
		n := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > n
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return nil, false
		}
	}
	d.i = i
	return b[start:i], true
}

func (d *fastDec) float(dst *float64) bool {
	s, ok := d.number()
	if !ok {
		return false
	}
	v, err := strconv.ParseFloat(string(s), 64)
	*dst = v
	return err == nil
}

func (d *fastDec) uint32(dst *uint32) bool {
	s, ok := d.number()
	if !ok {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	v, err := strconv.ParseUint(string(s), 10, 32)
	*dst = uint32(v)
	return err == nil
}

// timestamp reads a google.protobuf.Timestamp with protojson's rules.
func (d *fastDec) timestamp() (*timestamppb.Timestamp, bool) {
	b, ok := d.rawString()
	if !ok {
		return nil, false
	}
	s := string(b)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, false
	}
	const minSeconds, maxSeconds = -62135596800, 253402300799 // 0001-01-01, 9999-12-31
	secs := t.Unix()
	if secs < minSeconds || secs > maxSeconds {
		return nil, false
	}
	i := strings.LastIndexByte(s, '.')
	j := strings.LastIndexAny(s, "Z-+")
	if i >= 0 && j >= i && j-i > len(".999999999") {
		return nil, false
	}
	return &timestamppb.Timestamp{Seconds: secs, Nanos: int32(t.Nanosecond())}, true
}
