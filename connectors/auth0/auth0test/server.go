// Package auth0test is a fake Auth0 tenant for tests: the token endpoint
// and the two Management API v2 operations the Auth0 connector calls,
// written from Auth0's Authentication and Management API references.
//
//   - POST /oauth/token, client credentials grant (JSON or form body):
//     200 {"access_token","scope","expires_in","token_type":"Bearer"} with
//     an opaque token; a wrong client id or secret is 401
//     {"error":"access_denied","error_description":"Unauthorized"}, another
//     audience than https://{domain}/api/v2/ is 403 access_denied, another
//     grant 400 unsupported_grant_type.
//   - DELETE /api/v2/users/{user_id}/sessions (scope delete:sessions): 202.
//   - PATCH /api/v2/users/{id} (scope update:users) with {"blocked":...}:
//     200 with the user.
//
// Management calls need "Authorization: Bearer <token>" with a token the
// server issued and that has not expired (else 401), the operation's scope
// (else 403 insufficient_scope) and a known user (else 404
// inexistent_user). Errors have Auth0's shape {"statusCode","error",
// "message","errorCode"}. Management responses carry x-ratelimit-limit,
// -remaining and -reset (Unix seconds) for a per-minute window; past the
// limit a call is 429. Knobs fail requests with 500, hang them, shorten or
// end token lifetimes, and narrow the granted scopes.
package auth0test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"math"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The credentials a new Server accepts.
const (
	DefaultClientID     = "auth0test-client-id"
	DefaultClientSecret = "auth0test-client-secret-Q7"
)

// DefaultRateLimit is the Management API calls a new Server allows a
// minute.
const DefaultRateLimit = 600

// DefaultScopes are the scopes a new Server grants: what the connector
// needs.
var DefaultScopes = []string{"delete:sessions", "update:users"}

// Request is one request the server received, as it arrived.
type Request struct {
	Method string
	// Path is the escaped path, as on the wire.
	Path          string
	Authorization string
	ContentType   string
	Accept        string
	UserAgent     string
	Body          string
}

type issued struct {
	expires time.Time
	scopes  []string
}

// Server is a fake Auth0 tenant. Its methods are safe for concurrent use.
type Server struct {
	// ClientID and ClientSecret are the machine-to-machine application's
	// credentials the server accepts; set them before the first request.
	ClientID     string
	ClientSecret string

	srv  *httptest.Server
	quit chan struct{}
	once sync.Once

	mu            sync.Mutex
	users         map[string]bool // id -> blocked
	revoked       []string
	blocked       []string
	requests      []Request
	tokens        map[string]issued
	tokenRequests int
	lifetime      time.Duration
	scopes        []string
	rejectTokens  bool
	limit         int
	window        time.Time
	count         int
	failNext      int
	hang          bool
}

// NewServer starts a fake tenant with no users, accepting DefaultClientID
// and DefaultClientSecret and issuing tokens valid for a day.
func NewServer() *Server {
	s := &Server{
		ClientID:     DefaultClientID,
		ClientSecret: DefaultClientSecret,
		quit:         make(chan struct{}),
		users:        map[string]bool{},
		tokens:       map[string]issued{},
		lifetime:     24 * time.Hour,
		scopes:       slices.Clone(DefaultScopes),
		limit:        DefaultRateLimit,
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the tenant's base URL (http://127.0.0.1:port).
func (s *Server) URL() string { return s.srv.URL }

// Audience is the Management API identifier tokens must be asked for.
func (s *Server) Audience() string { return s.srv.URL + "/api/v2/" }

// Close releases hung requests and shuts the server down.
func (s *Server) Close() {
	s.once.Do(func() { close(s.quit) })
	s.srv.Close()
}

// AddUser adds a user by Auth0 user_id (auth0|abc).
func (s *Server) AddUser(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[id] = false
}

// Revoked returns the users whose sessions were deleted, in order.
func (s *Server) Revoked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.revoked)
}

// Blocked returns the users set blocked, in order.
func (s *Server) Blocked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.blocked)
}

// IsBlocked reports a user's blocked flag.
func (s *Server) IsBlocked(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[id]
}

// Requests returns every request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// TokenRequests counts the requests to /oauth/token.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenRequests
}

