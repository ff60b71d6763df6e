// Package auth0 is the Auth0 response connector: when Pushback sees an
// attack on a user it ends that user's Auth0 sessions, or blocks the user,
// through the Auth0 Management API v2.
//
// The connector authenticates as a machine-to-machine application with
// the client credentials grant (POST /oauth/token, audience
// https://{domain}/api/v2/) and keeps the access token until shortly before
// it expires; callers at once share one token request, and a token the API
// refuses (401) is replaced once. RevokeSessions is DELETE
// /api/v2/users/{id}/sessions (202); BlockUser, when allowed, is PATCH
// /api/v2/users/{id} with {"blocked":true} (200). Every call is bounded by
// the caller's context and the configured timeout, never follows a
// redirect, reads at most outbound.MaxBody of a response, and never puts
// the client secret or the access token in an error.
package auth0

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pushbackhq/pushback/connectors/respond"
	"github.com/pushbackhq/pushback/pkg/outbound"
)

// UserAgent names Pushback's Auth0 connector to Auth0.
const UserAgent = "pushback-auth0/1"

// maxUserID bounds the user id Do accepts (Auth0 user ids are a provider
// and an id: auth0|5f7c8ec7c33c6c004bbafe82).
const maxUserID = 512

// errorBodyLimit bounds what is read of an error response.
const errorBodyLimit = 64 << 10

// maxRefreshMargin is how long before its expiry a token is replaced.
const maxRefreshMargin = time.Minute

// Client is the Auth0 response connector. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	audience string
	clientID string
	secret   string
	block    bool
	http     *http.Client
	now      func() time.Time

	// tokens caches the Management API token.
	tokens *outbound.TokenCache
}

var _ respond.Connector = (*Client)(nil)

