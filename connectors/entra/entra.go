// Package entra is the Microsoft Entra ID response connector: it revokes a
// user's sign-in sessions and confirms a user compromised in ID Protection
// through Microsoft Graph, signed in as an app registration with the
// client credentials grant; its LogSource polls the tenant's sign-ins from
// Graph for intake. docs/connectors/entra.md lists the calls and the
// permissions they need.
package entra

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pushbackhq/pushback/connectors/respond"
	"github.com/pushbackhq/pushback/pkg/outbound"
)

const userAgent = "pushback-entra"

// ErrUserNotFound marks a user Graph does not know; such an error is also
// permanent.
var ErrUserNotFound = errors.New("user not found")

// Client is the Entra connector. It is safe for concurrent use.
type Client struct {
	tokenURL string
	graph    string
	clientID string
	secret   string
	http     *http.Client
	tokens   *outbound.TokenCache
}

var _ respond.Connector = (*Client)(nil)

// New checks c and returns its connector.
func New(c Config) (*Client, error) {
	if !c.Enabled() {
		return nil, errors.New("entra: not configured (entra-tenant is empty)")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	login, _ := outbound.ParseURL("entra-login-url", c.LoginURL)
	graph, _ := outbound.ParseURL("graph-url", c.GraphURL)
	cl := &Client{
		tokenURL: login.String() + "/" + escapeSegment(c.Tenant) + "/oauth2/v2.0/token",
		graph:    graph.String(),
		clientID: c.ClientID,
		secret:   c.ClientSecret,
		http:     outbound.Client(c.Timeout),
	}
	cl.tokens = &outbound.TokenCache{Fetch: cl.fetchToken, Margin: func(life time.Duration) time.Duration { return min(maxRefreshMargin, life/10) }}
	return cl, nil
}

// Name implements respond.Connector.
func (c *Client) Name() string { return "entra" }

// Supports implements respond.Connector: RevokeSessions and
// ConfirmCompromised.
func (c *Client) Supports(a respond.Action) bool {
	return a == respond.RevokeSessions || a == respond.ConfirmCompromised
}

// Do implements respond.Connector. req.UserID is an object id (GUID) or a
// user principal name.
func (c *Client) Do(ctx context.Context, req respond.Request) (respond.Result, error) {
	if !c.Supports(req.Action) {
		return respond.Result{}, respond.Permanent("entra: action %q is not supported", req.Action)
	}
	if err := checkUserID(req.UserID); err != nil {
		return respond.Result{}, err
	}
	switch req.Action {
	case respond.RevokeSessions:
		return c.revokeSessions(ctx, req.UserID)
	default:
		return c.confirmCompromised(ctx, req.UserID)
	}
}

// checkUserID refuses what cannot be a user: an empty id, a dot segment,
// control characters, an id longer than a UPN can be.
func checkUserID(id string) error {
	switch {
	case id == "":
		return respond.Permanent("entra: empty user id")
	case id == "." || id == "..":
		return respond.Permanent("entra: %q is not a user id", id)
	case len(id) > 1024:
		return respond.Permanent("entra: user id longer than 1024 bytes")
	case strings.ContainsFunc(id, isControl):
		return respond.Permanent("entra: user id with control characters")
	}
	return nil
}

const (
	revokeCall  = "POST /v1.0/users/{id}/revokeSignInSessions"
	lookupCall  = "GET /v1.0/users/{upn}?$select=id"
	confirmCall = "POST /v1.0/identityProtection/riskyUsers/confirmCompromised"
)

func (c *Client) revokeSessions(ctx context.Context, id string) (respond.Result, error) {
	status, body, err := c.call(ctx, http.MethodPost, userPath(id)+"/revokeSignInSessions", "", nil, revokeCall)
	if err != nil {
		return respond.Result{}, err
	}
	// Graph answers 200 with {"value": true}.
	var v struct {
		Value *bool `json:"value"`
	}
	if len(bytes.TrimSpace(body)) > 0 && json.Unmarshal(body, &v) == nil && v.Value != nil && !*v.Value {
		return respond.Result{}, fmt.Errorf("entra: %s: HTTP %d with value false", revokeCall, status)
	}
	res := respond.Result{Detail: fmt.Sprintf("%s: %d", revokeCall, status)}
	if IsGUID(id) {
		res.IdPUserID = strings.ToLower(id)
	}
	return res, nil
}

func (c *Client) confirmCompromised(ctx context.Context, id string) (respond.Result, error) {
	var details []string
	objectID := strings.ToLower(id)
	if !IsGUID(id) {
		// confirmCompromised takes object ids only.
		status, body, err := c.call(ctx, http.MethodGet, userPath(id), "$select=id", nil, lookupCall)
		if err != nil {
			return respond.Result{}, err
		}
		var u struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(body, &u) != nil || !IsGUID(u.ID) {
			return respond.Result{}, respond.Permanent("entra: %s: HTTP %d without an object id", lookupCall, status)
		}
		objectID = strings.ToLower(u.ID)
		details = append(details, fmt.Sprintf("%s: %d", lookupCall, status))
	}
	payload, _ := json.Marshal(struct {
		UserIDs []string `json:"userIds"`
	}{[]string{objectID}})
	status, _, err := c.call(ctx, http.MethodPost, "/v1.0/identityProtection/riskyUsers/confirmCompromised", "", payload, confirmCall)
	if err != nil {
		return respond.Result{IdPUserID: objectID}, err
	}
	details = append(details, fmt.Sprintf("%s: %d", confirmCall, status))
	return respond.Result{Detail: strings.Join(details, "; "), IdPUserID: objectID}, nil
}

// userPath is the path of one user: /v1.0/users/{id}, the id one escaped
// segment. A UPN starting with $ would read as a system segment ($count,
// $ref); Graph takes it as a key instead: /v1.0/users('$x@contoso.com').
func userPath(id string) string {
	if strings.HasPrefix(id, "$") {
		return "/v1.0/users('" + escapeSegment(strings.ReplaceAll(id, "'", "''")) + "')"
	}
	return "/v1.0/users/" + escapeSegment(id)
}

// escapeSegment percent-encodes every byte but the unreserved characters
// and '@', so the result is one path segment whatever s holds: '/', '?',
// '#', '%' and quotes are all escaped.
func escapeSegment(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' ||
			ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == '@' {
			b.WriteByte(ch)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[ch>>4])
		b.WriteByte(hex[ch&15])
	}
	return b.String()
}