// SetTokenLifetime sets the lifetime of tokens issued from now on
// (expires_in, in whole seconds, at least 1).
func (s *Server) SetTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lifetime = max(d, time.Second)
}

// ExpireTokens ends every token issued so far.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// SetTokensRejected makes the Management API refuse every token with 401
// (on), as after a signing key rotation, or accept issued ones (off).
func (s *Server) SetTokensRejected(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectTokens = on
}

// SetScopes sets the scopes granted to tokens issued from now on.
func (s *Server) SetScopes(scopes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scopes = slices.Clone(scopes)
}

// SetRateLimit sets the Management API calls allowed per minute; past n in
// the current window a call is answered 429. The window starts with the
// first call after this one.
func (s *Server) SetRateLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit, s.count, s.window = n, 0, time.Time{}
}

// FailNext answers the next n requests, on any endpoint, with 500.
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

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	s.requests = append(s.requests, Request{
		Method: r.Method, Path: r.URL.EscapedPath(), Authorization: r.Header.Get("Authorization"),
		ContentType: r.Header.Get("Content-Type"), Accept: r.Header.Get("Accept"), UserAgent: r.Header.Get("User-Agent"),
		Body: string(body),
	})
	hang := s.hang
	fail := s.failNext > 0
	if fail {
		s.failNext--
	}
	s.mu.Unlock()
	if hang {
		select {
		case <-r.Context().Done():
		case <-s.quit:
		}
		return
	}
	if fail {
		mgmtError(w, http.StatusInternalServerError, "Internal Server Error", "")
		return
	}
	path := r.URL.EscapedPath()
	if path == "/oauth/token" {
		s.token(w, r, body)
		return
	}
	if !strings.HasPrefix(path, "/api/v2/") {
		mgmtError(w, http.StatusNotFound, "Not Found", "")
		return
	}
	if !s.admit(w) {
		mgmtError(w, http.StatusTooManyRequests, "Global limit has been reached", "too_many_requests")
		return
	}
	// Route on the escaped path, so an escaped "/" stays inside its segment.
	segs := strings.Split(strings.TrimPrefix(path, "/api/v2/"), "/")
	if len(segs) < 2 || segs[0] != "users" || segs[1] == "" || len(segs) > 3 || (len(segs) == 3 && segs[2] != "sessions") {
		mgmtError(w, http.StatusNotFound, "Not Found", "")
		return
	}
	id, err := url.PathUnescape(segs[1])
	if err != nil {
		mgmtError(w, http.StatusBadRequest, "Invalid request URI. The message will vary depending on the cause.", "invalid_uri")
		return
	}
	sessions := len(segs) == 3
	if (sessions && r.Method != http.MethodDelete) || (!sessions && r.Method != http.MethodPatch) {
		mgmtError(w, http.StatusMethodNotAllowed, "Method Not Allowed", "")
		return
	}
	scope := "update:users"
	if sessions {
		scope = "delete:sessions"
	}
	if !s.authorized(w, r, scope) {
		return
	}
	if sessions {
		s.deleteSessions(w, id)
		return
	}
	s.patchUser(w, r, id, body)
}

// token is POST /oauth/token with the client credentials grant.
func (s *Server) token(w http.ResponseWriter, r *http.Request, body []byte) {
	s.mu.Lock()
	s.tokenRequests++
	s.mu.Unlock()
	if r.Method != http.MethodPost {
		mgmtError(w, http.StatusNotFound, "Not Found", "")
		return
	}
	var p struct {
		GrantType    string `json:"grant_type"`
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		Audience     string `json:"audience"`
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/json":
		if json.Unmarshal(body, &p) != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", "Invalid request body")
			return
		}
	case "application/x-www-form-urlencoded":
		v, err := url.ParseQuery(string(body))
		if err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", "Invalid request body")
			return
		}
		p.GrantType, p.ClientID, p.ClientSecret, p.Audience = v.Get("grant_type"), v.Get("client_id"), v.Get("client_secret"), v.Get("audience")
	default:
		oauthError(w, http.StatusBadRequest, "invalid_request", "Unsupported content type")
		return
	}
	switch {
	case p.GrantType != "client_credentials":
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Grant type not supported")
		return
	case p.ClientID != s.ClientID || p.ClientSecret != s.ClientSecret || s.ClientSecret == "":
		oauthError(w, http.StatusUnauthorized, "access_denied", "Unauthorized")
		return
	case p.Audience != s.Audience():
		oauthError(w, http.StatusForbidden, "access_denied", "Service not enabled within domain: "+p.Audience)
		return
	}
	var raw [24]byte
	_, _ = rand.Read(raw[:])
	tok := hex.EncodeToString(raw[:])
	s.mu.Lock()
	lifetime, scopes := s.lifetime, slices.Clone(s.scopes)
	s.tokens[tok] = issued{expires: time.Now().Add(lifetime), scopes: scopes}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": tok,
		"scope":        strings.Join(scopes, " "),
		"expires_in":   int64(math.Ceil(lifetime.Seconds())),
		"token_type":   "Bearer",
	})
}