// New returns a connector for a valid, enabled configuration.
func New(c Config) (*Client, error) {
	if !c.Enabled() {
		return nil, errors.New("auth0: auth0-domain is not set")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	base, err := baseURL(c.Domain)
	if err != nil {
		return nil, err
	}
	cl := &Client{
		base:     base,
		audience: base.String() + "/api/v2/",
		clientID: strings.TrimSpace(c.ClientID),
		secret:   strings.TrimSpace(c.ClientSecret),
		block:    c.BlockUser,
		http:     outbound.Client(c.Timeout),
		now:      time.Now,
	}
	// A token is replaced a minute before it expires, or after half its
	// life when it lives less than two.
	cl.tokens = &outbound.TokenCache{Fetch: cl.requestToken, Now: func() time.Time { return cl.now() },
		Margin: func(life time.Duration) time.Duration { return min(maxRefreshMargin, life/2) }}
	return cl, nil
}

// Name implements respond.Connector.
func (c *Client) Name() string { return "auth0" }

// Supports implements respond.Connector: RevokeSessions, and BlockUser when
// auth0-block-user is set.
func (c *Client) Supports(a respond.Action) bool {
	return a == respond.RevokeSessions || (a == respond.BlockUser && c.block)
}

// Do implements respond.Connector.
func (c *Client) Do(ctx context.Context, req respond.Request) (respond.Result, error) {
	if !c.Supports(req.Action) {
		return respond.Result{}, respond.Permanent("auth0: action %q is not supported (block_user needs auth0-block-user)", req.Action)
	}
	if err := checkUserID(req.UserID); err != nil {
		return respond.Result{}, err
	}
	id := url.PathEscape(req.UserID)
	switch req.Action {
	case respond.BlockUser:
		return c.blockUser(ctx, req.UserID, "/api/v2/users/"+id)
	default:
		return c.revokeSessions(ctx, req.UserID, "/api/v2/users/"+id+"/sessions")
	}
}

func (c *Client) revokeSessions(ctx context.Context, userID, path string) (respond.Result, error) {
	what := "DELETE " + path
	resp, token, err := c.manage(ctx, http.MethodDelete, path, nil)
	if err != nil {
		return respond.Result{}, fmt.Errorf("auth0: %s: %w", what, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return respond.Result{}, c.notFound(resp.StatusCode, c.statusError(what, resp, token))
	}
	drain(resp)
	return respond.Result{Detail: fmt.Sprintf("%s: %d", what, resp.StatusCode), IdPUserID: userID}, nil
}

func (c *Client) blockUser(ctx context.Context, userID, path string) (respond.Result, error) {
	what := "PATCH " + path
	resp, token, err := c.manage(ctx, http.MethodPatch, path, []byte(`{"blocked":true}`))
	if err != nil {
		return respond.Result{}, fmt.Errorf("auth0: %s: %w", what, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return respond.Result{}, c.notFound(resp.StatusCode, c.statusError(what, resp, token))
	}
	body, err := outbound.ReadBody(resp, 0)
	if err == nil {
		var u struct {
			Blocked *bool `json:"blocked"`
		}
		if json.Unmarshal(body, &u) == nil && u.Blocked != nil && !*u.Blocked {
			return respond.Result{}, fmt.Errorf("auth0: %s: HTTP %d but the user is not blocked", what, resp.StatusCode)
		}
	}
	return respond.Result{Detail: fmt.Sprintf("%s {\"blocked\":true}: %d", what, resp.StatusCode), IdPUserID: userID}, nil
}

func (c *Client) notFound(status int, err error) error {
	if status == http.StatusNotFound {
		return fmt.Errorf("user not found: %w", err)
	}
	return err
}

// checkUserID refuses ids that cannot name one user in a path segment.
func checkUserID(id string) error {
	switch {
	case id == "":
		return respond.Permanent("auth0: no user id")
	case len(id) > maxUserID:
		return respond.Permanent("auth0: user id longer than %d bytes", maxUserID)
	case id == "." || id == "..":
		return respond.Permanent("auth0: %q is not a user id", id)
	}
	for _, r := range id {
		if r < ' ' || r == 0x7f {
			return respond.Permanent("auth0: user id contains control characters")
		}
	}
	return nil
}

// manage sends one Management API request with the cached access token;
// on a 401 it replaces the token once and sends the request again. It
// returns the token the answer is to, for redaction.
func (c *Client) manage(ctx context.Context, method, path string, body []byte) (*http.Response, string, error) {
	token, err := c.accessToken(ctx, "")
	if err != nil {
		return nil, "", err
	}
	resp, err := c.send(ctx, method, path, body, token)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, token, err
	}
	drain(resp)
	if token, err = c.accessToken(ctx, token); err != nil {
		return nil, "", err
	}
	resp, err = c.send(ctx, method, path, body, token)
	return resp, token, err
}

func (c *Client) send(ctx context.Context, method, path string, body []byte, token string) (*http.Response, error) {
	var rd *bytes.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := c.request(ctx, method, path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return c.do(ctx, req)
}

func (c *Client) request(ctx context.Context, method, path string, body *bytes.Reader) (*http.Request, error) {
	var req *http.Request
	var err error
	if body != nil {
		req, err = http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	} else {
		req, err = http.NewRequestWithContext(ctx, method, c.base.String()+path, nil)
	}
	if err != nil {
		return nil, respond.Permanent("building the request: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

func (c *Client) do(ctx context.Context, req *http.Request) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, errors.New(c.redact(err.Error()))
	}
	return resp, nil
}

// accessToken returns a Management API token: the cached one while it is
// fresh and is not stale (the token the API just refused), else a new one.
// Callers that need a new token at once share one request; each waits no
// longer than its own context.
func (c *Client) accessToken(ctx context.Context, stale string) (string, error) {
	if stale != "" {
		c.tokens.Invalidate(stale)
	}
	return c.tokens.Get(ctx)
}

// requestToken asks Auth0 for a Management API token with the client
// credentials grant.
func (c *Client) requestToken(ctx context.Context) (string, time.Duration, error) {
	const what = "POST /oauth/token"
	body, err := json.Marshal(map[string]string{
		"grant_type":    "client_credentials",
		"client_id":     c.clientID,
		"client_secret": c.secret,
		"audience":      c.audience,
	})
	if err != nil {
		return "", 0, respond.Permanent("auth0: %s: %v", what, err)
	}
	req, err := c.request(ctx, http.MethodPost, "/oauth/token", bytes.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return "", 0, fmt.Errorf("auth0: %s: %w", what, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", 0, c.statusError(what, resp, "")
	}
	b, err := outbound.ReadBody(resp, 0)
	if err != nil {
		return "", 0, fmt.Errorf("auth0: %s: reading the token: %w", what, err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if json.Unmarshal(b, &tok) != nil || tok.AccessToken == "" || !headerSafe(tok.AccessToken) ||
		(tok.TokenType != "" && !strings.EqualFold(tok.TokenType, "Bearer")) {
		return "", 0, fmt.Errorf("auth0: %s: the answer carries no usable bearer token", what)
	}
	ttl := time.Duration(max(min(tok.ExpiresIn, int64(30*24*time.Hour/time.Second)), 0)) * time.Second
	return tok.AccessToken, ttl, nil
}

// statusError reads Auth0's error body (Management API:
// statusCode/error/message/errorCode; Authentication API:
// error/error_description) and turns the response into the error Do
// returns. A redirect is an error: the client never follows one.
func (c *Client) statusError(what string, resp *http.Response, token string) error {
	var detail string
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		drain(resp)
		detail = "redirect not followed; check auth0-domain"
	} else if body, err := outbound.ReadBody(resp, errorBodyLimit); err == nil {
		detail = errorDetail(body)
	}
	wait, ok := retryWait(resp, c.now())
	return respond.StatusError("auth0: "+what, resp.StatusCode, c.redact(detail, token), wait, ok)
}

// errorDetail is "errorCode: message" (Management API) or "error:
// error_description" (Authentication API), or nothing when the body is
// neither (never the raw body).
func errorDetail(body []byte) string {
	var e struct {
		Error       string `json:"error"`
		Message     string `json:"message"`
		ErrorCode   string `json:"errorCode"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	code, text := e.ErrorCode, e.Message
	if code == "" {
		code = e.Error
	}
	if text == "" {
		text = e.Description
	}
	switch {
	case code == "" && text == "":
		return ""
	case code == "":
		return printable(text)
	case text == "":
		return printable(code)
	}
	return printable(code + ": " + text)
}

// retryWait is how long a 429 (or 503) asks the caller to wait:
// Retry-After, or Auth0's X-RateLimit-Reset (the Unix time, in seconds, at
// which the window resets), capped at outbound.MaxWait.
func retryWait(resp *http.Response, now time.Time) (time.Duration, bool) {
	if wait, ok := outbound.RetryAfter(resp, now); ok {
		return wait, true
	}
	v := strings.TrimSpace(resp.Header.Get("X-RateLimit-Reset"))
	unix, err := strconv.ParseInt(v, 10, 64)
	if v == "" || err != nil || unix <= 0 {
		return 0, false
	}
	return min(max(time.Unix(unix, 0).Sub(now), 0), outbound.MaxWait), true
}

// redact removes the client secret, the cached access token and the
// tokens given from text bound for an error.
func (c *Client) redact(s string, tokens ...string) string {
	secrets := append([]string{c.secret, c.tokens.Cached()}, tokens...)
	for _, v := range secrets {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}

func headerSafe(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// printable drops control characters from vendor text.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
}

// drain reads a little of a body so the connection can be reused, and
// closes it.
func drain(resp *http.Response) {
	_, _ = outbound.ReadBody(resp, errorBodyLimit)
}
