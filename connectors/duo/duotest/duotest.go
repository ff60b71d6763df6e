// Package duotest is a fake of the Duo Admin API calls the Duo connector
// makes, written from Duo's documentation: it verifies each request's
// signature (the canonical request of Date, method, host, path and sorted
// parameters, HMAC-SHA512 with the secret key, HTTP Basic ikey:signature)
// and its Date, and serves Retrieve Users by username, Modify User and the
// v2 Authentication Logs (mintime, maxtime, limit, sort and next_offset
// paging) with Duo's response envelopes, error codes, rate limit and
// failures.
package duotest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// MaxSkew is how far a request's Date may be from the fake's clock.
const MaxSkew = 5 * time.Minute

// Statuses Modify User accepts (Duo sets "locked out" itself).
var settable = map[string]bool{"active": true, "bypass": true, "disabled": true}

// User is a Duo user of the fake.
type User struct {
	UserID   string
	Username string
	Aliases  []string
	Status   string
}

// StatusChange is one Modify User call that set a status.
type StatusChange struct {
	UserID, Username, From, To string
}

// Request is one request the fake answered.
type Request struct {
	Method string
	// Path is the path as it came over the wire, escapes kept.
	Path string
	// Query is the raw query.
	Query string
	// Params are the signed parameters: the query of a GET, the form body
	// of a POST.
	Params url.Values
	Status int
	// Code is Duo's error code, 0 on success.
	Code int
}

type failure struct {
	status     int
	retryAfter string
}

// Server is the fake.
type Server struct {
	URL  string // http://127.0.0.1:port
	Host string // 127.0.0.1:port, the host requests are signed for
	IKey string
	SKey string

	srv    *httptest.Server
	closed chan struct{}
	once   sync.Once

	mu           sync.Mutex
	users        []*User
	authlogs     []authLog
	changes      []StatusChange
	log          []Request
	fail         []failure
	read, write  bool
	readLog      bool
	offsetOnFull bool
	hang         bool
	hugeBody     bool
	ignoreFilter bool
	leakSecret   bool
}

// New starts a fake with fresh keys and the Admin API read and write
// resource and read log permissions granted.
func New() *Server {
	s := &Server{
		IKey:    "DI" + upperAlnum(18),
		SKey:    randomText(40),
		closed:  make(chan struct{}),
		read:    true,
		write:   true,
		readLog: true,
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	s.Host = strings.TrimPrefix(s.srv.URL, "http://")
	return s
}

// Close stops the fake, releasing hung requests.
func (s *Server) Close() {
	s.once.Do(func() { close(s.closed) })
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// AddUser adds an active user and returns its user_id.
func (s *Server) AddUser(username string, aliases ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := &User{UserID: "DU" + upperAlnum(18), Username: username, Aliases: aliases, Status: "active"}
	s.users = append(s.users, u)
	return u.UserID
}

// User returns a copy of the user with user_id id.
func (s *Server) User(id string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if u.UserID == id {
			return *u, true
		}
	}
	return User{}, false
}

// StatusChanges lists the status changes, in order.
func (s *Server) StatusChanges() []StatusChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]StatusChange(nil), s.changes...)
}

// Requests lists the requests answered, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// SetPermissions sets the Admin API application's "Grant read resource"
// and "Grant write resource" permissions; a call lacking its permission is
// answered 403, code 40301.
func (s *Server) SetPermissions(readResource, writeResource bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.read, s.write = readResource, writeResource
}

// RateLimit answers the next n authenticated requests with 429, code
// 42901, and Retry-After: retryAfter when not empty.
func (s *Server) RateLimit(n int, retryAfter string) {
	s.FailNext(n, http.StatusTooManyRequests, retryAfter)
}

// FailNext answers the next n authenticated requests with status.
func (s *Server) FailNext(n, status int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.fail = append(s.fail, failure{status, retryAfter})
	}
}

// SetHang makes every request hang until the client gives up or the fake
// closes.
func (s *Server) SetHang(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang = on
}

// SetHugeBody makes every authenticated request answer 200 with a body of
// several MiB.
func (s *Server) SetHugeBody(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hugeBody = on
}

// IgnoreUsernameFilter makes Retrieve Users answer every user whatever
// username was asked for, as if the parameter were lost on the way.
func (s *Server) IgnoreUsernameFilter(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ignoreFilter = on
}