// authorized checks the bearer token and its scope, answering the request
// when they fail.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request, scope string) bool {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		mgmtError(w, http.StatusUnauthorized, "Missing authentication", "")
		return false
	}
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	s.mu.Lock()
	t, known := s.tokens[tok]
	reject := s.rejectTokens
	s.mu.Unlock()
	if !ok || !known || reject || !time.Now().Before(t.expires) {
		mgmtError(w, http.StatusUnauthorized, "Invalid token.", "")
		return false
	}
	if !slices.Contains(t.scopes, scope) {
		mgmtError(w, http.StatusForbidden, "Insufficient scope; expected any of: "+scope, "insufficient_scope")
		return false
	}
	return true
}

func (s *Server) deleteSessions(w http.ResponseWriter, id string) {
	s.mu.Lock()
	_, ok := s.users[id]
	if ok {
		s.revoked = append(s.revoked, id)
	}
	s.mu.Unlock()
	if !ok {
		mgmtError(w, http.StatusNotFound, "The user does not exist.", "inexistent_user")
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) patchUser(w http.ResponseWriter, r *http.Request, id string, body []byte) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		mgmtError(w, http.StatusBadRequest, "Invalid request payload input", "invalid_body")
		return
	}
	var p map[string]json.RawMessage
	if json.Unmarshal(body, &p) != nil || p == nil {
		mgmtError(w, http.StatusBadRequest, "Invalid request payload JSON format", "invalid_body")
		return
	}
	var blocked *bool
	if raw, ok := p["blocked"]; ok {
		var b bool
		if json.Unmarshal(raw, &b) != nil {
			mgmtError(w, http.StatusBadRequest, "Payload validation error: 'Expected type boolean but found type "+string(raw)+"' on property blocked.", "invalid_body")
			return
		}
		blocked = &b
	}
	s.mu.Lock()
	state, ok := s.users[id]
	if ok && blocked != nil {
		state = *blocked
		s.users[id] = state
		if state {
			s.blocked = append(s.blocked, id)
		}
	}
	s.mu.Unlock()
	if !ok {
		mgmtError(w, http.StatusNotFound, "The user does not exist.", "inexistent_user")
		return
	}
	provider, userID, _ := strings.Cut(id, "|")
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"user_id":    id,
		"blocked":    state,
		"created_at": "2024-01-15T09:30:00.000Z",
		"updated_at": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		"identities": []map[string]any{{"provider": provider, "user_id": userID, "connection": "Username-Password-Authentication", "isSocial": false}},
	})
}

// admit counts a Management API call against the per-minute window and
// sets Auth0's rate-limit headers; it reports whether the call is within
// the limit.
func (s *Server) admit(w http.ResponseWriter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.window.IsZero() || !now.Before(s.window.Add(time.Minute)) {
		s.window, s.count = now, 0
	}
	s.count++
	h := w.Header()
	// Auth0 sends these names in lower case.
	h["x-ratelimit-limit"] = []string{strconv.Itoa(s.limit)}
	h["x-ratelimit-remaining"] = []string{strconv.Itoa(max(s.limit-s.count, 0))}
	h["x-ratelimit-reset"] = []string{strconv.FormatInt(s.window.Add(time.Minute).Unix(), 10)}
	return s.count <= s.limit
}

// mgmtError writes the Management API's error object.
func mgmtError(w http.ResponseWriter, status int, message, code string) {
	e := map[string]any{"statusCode": status, "error": http.StatusText(status), "message": message}
	if code != "" {
		e["errorCode"] = code
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(e)
}

// oauthError writes the Authentication API's OAuth error object.
func oauthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}
