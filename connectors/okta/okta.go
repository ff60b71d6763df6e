// Package okta is the Okta response connector: when Pushback sees an attack
// on a user it ends that user's Okta sessions through the Okta Management
// API (Users API: retrieve a user, revoke all user sessions).
//
// Do resolves the user with GET /api/v1/users/{login or id}, then calls
// DELETE /api/v1/users/{id}/sessions, with oauthTokens=true for
// RevokeTokens (or always, with okta-revoke-oauth-tokens). Every call is
// bounded by the caller's context and the configured timeout, never follows
// a redirect, reads at most outbound.MaxBody of a response, and never puts
// the API token in an error.
package okta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/pushbackhq/pushback/connectors/respond"
	"github.com/pushbackhq/pushback/pkg/outbound"
)

// UserAgent names Pushback's Okta connector to Okta.
const UserAgent = "pushback-okta/1"

// maxUserID bounds the user id Do accepts: Okta logins are at most 100
// characters, ids 20.
const maxUserID = 256

// errorBodyLimit bounds what is read of an error response: its code and
// summary are all Do reports.
const errorBodyLimit = 64 << 10

// oktaID is the shape of an Okta object id (00u1a2b3c4D5e6F7g8h9): the id
// returned by the lookup goes into the next path, so it is checked first.
var oktaID = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)

// Client is the Okta response connector. It is safe for concurrent use.
type Client struct {
	base        *url.URL
	token       string
	revokeOAuth bool
	http        *http.Client
	now         func() time.Time
}

var _ respond.Connector = (*Client)(nil)