// LeakSecret makes error answers carry the secret key in message_detail (a
// hostile or broken server).
func (s *Server) LeakSecret(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leakSecret = on
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	hang := s.hang
	s.mu.Unlock()
	if hang {
		select {
		case <-r.Context().Done():
		case <-s.closed:
		}
		return
	}
	rec := Request{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery}
	status, code := s.handle(w, r, &rec)
	rec.Status, rec.Code = status, code
	s.mu.Lock()
	s.log = append(s.log, rec)
	s.mu.Unlock()
}

func (s *Server) fail4(w http.ResponseWriter, status, code int, msg, detail string) (int, int) {
	body := map[string]any{"stat": "FAIL", "code": code, "message": msg}
	s.mu.Lock()
	leak := s.leakSecret
	s.mu.Unlock()
	if leak {
		detail += " skey=" + s.SKey
	}
	if detail != "" {
		body["message_detail"] = detail
	}
	writeJSON(w, status, body)
	return status, code
}

func ok(w http.ResponseWriter, response any, metadata any) (int, int) {
	body := map[string]any{"stat": "OK", "response": response}
	if metadata != nil {
		body["metadata"] = metadata
	}
	writeJSON(w, http.StatusOK, body)
	return http.StatusOK, 0
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request, rec *Request) (int, int) {
	// The signed parameters.
	var params url.Values
	switch r.Method {
	case http.MethodGet, http.MethodDelete:
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return s.fail4(w, http.StatusBadRequest, 40002, "Invalid request parameters", "")
		}
		params = q
	case http.MethodPost, http.MethodPut:
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			return s.fail4(w, http.StatusBadRequest, 40002, "Invalid request parameters", "Content-Type")
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return s.fail4(w, http.StatusBadRequest, 40002, "Invalid request parameters", "")
		}
		form, err := url.ParseQuery(string(b))
		if err != nil {
			return s.fail4(w, http.StatusBadRequest, 40002, "Invalid request parameters", "")
		}
		params = form
	default:
		return s.fail4(w, http.StatusMethodNotAllowed, 40501, "Method not allowed", "")
	}
	rec.Params = params

	if status, code := s.authenticate(w, r, params); status != 0 {
		return status, code
	}

	s.mu.Lock()
	var f *failure
	if len(s.fail) > 0 {
		f = &s.fail[0]
		s.fail = s.fail[1:]
	}
	huge := s.hugeBody
	s.mu.Unlock()
	if f != nil {
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		switch {
		case f.status == http.StatusTooManyRequests:
			return s.fail4(w, f.status, 42901, "Too Many Requests", "")
		case f.status >= 500:
			return s.fail4(w, f.status, f.status*100+1, "Unknown internal server error", "")
		default:
			return s.fail4(w, f.status, f.status*100, http.StatusText(f.status), "")
		}
	}
	if huge {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"stat":"OK","response":[],"pad":"`)
		pad := strings.Repeat("x", 64<<10)
		for range 64 { // 4 MiB
			_, _ = io.WriteString(w, pad)
		}
		_, _ = io.WriteString(w, `"}`)
		return http.StatusOK, 0
	}

	path := r.URL.EscapedPath()
	switch {
	case path == AuthLogsPath && r.Method == http.MethodGet:
		return s.authLogs(w, params)
	case path == "/admin/v1/users" && r.Method == http.MethodGet:
		return s.retrieveUsers(w, params)
	case strings.HasPrefix(path, "/admin/v1/users/") && strings.Count(path, "/") == 4:
		id, err := url.PathUnescape(strings.TrimPrefix(path, "/admin/v1/users/"))
		if err != nil {
			break
		}
		switch r.Method {
		case http.MethodGet:
			return s.retrieveUser(w, id)
		case http.MethodPost:
			return s.modifyUser(w, id, params)
		}
	}
	return s.fail4(w, http.StatusNotFound, 40401, "Resource not found", "")
}

// authenticate checks the Basic credentials, the signature and the Date;
// it answers and returns the status of a refusal, 0 when the request is
// authentic.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, params url.Values) (int, int) {
	ikey, sig, hasAuth := r.BasicAuth()
	date := r.Header.Get("Date")
	if !hasAuth || date == "" {
		return s.fail4(w, http.StatusUnauthorized, 40101, "Missing request credentials", "")
	}
	if ikey != s.IKey {
		return s.fail4(w, http.StatusUnauthorized, 40102, "Invalid integration key in request credentials", "")
	}
	want := signature(s.SKey, canonicalRequest(date, r.Method, r.Host, r.URL.EscapedPath(), params))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return s.fail4(w, http.StatusUnauthorized, 40103, "Invalid signature in request credentials", "")
	}
	t, err := mail.ParseDate(date)
	if err != nil {
		return s.fail4(w, http.StatusUnauthorized, 40105, "Request date is not an RFC 2822 date", "")
	}
	if d := time.Since(t); d > MaxSkew || d < -MaxSkew {
		return s.fail4(w, http.StatusUnauthorized, 40105, "Request timestamp is too far from the server's clock", "")
	}
	return 0, 0
}

