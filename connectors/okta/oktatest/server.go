// Package oktatest is a fake Okta org for tests: the Management API
// operations the Okta connector and its System Log poller call, written
// from Okta's API reference.
//
//   - GET /api/v1/users/{id}: "Retrieve a user" by id or login (logins
//     compare ignoring case; a login with a "/" cannot be fetched, as Okta
//     documents). 200 with the User object, 404 E0000007.
//
//   - DELETE /api/v1/users/{userId}/sessions: "Revoke all user sessions" by
//     Okta id only, optional oauthTokens=true|false. 204, 404 E0000007.
//
//   - GET /api/v1/logs: "List all System Log events", as polled:
//     since (RFC 3339), sortOrder=ASCENDING, limit (default 100, at most
//     1000), after (the opaque token of the Link rel="next" header, which
//     every answer carries, even an empty one, as Okta does when polling).
//     Events are returned in the order they were added (Okta's persistence
//     order); since filters by their published time.
//
// Every request must carry "Authorization: SSWS <Token>" (a Bearer token,
// another token or none is 401 E0000011). Other methods on those paths are
// 405 E0000022, other paths 404. Every response carries Okta's
// X-Rate-Limit-Limit, -Remaining and -Reset headers for a per-minute
// window; past the limit a request is 429 E0000047. Knobs fail requests
// with 500 E0000009 or hang them, for the connector's retry and timeout
// tests.
package oktatest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultToken is the API token a new Server accepts.
const DefaultToken = "00oktatest-api-token-Z9"

// DefaultRateLimit is the per-minute limit a new Server enforces (Okta's
// default for the users endpoints of many orgs).
const DefaultRateLimit = 600

// Revocation is a DELETE /api/v1/users/{userId}/sessions the server
// accepted.
type Revocation struct {
	UserID      string
	OAuthTokens bool
}

// Request is one request the server received, as it arrived.
type Request struct {
	Method string
	// Path is the escaped path, as on the wire.
	Path          string
	RawQuery      string
	Accept        string
	Authorization string
	UserAgent     string
}

type user struct {
	id, login string
}

// Server is a fake Okta org. Its methods are safe for concurrent use.
type Server struct {
	// Token is the API token the server accepts; set it before the first
	// request.
	Token string

	srv  *httptest.Server
	quit chan struct{}
	once sync.Once

	mu       sync.Mutex
	byID     map[string]user
	byLogin  map[string]user // lower-cased login
	revoked  []Revocation
	requests []Request
	limit    int
	window   time.Time
	count    int
	failNext int
	hang     bool
	now      func() time.Time
	logs     []logEvent
	linkBase string
}

// logEvent is a System Log event as added, with its published time.
type logEvent struct {
	raw       json.RawMessage
	published time.Time
}

// NewServer starts a fake org with no users, accepting DefaultToken.
func NewServer() *Server {
	s := &Server{
		Token:   DefaultToken,
		quit:    make(chan struct{}),
		byID:    map[string]user{},
		byLogin: map[string]user{},
		limit:   DefaultRateLimit,
		now:     time.Now,
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the org URL (http://127.0.0.1:port).
func (s *Server) URL() string { return s.srv.URL }

// Close releases hung requests and shuts the server down.
func (s *Server) Close() {
	s.once.Do(func() { close(s.quit) })
	s.srv.Close()
}

// AddUser adds a user with an Okta id and a login.
func (s *Server) AddUser(id, login string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := user{id: id, login: login}
	s.byID[id] = u
	s.byLogin[strings.ToLower(login)] = u
}

// Revoked returns the session revocations accepted so far, in order.
func (s *Server) Revoked() []Revocation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Revocation(nil), s.revoked...)
}

// Requests returns every request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// SetRateLimit sets the requests allowed per minute; past n in the current
// window a request is answered 429. The window starts with the first
// request after the call.
func (s *Server) SetRateLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit, s.count, s.window = n, 0, time.Time{}
}

// FailNext answers the next n requests with 500 E0000009.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = n
}

// SetHang makes every request hang until the client gives up or the server
// closes (on), or be answered again (off).
func (s *Server) SetHang(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang = on
}

