// Package entratest is a fake of the Microsoft identity platform's token
// endpoint and of the Microsoft Graph calls the Entra connector makes,
// written from Microsoft's documentation: the client credentials grant
// (POST /{tenant}/oauth2/v2.0/token), user: revokeSignInSessions, GET user,
// riskyUser: confirmCompromised and List signIns (GET /auditLogs/signIns,
// newest first, $filter=createdDateTime ge, $top, @odata.nextLink paging
// with an opaque $skiptoken), with Graph's error bodies, its
// permissions, throttling and failures.
package entratest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Graph application permissions the fake knows.
const (
	// UserRevokeSessions is the least privileged permission of
	// revokeSignInSessions.
	UserRevokeSessions = "User.RevokeSessions.All"
	// IdentityRiskyUserReadWrite is the only application permission of
	// confirmCompromised.
	IdentityRiskyUserReadWrite = "IdentityRiskyUser.ReadWrite.All"
	// UserRead is the least privileged permission of GET /users/{id}.
	UserRead = "User.Read.All"
	// AuditLogRead is the permission of GET /auditLogs/signIns.
	AuditLogRead = "AuditLog.Read.All"
)

// Scope is the only scope the token endpoint accepts.
const Scope = "https://graph.microsoft.com/.default"

// Request is one request the fake answered.
type Request struct {
	Method string
	// Path is the path as it came over the wire, escapes kept.
	Path string
	// Query is the raw query.
	Query string
	// User is the decoded user key of a /users/{key} request.
	User   string
	Status int
}

type user struct{ id, upn string }

type failure struct {
	status     int
	retryAfter string
}

// Server is the fake. Its URL serves both the token endpoint and Graph.
type Server struct {
	URL          string
	Tenant       string // directory id
	TenantDomain string // a verified domain, accepted in place of Tenant
	ClientID     string
	ClientSecret string

	srv    *httptest.Server
	closed chan struct{}
	once   sync.Once

	mu            sync.Mutex
	users         []user
	perms         map[string]bool
	tokens        map[string]time.Time
	tokenLifetime time.Duration
	tokenDelay    time.Duration
	tokenRequests int
	graphRequests int
	unauthorized  int
	revoked       []string
	compromised   []string
	log           []Request
	fail          []failure
	tokenFail     []failure
	signIns       []SignIn
	noPremium     bool
	pages         map[string]signInPage
	hang          bool
	hugeBody      bool
	rejectTokens  bool
	echoSecret    bool
}

// New starts a fake with a fresh tenant, app registration and secret, every
// permission the connector needs granted, and tokens valid for an hour.
func New() *Server {
	s := &Server{
		Tenant:        guid(),
		TenantDomain:  "contoso.onmicrosoft.com",
		ClientID:      guid(),
		ClientSecret:  "Xq8Q~" + randHex(17),
		closed:        make(chan struct{}),
		perms:         map[string]bool{UserRevokeSessions: true, IdentityRiskyUserReadWrite: true, UserRead: true, AuditLogRead: true},
		pages:         map[string]signInPage{},
		tokens:        map[string]time.Time{},
		tokenLifetime: time.Hour,
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the fake, releasing hung requests.
func (s *Server) Close() {
	s.once.Do(func() { close(s.closed) })
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// AddUser adds a user with an object id (a GUID) and a user principal name.
func (s *Server) AddUser(objectID, upn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users = append(s.users, user{id: objectID, upn: upn})
}

// SetPermissions replaces the application permissions granted to the app.
// With none the app lacks every permission: Graph answers 403
// Authorization_RequestDenied.
func (s *Server) SetPermissions(perms ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.perms = map[string]bool{}
	for _, p := range perms {
		s.perms[p] = true
	}
}

// SetTokenLifetime sets the lifetime of the tokens issued from now on
// (expires_in is sent in whole seconds, at least 1).
func (s *Server) SetTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenLifetime = d
}

// SetTokenDelay makes the token endpoint answer after d.
func (s *Server) SetTokenDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenDelay = d
}

// ExpireTokens makes every token issued so far invalid, as a revocation or
// an early expiry would.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = map[string]time.Time{}
}

// RejectTokens makes Graph refuse every token with 401 while on.
func (s *Server) RejectTokens(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectTokens = on
}

// RateLimit answers the next n Graph requests with 429 TooManyRequests and
// Retry-After: retryAfter (no header when empty).
func (s *Server) RateLimit(n int, retryAfter string) {
	s.FailNext(n, http.StatusTooManyRequests, retryAfter)
}

