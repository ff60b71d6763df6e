// Package console is the help-desk console: a small server-rendered web
// page, on the HTTP address, where an operator signed in with their
// operator token finds a user however the caller spells the id, sees the
// user's recent decisions with their signals and reasons, the active
// cooldown and open incidents, and clears the cooldown with a reason that
// decision keeps in its audit records. It is a client of decision's and
// notify's RPCs, called with the operator's own token, so that the guard
// authorizes every call as it would the operator's own.
package console

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/httpapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Prefix is where the console is served; its cookies are scoped to it.
const Prefix = "/console/"

// Decisions is what the console asks of the decision service.
type Decisions interface {
	ListDecisions(ctx context.Context, in *decisionv1.ListDecisionsRequest, opts ...grpc.CallOption) (*decisionv1.ListDecisionsResponse, error)
	GetCooldown(ctx context.Context, in *decisionv1.GetCooldownRequest, opts ...grpc.CallOption) (*decisionv1.GetCooldownResponse, error)
	ClearCooldown(ctx context.Context, in *decisionv1.ClearCooldownRequest, opts ...grpc.CallOption) (*decisionv1.ClearCooldownResponse, error)
}

// Incidents is what the console asks of the notification service.
type Incidents interface {
	ListIncidents(ctx context.Context, in *notifyv1.ListIncidentsRequest, opts ...grpc.CallOption) (*notifyv1.ListIncidentsResponse, error)
}

// Options are what a Console needs.
type Options struct {
	Config    Config
	Decisions Decisions
	// Incidents is nil when notify cannot be reached; the page says so.
	Incidents Incidents
	// OperatorTokens are the mesh's operator tokens (--operator-tokens):
	// the only way in. Without any, nobody signs in.
	OperatorTokens []string
	Logger         *slog.Logger
	// Now is the clock of sessions and sign-in limits (time.Now when nil).
	Now func() time.Time
}

// Console serves the help-desk pages.
type Console struct {
	cfg       Config
	decisions Decisions
	incidents Incidents
	tokens    [][sha256.Size]byte
	sessions  *sessions
	logins    *limiter
	log       *slog.Logger
	now       func() time.Time
	pages     pages
}

// Limits of what an operator types.
const (
	maxUserID   = 256
	maxTenant   = 256
	maxOperator = 128
	maxReason   = 1024
	maxToken    = 4096
	maxForm     = 64 << 10
	// recentDecisions is how many decisions the user page shows.
	recentDecisions = 20
	// maxIncidents is how many incidents the user page shows.
	maxIncidents = 20
	// incidentPages bounds the pages read to find a user's incidents when
	// notify cannot filter by user (no tenant).
	incidentPages = 4
)

// New returns the console.
func New(o Options) (*Console, error) {
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	if o.Decisions == nil {
		return nil, errors.New("console: the decision service is required")
	}
	c := &Console{cfg: o.Config, decisions: o.Decisions, incidents: o.Incidents, log: o.Logger, now: o.Now,
		sessions: newSessions(o.Config.MaxSessions, o.Config.SessionTTL),
		logins:   newLimiter(o.Config.LoginAttempts, LoginWindow, 4096)}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	for _, t := range o.OperatorTokens {
		if t != "" {
			c.tokens = append(c.tokens, sha256.Sum256([]byte(t)))
		}
	}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	return c, nil
}

// Handler serves the console under Prefix.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Prefix+"{$}", c.home)
	mux.HandleFunc("GET "+Prefix+"user", c.user)
	mux.HandleFunc("POST "+Prefix+"login", c.login)
	mux.HandleFunc("POST "+Prefix+"logout", c.logout)
	mux.HandleFunc("POST "+Prefix+"clear", c.clear)
	mux.HandleFunc("GET "+Prefix+"console.css", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		_, _ = w.Write(stylesheet)
	})
	mux.HandleFunc(Prefix, func(w http.ResponseWriter, _ *http.Request) {
		c.fail(w, http.StatusNotFound, "Not found", "There is no such page.", nil)
	})
	return secureHeaders(mux)
}

// secureHeaders keeps the pages from running anything but their own
// stylesheet, from being framed, cached or leaking their URL (which names
// a user) to another site.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

const (
	sessionCookie = "pushback_console_session"
	// loginCookie carries the sign-in form's CSRF token (double submit):
	// there is no session yet to hold it.
	loginCookie = "pushback_console_login"
	loginTTL    = 15 * time.Minute
)