// AddLogEvent appends a System Log event (one JSON object with at least
// "published"); it panics on an event without a valid published time.
func (s *Server) AddLogEvent(event []byte) {
	var e struct {
		Published time.Time `json:"published"`
	}
	if err := json.Unmarshal(event, &e); err != nil || e.Published.IsZero() {
		panic(fmt.Sprintf("oktatest: AddLogEvent: no published time in %s", event))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logs = append(s.logs, logEvent{raw: append(json.RawMessage(nil), event...), published: e.Published})
}

// SetLogLinkBase makes the Link headers of /api/v1/logs point at base
// (scheme and host, "https://evil.example") instead of the server: a
// hostile or compromised answer. Empty restores the server's own URL.
func (s *Server) SetLogLinkBase(base string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.linkBase = base
}

// afterToken and parseAfter make Okta's opaque "after" token: here the
// count of events already read, disguised.
func afterToken(n int) string { return fmt.Sprintf("oktatest%08x.%d", n*7919, n) }

func parseAfter(tok string) (int, bool) {
	var a, n int
	if _, err := fmt.Sscanf(tok, "oktatest%08x.%d", &a, &n); err != nil || a != n*7919 || n < 0 || afterToken(n) != tok {
		return 0, false
	}
	return n, true
}

func (s *Server) listLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "E0000001", "Api validation failed: limit")
			return
		}
		limit = min(n, 1000)
	}
	if so := q.Get("sortOrder"); so != "" && so != "ASCENDING" {
		writeError(w, http.StatusBadRequest, "E0000001", "Api validation failed: sortOrder (the fake supports ASCENDING)")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	start := 0
	var since time.Time
	if tok := q.Get("after"); tok != "" {
		n, ok := parseAfter(tok)
		if !ok || n > len(s.logs) {
			writeError(w, http.StatusBadRequest, "E0000001", "Api validation failed: after")
			return
		}
		start = n
	} else {
		since = s.now().Add(-7 * 24 * time.Hour)
		if v := q.Get("since"); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				writeError(w, http.StatusBadRequest, "E0000001", "Api validation failed: since")
				return
			}
			since = t
		}
	}
	out := []json.RawMessage{}
	next := start
	for i := start; i < len(s.logs) && len(out) < limit; i++ {
		next = i + 1
		if !since.IsZero() && s.logs[i].published.Before(since) {
			continue
		}
		out = append(out, s.logs[i].raw)
	}
	if len(out) == 0 && start == 0 && q.Get("after") == "" {
		// Nothing since: the next read starts after every event so far.
		next = len(s.logs)
	}
	base := s.linkBase
	if base == "" {
		base = s.URL()
	}
	self := base + "/api/v1/logs?" + r.URL.RawQuery
	nq := url.Values{"after": {afterToken(next)}, "limit": {strconv.Itoa(limit)}, "sortOrder": {"ASCENDING"}}
	w.Header().Add("Link", "<"+self+`>; rel="self"`)
	w.Header().Add("Link", "<"+base+"/api/v1/logs?"+nq.Encode()+`>; rel="next"`)
	_ = json.NewEncoder(w).Encode(out)
}