// FailNext answers the next n Graph requests with status (500, 503, ...),
// with Retry-After: retryAfter when not empty.
func (s *Server) FailNext(n, status int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.fail = append(s.fail, failure{status, retryAfter})
	}
}

// FailTokenNext answers the next n token requests with status.
func (s *Server) FailTokenNext(n, status int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.tokenFail = append(s.tokenFail, failure{status, retryAfter})
	}
}

// SetHang makes every request, token and Graph, hang until the client
// gives up or the fake closes.
func (s *Server) SetHang(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang = on
}

// SetHugeBody makes Graph answer 200 with a body of several MiB.
func (s *Server) SetHugeBody(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hugeBody = on
}

// EchoSecret makes the token endpoint put the secret it was sent into its
// error descriptions (a hostile or broken server).
func (s *Server) EchoSecret(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.echoSecret = on
}

// TokenRequests counts requests to the token endpoint.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenRequests
}

// GraphRequests counts requests to Graph.
func (s *Server) GraphRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.graphRequests
}

// Unauthorized counts Graph's 401 answers.
func (s *Server) Unauthorized() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unauthorized
}

// Revoked lists the object ids whose sessions were revoked, in order.
func (s *Server) Revoked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.revoked...)
}

// Compromised lists the object ids confirmed compromised, in order.
func (s *Server) Compromised() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.compromised...)
}

// Requests lists the requests answered, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

func (s *Server) record(r *http.Request, userKey string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, Request{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, User: userKey, Status: status})
}

func (s *Server) waitHang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.closed:
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	s.mu.Lock()
	hang := s.hang
	s.mu.Unlock()
	if len(segs) == 4 && segs[1] == "oauth2" && segs[2] == "v2.0" && segs[3] == "token" {
		s.mu.Lock()
		s.tokenRequests++
		s.mu.Unlock()
		if hang {
			s.waitHang(r)
			return
		}
		s.token(w, r, segs[0])
		return
	}
	s.mu.Lock()
	s.graphRequests++
	s.mu.Unlock()
	if hang {
		s.waitHang(r)
		return
	}
	s.graph(w, r, segs)
}

// ---- token endpoint ----