// canonicalRequest is written apart from the connector's: the parameters
// are decoded, then each key and value re-encoded with url.QueryEscape,
// whose only departure from Duo's encoding is a space as '+'.
func canonicalRequest(date, method, host, path string, params url.Values) string {
	keys := make([]string, 0, len(params))
	enc := map[string][]string{}
	for k, vs := range params {
		ek := duoEscape(k)
		keys = append(keys, ek)
		for _, v := range vs {
			enc[ek] = append(enc[ek], duoEscape(v))
		}
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vs := enc[k]
		sort.Strings(vs)
		for _, v := range vs {
			parts = append(parts, k+"="+v)
		}
	}
	return date + "\n" + strings.ToUpper(method) + "\n" + strings.ToLower(host) + "\n" + path + "\n" + strings.Join(parts, "&")
}

func duoEscape(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

func signature(skey, canon string) string {
	m := hmac.New(sha512.New, []byte(skey))
	io.WriteString(m, canon)
	return hex.EncodeToString(m.Sum(nil))
}

func (s *Server) allowed(write bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if write {
		return s.write
	}
	return s.read
}

func (s *Server) retrieveUsers(w http.ResponseWriter, params url.Values) (int, int) {
	if !s.allowed(false) {
		return s.fail4(w, http.StatusForbidden, 40301, "Access forbidden", "")
	}
	s.mu.Lock()
	var out []map[string]any
	for _, u := range s.users {
		if _, filtered := params["username"]; filtered && !s.ignoreFilter && !named(u, params.Get("username")) {
			continue
		}
		out = append(out, userJSON(u))
	}
	s.mu.Unlock()
	if out == nil {
		out = []map[string]any{}
	}
	return ok(w, out, map[string]any{"total_objects": len(out)})
}

func named(u *User, name string) bool {
	if strings.EqualFold(u.Username, name) {
		return true
	}
	for _, a := range u.Aliases {
		if strings.EqualFold(a, name) {
			return true
		}
	}
	return false
}

func (s *Server) retrieveUser(w http.ResponseWriter, id string) (int, int) {
	if !s.allowed(false) {
		return s.fail4(w, http.StatusForbidden, 40301, "Access forbidden", "")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if u.UserID == id {
			return ok(w, userJSON(u), nil)
		}
	}
	return s.fail4Locked(w, http.StatusNotFound, 40401, "Resource not found")
}

// fail4Locked is fail4 for a caller holding s.mu, without the leak knob.
func (s *Server) fail4Locked(w http.ResponseWriter, status, code int, msg string) (int, int) {
	writeJSON(w, status, map[string]any{"stat": "FAIL", "code": code, "message": msg})
	return status, code
}

func (s *Server) modifyUser(w http.ResponseWriter, id string, params url.Values) (int, int) {
	if !s.allowed(true) {
		return s.fail4(w, http.StatusForbidden, 40301, "Access forbidden", "")
	}
	status, setStatus := params["status"]
	if setStatus && (len(status) != 1 || !settable[status[0]]) {
		return s.fail4(w, http.StatusBadRequest, 40002, "Invalid request parameters", "status")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if u.UserID != id {
			continue
		}
		if setStatus {
			s.changes = append(s.changes, StatusChange{UserID: u.UserID, Username: u.Username, From: u.Status, To: status[0]})
			u.Status = status[0]
		}
		return ok(w, userJSON(u), nil)
	}
	return s.fail4Locked(w, http.StatusNotFound, 40401, "Resource not found")
}

func userJSON(u *User) map[string]any {
	aliases := map[string]any{}
	m := map[string]any{
		"user_id":     u.UserID,
		"username":    u.Username,
		"status":      u.Status,
		"realname":    "",
		"email":       "",
		"is_enrolled": true,
		"created":     1489612729,
		"last_login":  nil,
		"notes":       "",
		"phones":      []any{},
		"tokens":      []any{},
		"groups":      []any{},
	}
	for i := range 4 {
		k := fmt.Sprintf("alias%d", i+1)
		if i < len(u.Aliases) {
			m[k] = u.Aliases[i]
			aliases[k] = u.Aliases[i]
		} else {
			m[k] = nil
		}
	}
	m["aliases"] = aliases
	return m
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func upperAlnum(n int) string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}

func randomText(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}