func (c *Console) cookie(r *http.Request, name, value string, ttl time.Duration) *http.Cookie {
	ck := &http.Cookie{Name: name, Value: value, Path: Prefix, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil || c.cfg.SecureCookie, MaxAge: int(ttl / time.Second)}
	if ttl <= 0 {
		ck.MaxAge = -1
	}
	return ck
}

// current returns the request's live session.
func (c *Console) current(r *http.Request) (*session, string, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, "", false
	}
	se, ok := c.sessions.get(c.now(), ck.Value)
	return se, ck.Value, ok
}

// loginPage answers a request without a session: the sign-in form, 401.
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request, status int, problem string) {
	// A second tab keeps the first one's token, so that neither form
	// expires the other.
	csrf := cookieValue(r, loginCookie)
	if len(csrf) != len(randomToken()) {
		csrf = randomToken()
	}
	http.SetCookie(w, c.cookie(r, loginCookie, csrf, loginTTL))
	c.render(w, status, "login", loginData{CSRF: csrf, Problem: problem, NoTokens: len(c.tokens) == 0})
}

func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	se, _, ok := c.current(r)
	if !ok {
		c.loginPage(w, r, http.StatusUnauthorized, "")
		return
	}
	c.render(w, http.StatusOK, "home", homeData{base: base{Operator: se.operator, CSRF: se.csrf}})
}

// login checks the pasted token against the operator tokens, in constant
// time, and starts a session.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	now := c.now()
	if !c.parseForm(w, r) {
		return
	}
	// The CSRF check comes before the attempt is counted: a page on
	// another site can make the operator's browser post this form, never
	// with the form's cookie, and must not spend the budget of the
	// operator's address (under port-forward, every operator's).
	if !sameToken(cookieValue(r, loginCookie), r.PostFormValue("csrf")) {
		c.fail(w, http.StatusForbidden, "Form expired", "The sign-in form was not the one this console served (or it expired): reload the page and sign in again.", nil)
		return
	}
	if !c.logins.allow(clientAddr(r), now) {
		c.log.Warn("console sign-in refused: too many attempts", slog.String("peer", r.RemoteAddr))
		c.fail(w, http.StatusTooManyRequests, "Too many sign-in attempts", "Wait a few minutes before trying again.", nil)
		return
	}
	operator := strings.TrimSpace(r.PostFormValue("operator"))
	if msg := checkText(operator, maxOperator, true, false); msg != "" {
		c.badField(w, "operator", "your name "+msg)
		return
	}
	// The name goes into audit records and logs as one line: U+2028 and
	// U+2029 break lines too.
	if strings.ContainsAny(operator, "\u2028\u2029") {
		c.badField(w, "operator", "your name holds a line or paragraph separator")
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" || len(token) > maxToken {
		c.badField(w, "token", "paste your operator token (at most 4096 bytes)")
		return
	}
	if !c.isOperator(token) {
		c.log.Warn("console sign-in refused: not an operator token", slog.String("peer", r.RemoteAddr))
		c.loginPage(w, r, http.StatusUnauthorized, "That is not an operator token.")
		return
	}
	id, se := c.sessions.create(now, operator, auth.Fingerprint(token), token)
	c.log.Info("console sign-in", slog.String("operator", operator), slog.String("credential", se.fingerprint), slog.String("peer", r.RemoteAddr))
	http.SetCookie(w, c.cookie(r, sessionCookie, id, c.cfg.SessionTTL))
	http.SetCookie(w, c.cookie(r, loginCookie, "", 0))
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