// graphError is Graph's error body.
type graphError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// call makes one Graph call with the app's token. A 401 drops the token
// and the call is made once more with a fresh one. It returns the status
// and body of a 2xx answer, and the error Do returns otherwise.
func (c *Client) call(ctx context.Context, method, rawPath, rawQuery string, payload []byte, what string) (int, []byte, error) {
	return c.callLimit(ctx, method, rawPath, rawQuery, payload, what, 0)
}

// callLimit is call reading an answer of up to limit bytes
// (outbound.MaxBody when 0).
func (c *Client) callLimit(ctx context.Context, method, rawPath, rawQuery string, payload []byte, what string, limit int64) (int, []byte, error) {
	target := c.graph + rawPath
	if rawQuery != "" {
		target += "?" + rawQuery
	}
	u, err := url.Parse(target)
	if err != nil || u.EscapedPath() != rawPath {
		return 0, nil, respond.Permanent("entra: %s: cannot build the request URL", what)
	}
	for attempt := 0; ; attempt++ {
		tok, err := c.tokens.Get(ctx)
		if err != nil {
			return 0, nil, err
		}
		var body io.Reader
		if payload != nil {
			body = bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(ctx, method, target, body)
		if err != nil {
			return 0, nil, respond.Permanent("entra: %s: %v", what, err)
		}
		if payload != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", userAgent)
		resp, err := c.http.Do(req)
		if err != nil {
			return 0, nil, fmt.Errorf("entra: %s: %w", what, c.redactErr(transportErr(err)))
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
			// The token expired early or was revoked: one fresh token.
			_, _ = outbound.ReadBody(resp, 0)
			c.tokens.Invalidate(tok)
			continue
		}
		data, err := outbound.ReadBody(resp, limit)
		if err != nil {
			return resp.StatusCode, nil, fmt.Errorf("entra: %s: HTTP %d: %w", what, resp.StatusCode, err)
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return resp.StatusCode, data, nil
		}
		var ge graphError
		_ = json.Unmarshal(data, &ge)
		detail := ge.Error.Code
		if ge.Error.Message != "" {
			detail += ": " + ge.Error.Message
		}
		detail = c.redact(detail)
		wait, ok := outbound.RetryAfter(resp, time.Now())
		serr := respond.StatusError(what, resp.StatusCode, detail, wait, ok)
		if resp.StatusCode == http.StatusNotFound {
			return resp.StatusCode, nil, fmt.Errorf("entra: %w: %w", ErrUserNotFound, serr)
		}
		return resp.StatusCode, nil, fmt.Errorf("entra: %w", serr)
	}
}

// redact removes the client secret from a vendor's text.
func (c *Client) redact(s string) string {
	if c.secret == "" {
		return s
	}
	return strings.ReplaceAll(s, c.secret, "[redacted]")
}

func (c *Client) redactErr(err error) error {
	if c.secret != "" && strings.Contains(err.Error(), c.secret) {
		return errors.New(c.redact(err.Error()))
	}
	return err
}
