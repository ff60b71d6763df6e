package duotest

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// AuthLogsPath is the v2 Authentication Logs endpoint.
const AuthLogsPath = "/admin/v2/logs/authentication"

// Limits of the Authentication Logs endpoint, as Duo documents them.
const (
	DefaultAuthLogLimit = 100
	MaxAuthLogLimit     = 1000
)

type authLog struct {
	ms   int64 // the record's time, Unix milliseconds
	txid string
	rec  map[string]any
}

// AuthLog returns a v2 authentication log record as Duo writes one: a
// denied Duo Push (no response) by user at the time at, with the given
// txid. Callers may change any field before AddAuthLog.
func AuthLog(txid, user string, at time.Time) map[string]any {
	at = at.UTC()
	return map[string]any{
		"access_device": map[string]any{
			"browser": "Chrome", "browser_version": "121.0", "epkey": "EP65MWZWXA10AK3QJ9UO",
			"hostname": nil, "ip": "198.51.100.77", "os": "Windows", "os_version": "10",
			"location": map[string]any{"city": "Reykjavik", "country": "Iceland", "state": "Capital Region"},
		},
		"adaptive_trust_assessments": map[string]any{},
		"alias":                      "",
		"application":                map[string]any{"key": "DIY7JMZ3HA2OMLGFGZSN", "name": "VPN Gateway"},
		"auth_device": map[string]any{
			"ip": "192.0.2.44", "key": "DPFZRS9FB0D46QFTM891", "name": "My iPhone (734-555-2342)",
			"location": map[string]any{"city": "Lisbon", "country": "Portugal", "state": "Lisbon"},
		},
		"email":                   user,
		"event_type":              "authentication",
		"factor":                  "duo_push",
		"isotimestamp":            at.Format("2006-01-02T15:04:05.000000+00:00"),
		"ood_software":            nil,
		"reason":                  "no_response",
		"result":                  "denied",
		"timestamp":               at.Unix(),
		"trusted_endpoint_status": "not trusted",
		"txid":                    txid,
		"user":                    map[string]any{"groups": []any{}, "key": "DU3KC77WJ06Y5HIV7XKQ", "name": user},
	}
}

// AddAuthLog adds an authentication log record. Its time is its
// "isotimestamp" (RFC 3339, to the millisecond), else its "timestamp" (Unix
// seconds); its "txid" must be set. The record is served as given.
func (s *Server) AddAuthLog(record map[string]any) {
	txid, _ := record["txid"].(string)
	if txid == "" {
		panic("duotest: AddAuthLog: the record has no txid")
	}
	var ms int64
	switch {
	case record["isotimestamp"] != nil:
		t, err := time.Parse(time.RFC3339Nano, fmt.Sprint(record["isotimestamp"]))
		if err != nil {
			panic("duotest: AddAuthLog: " + err.Error())
		}
		ms = t.UnixMilli()
	default:
		sec, err := strconv.ParseInt(fmt.Sprint(record["timestamp"]), 10, 64)
		if err != nil {
			panic("duotest: AddAuthLog: no isotimestamp and no timestamp")
		}
		ms = sec * 1000
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authlogs = append(s.authlogs, authLog{ms: ms, txid: txid, rec: record})
}

// SetLogPermission sets the Admin API application's "Grant read log"
// permission; without it the Authentication Logs are answered 403, code
// 40301.
func (s *Server) SetLogPermission(grantReadLog bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readLog = grantReadLog
}

// OffsetOnFullPage makes a page of exactly limit records carry a
// next_offset even when no record follows (the next page is then empty, its
// next_offset null), as a server that does not look ahead answers.
func (s *Server) OffsetOnFullPage(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offsetOnFull = on
}

// AuthLogRequests lists the parameters of the Authentication Logs
// requests answered, in order (refused ones included).
func (s *Server) AuthLogRequests() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []url.Values
	for _, r := range s.log {
		if r.Path == AuthLogsPath {
			out = append(out, r.Params)
		}
	}
	return out
}

func (s *Server) badParam(w http.ResponseWriter, name string) (int, int) {
	return s.fail4(w, http.StatusBadRequest, 40003, "Invalid argument", name)
}

// msParam reads a 13-digit Unix-milliseconds parameter.
func msParam(params url.Values, name string) (int64, bool) {
	vs := params[name]
	if len(vs) != 1 || len(vs[0]) != 13 {
		return 0, false
	}
	v, err := strconv.ParseInt(vs[0], 10, 64)
	return v, err == nil && v > 0
}

// authLogs serves GET /admin/v2/logs/authentication: records with
// mintime <= time <= maxtime, ordered by time (ties by txid), limit at a
// time; when more remain, metadata.next_offset is the last record's
// [time in ms, txid], which the next request sends back comma-joined with
// the same mintime and maxtime.
func (s *Server) authLogs(w http.ResponseWriter, params url.Values) (int, int) {
	s.mu.Lock()
	granted := s.readLog
	s.mu.Unlock()
	if !granted {
		return s.fail4(w, http.StatusForbidden, 40301, "Access forbidden", "")
	}
	mintime, ok1 := msParam(params, "mintime")
	if !ok1 {
		return s.badParam(w, "mintime")
	}
	maxtime, ok2 := msParam(params, "maxtime")
	if !ok2 || maxtime <= mintime {
		return s.badParam(w, "maxtime")
	}
	limit := DefaultAuthLogLimit
	if vs, set := params["limit"]; set {
		n, err := strconv.Atoi(strings.Join(vs, ","))
		if err != nil || n < 1 || n > MaxAuthLogLimit {
			return s.badParam(w, "limit")
		}
		limit = n
	}
	desc := true
	if vs, set := params["sort"]; set {
		switch strings.Join(vs, ",") {
		case "ts:asc":
			desc = false
		case "ts:desc":
		default:
			return s.badParam(w, "sort")
		}
	}
	var after *authLog
	if vs, set := params["next_offset"]; set {
		parts := strings.Split(strings.Join(vs, ","), ",")
		if len(parts) != 2 || parts[1] == "" {
			return s.badParam(w, "next_offset")
		}
		ms, err := strconv.ParseInt(parts[0], 10, 64)
		if err != nil {
			return s.badParam(w, "next_offset")
		}
		after = &authLog{ms: ms, txid: parts[1]}
	}
	order := func(a, b authLog) int {
		c := cmp.Or(cmp.Compare(a.ms, b.ms), strings.Compare(a.txid, b.txid))
		if desc {
			return -c
		}
		return c
	}

	s.mu.Lock()
	offsetOnFull := s.offsetOnFull
	var match []authLog
	for _, l := range s.authlogs {
		if mintime <= l.ms && l.ms <= maxtime {
			match = append(match, l)
		}
	}
	s.mu.Unlock()
	slices.SortStableFunc(match, order)
	total := len(match)
	if after != nil {
		i := 0
		for i < len(match) && order(match[i], *after) <= 0 {
			i++
		}
		match = match[i:]
	}
	var next any
	if len(match) > limit || offsetOnFull && len(match) == limit {
		match = match[:limit]
		last := match[len(match)-1]
		next = []string{strconv.FormatInt(last.ms, 10), last.txid}
	}
	logs := make([]map[string]any, 0, len(match))
	for _, l := range match {
		logs = append(logs, l.rec)
	}
	return ok(w, map[string]any{
		"authlogs": logs,
		"metadata": map[string]any{"next_offset": next, "total_objects": total},
	}, nil)
}