// isOperator compares token with every operator token in constant time.
func (c *Console) isOperator(token string) bool {
	sum := sha256.Sum256([]byte(token))
	ok := 0
	for _, t := range c.tokens {
		ok |= subtle.ConstantTimeCompare(sum[:], t[:])
	}
	return ok == 1
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	se, id, ok := c.current(r)
	if !ok {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	if !c.parseForm(w, r) || !c.checkCSRF(w, r, se) {
		return
	}
	c.sessions.end(id)
	c.log.Info("console sign-out", slog.String("operator", se.operator), slog.String("credential", se.fingerprint))
	http.SetCookie(w, c.cookie(r, sessionCookie, "", 0))
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

// user shows what the help desk needs about one user: the cooldown and
// who cleared it before, recent decisions, incidents.
func (c *Console) user(w http.ResponseWriter, r *http.Request) {
	se, _, ok := c.current(r)
	if !ok {
		c.loginPage(w, r, http.StatusUnauthorized, "")
		return
	}
	q := r.URL.Query()
	typed, tenant := q.Get("user_id"), strings.TrimSpace(q.Get("tenant"))
	if msg := checkText(typed, maxUserID, true, false); msg != "" {
		c.badField(w, "user_id", "the user id "+msg)
		return
	}
	if msg := checkText(tenant, maxTenant, false, false); msg != "" {
		c.badField(w, "tenant", "the tenant "+msg)
		return
	}
	ctx, cancel := c.call(r.Context(), se)
	defer cancel()
	// Decision canonicalises the id as it does for Decide: whatever the
	// caller typed, the page shows the user the mesh counts.
	cd, err := c.decisions.GetCooldown(ctx, &decisionv1.GetCooldownRequest{UserId: typed, Tenant: tenant})
	if err != nil {
		c.rpcFailed(w, "read the cooldown", err)
		return
	}
	user := cd.GetUserId()
	list, err := c.decisions.ListDecisions(ctx, &decisionv1.ListDecisionsRequest{UserId: user, Tenant: tenant, PageSize: recentDecisions})
	if err != nil {
		c.rpcFailed(w, "list the decisions", err)
		return
	}
	d := userData{base: base{Operator: se.operator, CSRF: se.csrf}, Typed: typed, UserID: user, Tenant: tenant,
		Cooldown: cd, Cleared: q.Get("cleared") == "1"}
	for _, rec := range list.GetDecisions() {
		d.Decisions = append(d.Decisions, viewDecision(rec))
	}
	d.Incidents, d.IncidentsProblem = c.userIncidents(ctx, tenant, user)
	c.render(w, http.StatusOK, "user", d)
}

// userIncidents lists the user's incidents, newest first. Notify filters
// by user only within a tenant; without one the console reads a bounded
// number of pages and keeps the user's.
func (c *Console) userIncidents(ctx context.Context, tenant, user string) ([]*notifyv1.Incident, string) {
	if c.incidents == nil {
		return nil, "The notification service is not reachable from this process."
	}
	if tenant != "" {
		resp, err := c.incidents.ListIncidents(ctx, &notifyv1.ListIncidentsRequest{Tenant: tenant, UserId: user, PageSize: maxIncidents})
		if err != nil {
			return nil, "Incidents could not be read: " + status.Convert(err).Message()
		}
		return resp.GetIncidents(), ""
	}
	var out []*notifyv1.Incident
	token := ""
	for range incidentPages {
		resp, err := c.incidents.ListIncidents(ctx, &notifyv1.ListIncidentsRequest{PageSize: 500, PageToken: token})
		if err != nil {
			return out, "Incidents could not be read: " + status.Convert(err).Message()
		}
		for _, in := range resp.GetIncidents() {
			if in.GetTenant() == "" && in.GetUserId() == user && len(out) < maxIncidents {
				out = append(out, in)
			}
		}
		if token = resp.GetNextPageToken(); token == "" || len(out) == maxIncidents {
			return out, ""
		}
	}
	return out, "Only the latest incidents were searched; `pushback incidents list` reads them all."
}

// clear ends a cooldown through decision's ClearCooldown, naming the
// operator; decision stores who, why and when.
func (c *Console) clear(w http.ResponseWriter, r *http.Request) {
	se, _, ok := c.current(r)
	if !ok {
		c.loginPage(w, r, http.StatusUnauthorized, "Your session ended: sign in again, then clear the cooldown.")
		return
	}
	if !c.parseForm(w, r) || !c.checkCSRF(w, r, se) {
		return
	}
	user, tenant := r.PostFormValue("user_id"), strings.TrimSpace(r.PostFormValue("tenant"))
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if msg := checkText(user, maxUserID, true, false); msg != "" {
		c.badField(w, "user_id", "the user id "+msg)
		return
	}
	if msg := checkText(tenant, maxTenant, false, false); msg != "" {
		c.badField(w, "tenant", "the tenant "+msg)
		return
	}
	if msg := checkText(reason, maxReason, true, true); msg != "" {
		c.badField(w, "reason", "the reason "+msg+": say why the cooldown ends (it is kept in the audit record)")
		return
	}
	ctx, cancel := c.call(r.Context(), se)
	defer cancel()
	resp, err := c.decisions.ClearCooldown(ctx, &decisionv1.ClearCooldownRequest{UserId: user, Tenant: tenant, Reason: reason, Operator: se.operator})
	if err != nil {
		c.rpcFailed(w, "clear the cooldown", err)
		return
	}
	c.log.Info("console cleared a cooldown", slog.String("operator", se.operator), slog.String("credential", se.fingerprint),
		slog.Bool("was_active", resp.GetCleared()))
	q := url.Values{"user_id": {resp.GetClearance().GetUserId()}, "cleared": {"1"}}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	http.Redirect(w, r, Prefix+"user?"+q.Encode(), http.StatusSeeOther)
}

// call is the context of a call to decision or notify: bounded, and
// carrying the operator's token for the guard.
func (c *Console) call(ctx context.Context, se *session) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+se.token), cancel
}