// New returns a connector for a valid, enabled configuration.
func New(c Config) (*Client, error) {
	if !c.Enabled() {
		return nil, errors.New("okta: okta-url is not set")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	base, err := outbound.ParseURL("okta-url", strings.TrimSpace(c.URL))
	if err != nil {
		return nil, err
	}
	return &Client{
		base:        base,
		token:       strings.TrimSpace(c.Token),
		revokeOAuth: c.RevokeOAuthTokens,
		http:        outbound.Client(c.Timeout),
		now:         time.Now,
	}, nil
}

// Name implements respond.Connector.
func (c *Client) Name() string { return "okta" }

// Supports implements respond.Connector: RevokeSessions and RevokeTokens.
func (c *Client) Supports(a respond.Action) bool {
	return a == respond.RevokeSessions || a == respond.RevokeTokens
}

// user is the part of Okta's User object Do reads.
type user struct {
	ID      string `json:"id"`
	Profile struct {
		Login string `json:"login"`
	} `json:"profile"`
}

// Do implements respond.Connector.
func (c *Client) Do(ctx context.Context, req respond.Request) (respond.Result, error) {
	if !c.Supports(req.Action) {
		return respond.Result{}, respond.Permanent("okta: action %q is not supported", req.Action)
	}
	if err := checkUserID(req.UserID); err != nil {
		return respond.Result{}, err
	}
	u, err := c.lookup(ctx, req.UserID)
	if err != nil {
		return respond.Result{}, err
	}
	oauth := req.Action == respond.RevokeTokens || c.revokeOAuth
	path := "/api/v1/users/" + url.PathEscape(u.ID) + "/sessions"
	if oauth {
		path += "?oauthTokens=true"
	}
	what := "DELETE " + path
	resp, err := c.call(ctx, http.MethodDelete, path)
	if err != nil {
		return respond.Result{}, fmt.Errorf("okta: %s: %w", what, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return respond.Result{}, c.statusError(what, resp)
	}
	drain(resp)
	return respond.Result{Detail: fmt.Sprintf("%s: %d", what, resp.StatusCode), IdPUserID: u.ID}, nil
}

// lookup resolves a login or id to the user's Okta id, and checks that
// Okta answered with the user asked for.
func (c *Client) lookup(ctx context.Context, login string) (user, error) {
	what := "GET /api/v1/users/" + url.PathEscape(login)
	resp, err := c.call(ctx, http.MethodGet, "/api/v1/users/"+url.PathEscape(login))
	if err != nil {
		return user{}, fmt.Errorf("okta: %s: %w", what, err)
	}
	if resp.StatusCode != http.StatusOK {
		err := c.statusError(what, resp)
		if resp.StatusCode == http.StatusNotFound {
			return user{}, fmt.Errorf("user not found: %w", err)
		}
		return user{}, err
	}
	body, err := outbound.ReadBody(resp, 0)
	if err != nil {
		return user{}, fmt.Errorf("okta: %s: reading the user: %w", what, err)
	}
	var u user
	if err := json.Unmarshal(body, &u); err != nil {
		return user{}, fmt.Errorf("okta: %s: the answer is not a user object", what)
	}
	if !oktaID.MatchString(u.ID) {
		return user{}, fmt.Errorf("okta: %s: the answer carries no usable user id", what)
	}
	if !sameUser(login, u) {
		return user{}, respond.Permanent("okta: %s: Okta resolved the user to %s, whose login does not match; act on the Okta id instead", what, u.ID)
	}
	return u, nil
}

// sameUser reports whether the user Okta returned is the one asked for:
// by id, by login (Okta compares logins ignoring case) or by the login's
// shortname (the part before the @), which Okta also resolves.
func sameUser(asked string, u user) bool {
	if asked == u.ID || strings.EqualFold(asked, u.Profile.Login) {
		return true
	}
	short, _, ok := strings.Cut(u.Profile.Login, "@")
	return ok && !strings.Contains(asked, "@") && strings.EqualFold(asked, short)
}

// checkUserID refuses ids that cannot name one user in a path segment.
func checkUserID(id string) error {
	switch {
	case id == "":
		return respond.Permanent("okta: no user id")
	case len(id) > maxUserID:
		return respond.Permanent("okta: user id longer than %d bytes", maxUserID)
	case id == "." || id == "..":
		return respond.Permanent("okta: %q is not a user id", id)
	case strings.EqualFold(id, "me"):
		// GET /api/v1/users/me answers with the admin who owns the API
		// token: revoking "me" would log out Pushback's own admin.
		return respond.Permanent("okta: refusing the user id %q: Okta reads it as the API token's own admin", id)
	}
	for _, r := range id {
		if r < ' ' || r == 0x7f {
			return respond.Permanent("okta: user id contains control characters")
		}
	}
	return nil
}

// call sends one request to Okta. path is already escaped.
func (c *Client) call(ctx context.Context, method, path string) (*http.Response, error) {
	return c.callURL(ctx, method, c.base.String()+path)
}

// callURL sends one request to a URL on the org, already checked.
func (c *Client) callURL(ctx context.Context, method, target string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return nil, respond.Permanent("building the request: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "SSWS "+c.token)
	req.Header.Set("User-Agent", UserAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			// The URL is in the message already (what); keep the cause.
			err = ue.Err
		}
		return nil, errors.New(c.redact(err.Error()))
	}
	return resp, nil
}

// statusError reads Okta's error body and turns the response into the
// error Do returns. A redirect is an error too: the client never follows
// one, and an org URL that redirects is misconfigured.
func (c *Client) statusError(what string, resp *http.Response) error {
	var detail string
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		drain(resp)
		detail = "redirect not followed; check okta-url"
	} else if body, err := outbound.ReadBody(resp, errorBodyLimit); err == nil {
		detail = errorDetail(body)
	}
	wait, ok := outbound.RetryAfter(resp, c.now())
	return respond.StatusError("okta: "+what, resp.StatusCode, c.redact(detail), wait, ok)
}

// errorDetail is "errorCode: errorSummary" of Okta's error object, or
// nothing when the body is not one (never the raw body).
func errorDetail(body []byte) string {
	var e struct {
		Code    string `json:"errorCode"`
		Summary string `json:"errorSummary"`
	}
	if json.Unmarshal(body, &e) != nil || (e.Code == "" && e.Summary == "") {
		return ""
	}
	return printable(strings.TrimSpace(e.Code + ": " + e.Summary))
}

// redact removes the API token from text bound for an error.
func (c *Client) redact(s string) string {
	if c.token == "" {
		return s
	}
	return strings.ReplaceAll(s, c.token, "[redacted]")
}

// printable drops control characters from vendor text.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// drain reads a little of a body so the connection can be reused, and
// closes it.
func drain(resp *http.Response) {
	_, _ = outbound.ReadBody(resp, errorBodyLimit)
}