func (s *Server) token(w http.ResponseWriter, r *http.Request, rawTenant string) {
	s.mu.Lock()
	delay := s.tokenDelay
	var f *failure
	if len(s.tokenFail) > 0 {
		f = &s.tokenFail[0]
		s.tokenFail = s.tokenFail[1:]
	}
	echo := s.echoSecret
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	aadErr := func(status int, code, desc string) {
		if echo {
			// Into the first sentence, which a client may keep.
			code, rest, _ := strings.Cut(desc, ": ")
			desc = code + ": [" + r.PostForm.Get("client_secret") + "] " + rest
		}
		writeJSON(w, status, map[string]any{
			"error":             code,
			"error_description": desc + "\r\nTrace ID: " + guid() + "\r\nCorrelation ID: " + guid() + "\r\nTimestamp: " + time.Now().UTC().Format("2006-01-02 15:04:05Z"),
			"error_codes":       []int{aadNumber(desc)},
			"timestamp":         time.Now().UTC().Format("2006-01-02 15:04:05Z"),
			"trace_id":          guid(),
			"correlation_id":    guid(),
		})
		s.record(r, "", status)
	}
	if f != nil {
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		code := "temporarily_unavailable"
		if f.status == http.StatusTooManyRequests {
			code = "invalid_request"
		}
		aadErr(f.status, code, "AADSTS90033: A transient error has occurred. Please try again.")
		return
	}
	tenant, err := url.PathUnescape(rawTenant)
	if err != nil || (tenant != s.Tenant && !strings.EqualFold(tenant, s.TenantDomain)) {
		aadErr(http.StatusBadRequest, "invalid_request", fmt.Sprintf("AADSTS90002: Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
		return
	}
	if r.Method != http.MethodPost {
		aadErr(http.StatusMethodNotAllowed, "invalid_request", "AADSTS900561: The endpoint only accepts POST requests.")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		aadErr(http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'.")
		return
	}
	if err := r.ParseForm(); err != nil {
		aadErr(http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'.")
		return
	}
	form := r.PostForm
	switch {
	case form.Get("grant_type") != "client_credentials":
		aadErr(http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.")
	case form.Get("client_id") != s.ClientID:
		aadErr(http.StatusBadRequest, "unauthorized_client", fmt.Sprintf("AADSTS700016: Application with identifier '%s' was not found in the directory '%s'.", form.Get("client_id"), tenant))
	case form.Get("client_secret") != s.ClientSecret:
		aadErr(http.StatusUnauthorized, "invalid_client", fmt.Sprintf("AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", s.ClientID))
	case form.Get("scope") != Scope:
		aadErr(http.StatusBadRequest, "invalid_scope", fmt.Sprintf("AADSTS1002012: The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", form.Get("scope")))
	default:
		tok := "fake." + randHex(24)
		s.mu.Lock()
		life := s.tokenLifetime
		s.tokens[tok] = time.Now().Add(life)
		s.mu.Unlock()
		secs := max(1, int(math.Ceil(life.Seconds())))
		writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": tok})
		s.record(r, "", http.StatusOK)
	}
}

func aadNumber(desc string) int {
	var n int
	fmt.Sscanf(desc, "AADSTS%d", &n)
	return n
}

// ---- Graph ----

func graphErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code":    code,
		"message": msg,
		"innerError": map[string]any{
			"date":              time.Now().UTC().Format("2006-01-02T15:04:05"),
			"request-id":        guid(),
			"client-request-id": guid(),
		},
	}})
}

func (s *Server) graph(w http.ResponseWriter, r *http.Request, segs []string) {
	status := s.graphRoute(w, r, segs)
	key := ""
	if len(segs) >= 2 && segs[0] == "v1.0" {
		key, _ = userKey(segs[1:])
	}
	s.record(r, key, status)
}

func (s *Server) graphRoute(w http.ResponseWriter, r *http.Request, segs []string) int {
	// Authentication comes first: Graph answers nothing to a caller
	// without a valid token.
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	exp, known := s.tokens[tok]
	valid := ok && known && time.Now().Before(exp) && !s.rejectTokens
	if !valid {
		s.unauthorized++
	}
	s.mu.Unlock()
	if !valid {
		w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="invalid_token"`)
		msg := "Access token has expired or is not yet valid."
		if !ok || tok == "" {
			msg = "Access token is empty."
		}
		graphErr(w, http.StatusUnauthorized, "InvalidAuthenticationToken", msg)
		return http.StatusUnauthorized
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
		switch f.status {
		case http.StatusTooManyRequests:
			graphErr(w, f.status, "TooManyRequests", "Too many requests.")
		case http.StatusServiceUnavailable:
			graphErr(w, f.status, "serviceNotAvailable", "The service is temporarily unavailable for maintenance or is overloaded.")
		default:
			graphErr(w, f.status, "generalException", "An unspecified error has occurred.")
		}
		return f.status
	}
	if huge {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		pad := strings.Repeat(" ", 64<<10)
		_, _ = w.Write([]byte(`{"value":true,"pad":"`))
		for range 64 { // 4 MiB
			_, _ = w.Write([]byte(pad))
		}
		_, _ = w.Write([]byte(`"}`))
		return http.StatusOK
	}

	if len(segs) == 4 && segs[0] == "v1.0" && segs[1] == "identityProtection" && segs[2] == "riskyUsers" && segs[3] == "confirmCompromised" {
		return s.confirmCompromised(w, r)
	}
	if len(segs) == 3 && segs[0] == "v1.0" && segs[1] == "auditLogs" && segs[2] == "signIns" {
		return s.listSignIns(w, r)
	}
	if len(segs) >= 2 && segs[0] == "v1.0" {
		key, rest := userKey(segs[1:])
		if rest != nil {
			switch {
			case len(rest) == 0:
				return s.getUser(w, r, key)
			case len(rest) == 1 && rest[0] == "revokeSignInSessions":
				return s.revokeSignInSessions(w, r, key)
			}
		}
	}
	last := segs[len(segs)-1]
	graphErr(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", last))
	return http.StatusBadRequest
}

// userKey reads the user key of users/{key}/... or users('{key}')/...,
// returning the segments after it; rest is nil when segs is not a user.
func userKey(segs []string) (key string, rest []string) {
	if len(segs) >= 2 && segs[0] == "users" {
		k, err := url.PathUnescape(segs[1])
		if err != nil || k == "" {
			return "", nil
		}
		return k, segs[2:]
	}
	if len(segs) >= 1 && strings.HasPrefix(segs[0], "users('") && strings.HasSuffix(segs[0], "')") {
		k, err := url.PathUnescape(segs[0][len("users('") : len(segs[0])-2])
		if err != nil {
			return "", nil
		}
		return strings.ReplaceAll(k, "''", "'"), segs[1:]
	}
	return "", nil
}

func (s *Server) lookup(key string) (user, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if strings.EqualFold(u.id, key) || strings.EqualFold(u.upn, key) {
			return u, true
		}
	}
	return user{}, false
}

func (s *Server) has(perms ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range perms {
		if s.perms[p] {
			return true
		}
	}
	return false
}

func denied(w http.ResponseWriter) int {
	graphErr(w, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
	return http.StatusForbidden
}

func notFound(w http.ResponseWriter, key string) int {
	graphErr(w, http.StatusNotFound, "Request_ResourceNotFound", fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", key))
	return http.StatusNotFound
}

func methodNotAllowed(w http.ResponseWriter) int {
	graphErr(w, http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
	return http.StatusMethodNotAllowed
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, key string) int {
	if r.Method != http.MethodGet {
		return methodNotAllowed(w)
	}
	if !s.has(UserRead, "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All") {
		return denied(w)
	}
	u, ok := s.lookup(key)
	if !ok {
		return notFound(w, key)
	}
	if r.URL.Query().Get("$select") == "id" {
		writeJSON(w, http.StatusOK, map[string]any{
			"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users(id)/$entity",
			"id":             u.id,
		})
		return http.StatusOK
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.context":    "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
		"id":                u.id,
		"userPrincipalName": u.upn,
		"displayName":       u.upn,
	})
	return http.StatusOK
}

func (s *Server) revokeSignInSessions(w http.ResponseWriter, r *http.Request, key string) int {
	if r.Method != http.MethodPost {
		return methodNotAllowed(w)
	}
	if !s.has(UserRevokeSessions) {
		return denied(w)
	}
	u, ok := s.lookup(key)
	if !ok {
		return notFound(w, key)
	}
	s.mu.Lock()
	s.revoked = append(s.revoked, u.id)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean",
		"value":          true,
	})
	return http.StatusOK
}

func (s *Server) confirmCompromised(w http.ResponseWriter, r *http.Request) int {
	if r.Method != http.MethodPost {
		return methodNotAllowed(w)
	}
	if !s.has(IdentityRiskyUserReadWrite) {
		return denied(w)
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		graphErr(w, http.StatusUnsupportedMediaType, "BadRequest", "A supported MIME type could not be found that matches the content type of the response.")
		return http.StatusUnsupportedMediaType
	}
	var body struct {
		UserIDs []string `json:"userIds"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(&body); err != nil || len(body.UserIDs) == 0 {
		graphErr(w, http.StatusBadRequest, "BadRequest", "Empty Payload. JSON content expected.")
		return http.StatusBadRequest
	}
	var ids []string
	for _, id := range body.UserIDs {
		if !isGUID(id) {
			graphErr(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid user id '%s'.", id))
			return http.StatusBadRequest
		}
		u, ok := s.lookup(id)
		if !ok || !strings.EqualFold(u.id, id) {
			return notFound(w, id)
		}
		ids = append(ids, u.id)
	}
	s.mu.Lock()
	s.compromised = append(s.compromised, ids...)
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}

// ---- sign-in logs ----

// SignIn is one sign-in the fake serves: its id and createdDateTime, and
// the whole signIn resource as Graph sends it (Resource; when nil a
// password sign-in of ada@contoso.com is made up).
type SignIn struct {
	ID       string
	Created  time.Time
	Resource map[string]any
}

// signInPage is what a $skiptoken stands for: the rest of a listing.
type signInPage struct {
	filter string
	from   time.Time
	top    int
	offset int
}

// MaxSignInTop is Graph's largest (and default) page of sign-ins.
const MaxSignInTop = 1000

// AddSignIn adds sign-ins to the tenant's log. Graph lists them newest
// first (by createdDateTime, then id).
func (s *Server) AddSignIn(ins ...SignIn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, in := range ins {
		if in.ID == "" {
			in.ID = guid()
		}
		s.signIns = append(s.signIns, in)
	}
	sort.SliceStable(s.signIns, func(i, j int) bool {
		a, b := s.signIns[i], s.signIns[j]
		if !a.Created.Equal(b.Created) {
			return a.Created.After(b.Created)
		}
		return a.ID > b.ID
	})
}

// SetPremium says whether the tenant has a Microsoft Entra ID P1 or P2
// licence (it has by default); without one Graph refuses List signIns
// with 403 Authentication_RequestFromNonPremiumTenantOrB2CTenant.
func (s *Server) SetPremium(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noPremium = !on
}

// signInFilter reads the only $filter the fake knows:
// "createdDateTime ge {RFC 3339 time}".
func signInFilter(f string) (time.Time, bool) {
	if f == "" {
		return time.Time{}, true
	}
	v, ok := strings.CutPrefix(f, "createdDateTime ge ")
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	return t, err == nil
}

func (s *Server) listSignIns(w http.ResponseWriter, r *http.Request) int {
	if r.Method != http.MethodGet {
		return methodNotAllowed(w)
	}
	if !s.has(AuditLogRead) {
		return denied(w)
	}
	s.mu.Lock()
	noPremium := s.noPremium
	s.mu.Unlock()
	if noPremium {
		graphErr(w, http.StatusForbidden, "Authentication_RequestFromNonPremiumTenantOrB2CTenant", "Neither tenant is B2C or tenant doesn't have premium license")
		return http.StatusForbidden
	}
	q := r.URL.Query()
	var pg signInPage
	if tok := q.Get("$skiptoken"); tok != "" {
		s.mu.Lock()
		p, ok := s.pages[tok]
		s.mu.Unlock()
		if !ok || p.filter != q.Get("$filter") {
			graphErr(w, http.StatusBadRequest, "Request_BadRequest", "Invalid $skiptoken.")
			return http.StatusBadRequest
		}
		pg = p
	} else {
		from, ok := signInFilter(q.Get("$filter"))
		if !ok {
			graphErr(w, http.StatusBadRequest, "Request_UnsupportedQuery", "Invalid filter clause")
			return http.StatusBadRequest
		}
		top := MaxSignInTop
		if v := q.Get("$top"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxSignInTop {
				graphErr(w, http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Invalid page size specified: '%s'. Must be between 1 and 1000 inclusive.", v))
				return http.StatusBadRequest
			}
			top = n
		}
		pg = signInPage{filter: q.Get("$filter"), from: from, top: top}
	}
	s.mu.Lock()
	var match []SignIn
	for _, in := range s.signIns {
		if !in.Created.Before(pg.from) {
			match = append(match, in)
		}
	}
	end := min(len(match), pg.offset+pg.top)
	values := []any{}
	for _, in := range match[min(pg.offset, end):end] {
		values = append(values, in.resource())
	}
	next := ""
	if end < len(match) {
		tok := randHex(16)
		s.pages[tok] = signInPage{filter: pg.filter, from: pg.from, top: pg.top, offset: end}
		nq := url.Values{"$top": {strconv.Itoa(pg.top)}, "$skiptoken": {tok}}
		if pg.filter != "" {
			nq.Set("$filter", pg.filter)
		}
		next = s.URL + "/v1.0/auditLogs/signIns?" + nq.Encode()
	}
	s.mu.Unlock()
	body := map[string]any{
		"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#auditLogs/signIns",
		"value":          values,
	}
	if next != "" {
		body["@odata.nextLink"] = next
	}
	// Graph answers compact JSON on one line.
	w.Header().Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
	w.WriteHeader(http.StatusOK)
	b, _ := json.Marshal(body)
	_, _ = w.Write(b)
	return http.StatusOK
}

func (in SignIn) resource() map[string]any {
	m := map[string]any{}
	if in.Resource == nil {
		m = map[string]any{
			"userPrincipalName": "ada@contoso.com",
			"userId":            "d7cc485d-2c1b-422c-98fd-5ce52859a4a3",
			"appId":             "de8bc8b5-d9f9-48b1-a8ad-b748da725064",
			"ipAddress":         "203.0.113.7",
			"status":            map[string]any{"errorCode": 0},
			"authenticationDetails": []any{map[string]any{
				"authenticationStepDateTime": in.Created.UTC().Format(time.RFC3339), "authenticationMethod": "Password",
				"succeeded": true, "authenticationStepResultDetail": "Correct password",
			}},
		}
	}
	for k, v := range in.Resource {
		m[k] = v
	}
	m["id"] = in.ID
	m["createdDateTime"] = in.Created.UTC().Format(time.RFC3339)
	return m
}

// ---- helpers ----

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func guid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// NewID returns a random object id.
func NewID() string { return guid() }

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}