func (c *Console) parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		c.badField(w, "form", "the form could not be read (at most 64 KiB of URL-encoded fields)")
		return false
	}
	return true
}

// checkCSRF refuses a form that does not carry the session's CSRF token:
// another site can make the browser post to the console, never read the
// token.
func (c *Console) checkCSRF(w http.ResponseWriter, r *http.Request, se *session) bool {
	if sameToken(se.csrf, r.PostFormValue("csrf")) {
		return true
	}
	c.log.Warn("console form refused: CSRF token missing or wrong", slog.String("operator", se.operator), slog.String("peer", r.RemoteAddr))
	c.fail(w, http.StatusForbidden, "Form refused", "The form did not come from this console's page: reload the page and try again.", nil)
	return false
}

func sameToken(want, got string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}

func cookieValue(r *http.Request, name string) string {
	ck, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return ck.Value
}

// clientAddr is the host of the request's peer: sign-ins are limited per
// address. An IPv6 peer is counted by its /64, which one host holds whole
// (a new address per guess is free), and an IPv4-mapped address as the
// IPv4 address. X-Forwarded-For is never read: anyone can send it.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// checkText says what is wrong with s ("" when nothing): empty when
// required, longer than max bytes, not UTF-8, or holding control or
// bidirectional formatting characters (line breaks allowed when
// multiline).
func checkText(s string, max int, required, multiline bool) string {
	switch {
	case required && strings.TrimSpace(s) == "":
		return "is required"
	case len(s) > max:
		return "is longer than " + strconv.Itoa(max) + " bytes"
	case !utf8.ValidString(s):
		return "is not UTF-8 text"
	}
	for _, r := range s {
		if multiline && (r == '\n' || r == '\r' || r == '\t') {
			continue
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return "holds control characters"
		}
	}
	return ""
}

// badField answers 400 naming the field.
func (c *Console) badField(w http.ResponseWriter, field, msg string) {
	c.fail(w, http.StatusBadRequest, "Check the form", "", []httpapi.FieldViolation{{Field: field, Description: msg}})
}

// rpcFailed answers the status of a failed call: its code as the HTTP
// status, its message and field violations (which name what the operator
// typed).
func (c *Console) rpcFailed(w http.ResponseWriter, what string, err error) {
	body := httpapi.ErrorBodyOf(err)
	code := status.Code(err)
	if code != codes.InvalidArgument && code != codes.NotFound && code != codes.PermissionDenied && code != codes.Unauthenticated {
		c.log.Warn("console call failed", slog.String("call", what), slog.String("code", code.String()), slog.String("message", status.Convert(err).Message()))
	}
	c.fail(w, httpapi.HTTPStatus(code), "Could not "+what, body.Error.Message, body.Error.FieldViolations)
}

func (c *Console) fail(w http.ResponseWriter, status int, title, msg string, v []httpapi.FieldViolation) {
	c.render(w, status, "error", errorData{Status: status, Title: title, Message: msg, Violations: v})
}

// render executes a page into a buffer first, so that a template error
// answers 500 rather than half a page.
func (c *Console) render(w http.ResponseWriter, status int, page string, data any) {
	var b bytes.Buffer
	if err := c.pages.execute(&b, page, data); err != nil {
		c.log.Error("console page", slog.String("page", page), slog.Any("error", err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}