// oktaError is Okta's error object.
type oktaError struct {
	ErrorCode    string   `json:"errorCode"`
	ErrorSummary string   `json:"errorSummary"`
	ErrorLink    string   `json:"errorLink"`
	ErrorID      string   `json:"errorId"`
	ErrorCauses  []string `json:"errorCauses"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, Request{
		Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
		Accept: r.Header.Get("Accept"), Authorization: r.Header.Get("Authorization"), UserAgent: r.Header.Get("User-Agent"),
	})
	hang := s.hang
	s.mu.Unlock()
	if hang {
		select {
		case <-r.Context().Done():
		case <-s.quit:
		}
		return
	}

	w.Header().Set("Content-Type", "application/json")
	if !s.admit(w) {
		writeError(w, http.StatusTooManyRequests, "E0000047", "API call exceeded rate limit due to too many requests.")
		return
	}
	if s.takeFailure() {
		writeError(w, http.StatusInternalServerError, "E0000009", "Internal Server Error")
		return
	}

	if r.URL.EscapedPath() == "/api/v1/logs" {
		switch {
		case r.Method != http.MethodGet:
			writeError(w, http.StatusMethodNotAllowed, "E0000022", "The endpoint does not support the provided HTTP method")
		case r.Header.Get("Authorization") != "SSWS "+s.Token || s.Token == "":
			writeError(w, http.StatusUnauthorized, "E0000011", "Invalid token provided")
		default:
			s.listLogs(w, r)
		}
		return
	}
	// Route on the escaped path, so an escaped "/" stays inside its segment.
	segs := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	if len(segs) < 4 || segs[0] != "api" || segs[1] != "v1" || segs[2] != "users" || segs[3] == "" ||
		len(segs) > 5 || (len(segs) == 5 && segs[4] != "sessions") {
		writeError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+r.URL.EscapedPath()+" (PathNotFound)")
		return
	}
	id, err := url.PathUnescape(segs[3])
	if err != nil {
		writeError(w, http.StatusBadRequest, "E0000001", "Api validation failed: userId")
		return
	}
	sessions := len(segs) == 5
	if (!sessions && r.Method != http.MethodGet) || (sessions && r.Method != http.MethodDelete) {
		writeError(w, http.StatusMethodNotAllowed, "E0000022", "The endpoint does not support the provided HTTP method")
		return
	}
	if r.Header.Get("Authorization") != "SSWS "+s.Token || s.Token == "" {
		writeError(w, http.StatusUnauthorized, "E0000011", "Invalid token provided")
		return
	}
	if sessions {
		s.revokeSessions(w, r, id)
		return
	}
	s.getUser(w, id)
}

// admit counts a request against the per-minute window and sets Okta's
// rate-limit headers; it reports whether the request is within the limit.
func (s *Server) admit(w http.ResponseWriter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.window.IsZero() || !now.Before(s.window.Add(time.Minute)) {
		s.window, s.count = now, 0
	}
	s.count++
	remaining := max(s.limit-s.count, 0)
	h := w.Header()
	h.Set("X-Rate-Limit-Limit", strconv.Itoa(s.limit))
	h.Set("X-Rate-Limit-Remaining", strconv.Itoa(remaining))
	h.Set("X-Rate-Limit-Reset", strconv.FormatInt(s.window.Add(time.Minute).Unix(), 10))
	return s.count <= s.limit
}

func (s *Server) takeFailure() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failNext > 0 {
		s.failNext--
		return true
	}
	return false
}

// find resolves an id or login as GET /api/v1/users/{id} does.
func (s *Server) find(idOrLogin string) (user, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.byID[idOrLogin]; ok {
		return u, true
	}
	if strings.Contains(idOrLogin, "/") {
		// "Logins with a / character can only be fetched by id."
		return user{}, false
	}
	u, ok := s.byLogin[strings.ToLower(idOrLogin)]
	return u, ok
}

func (s *Server) getUser(w http.ResponseWriter, idOrLogin string) {
	u, ok := s.find(idOrLogin)
	if !ok {
		writeError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+idOrLogin+" (User)")
		return
	}
	created := "2024-01-15T09:30:00.000Z"
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id":              u.id,
		"status":          "ACTIVE",
		"created":         created,
		"activated":       created,
		"statusChanged":   created,
		"lastLogin":       created,
		"lastUpdated":     created,
		"passwordChanged": created,
		"type":            map[string]string{"id": "oty1test"},
		"profile":         map[string]string{"login": u.login, "email": u.login},
		"credentials":     map[string]any{"provider": map[string]string{"type": "OKTA", "name": "OKTA"}},
		"_links":          map[string]any{"self": map[string]string{"href": s.URL() + "/api/v1/users/" + u.id}},
	})
}

func (s *Server) revokeSessions(w http.ResponseWriter, r *http.Request, userID string) {
	q := r.URL.Query()
	oauth := false
	if v := q.Get("oauthTokens"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "E0000001", "Api validation failed: oauthTokens")
			return
		}
		oauth = b
	}
	s.mu.Lock()
	_, ok := s.byID[userID] // by id only: userId is "ID of an existing Okta user"
	if ok {
		s.revoked = append(s.revoked, Revocation{UserID: userID, OAuthTokens: oauth})
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+userID+" (User)")
		return
	}
	w.Header().Del("Content-Type")
	w.WriteHeader(http.StatusNoContent)
}

var errorSeq struct {
	sync.Mutex
	n int
}

func writeError(w http.ResponseWriter, status int, code, summary string) {
	errorSeq.Lock()
	errorSeq.n++
	id := fmt.Sprintf("oaetest%012d", errorSeq.n)
	errorSeq.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(oktaError{ErrorCode: code, ErrorSummary: summary, ErrorLink: code, ErrorID: id, ErrorCauses: []string{}})
}
