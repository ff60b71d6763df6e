// Package duo is the Duo response connector: it sets a Duo user's status
// to "disabled" through the Duo Admin API, signing each request as Duo
// documents (HMAC-SHA512 over date, method, host, path and parameters).
// Its LogSource reads the account's authentication logs for the poll
// runner. docs/connectors/duo.md lists the calls and the permissions they
// need.
package duo

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pushbackhq/pushback/connectors/respond"
	"github.com/pushbackhq/pushback/pkg/outbound"
)

const userAgent = "pushback-duo"

// DefaultRateLimitWait is how long a 429 without Retry-After asks to wait:
// about the whole backoff of Duo's own clients (1s doubling to 32s).
const DefaultRateLimitWait = 60 * time.Second

// StatusDisabled is the one status the connector sets.
const StatusDisabled = "disabled"

// ErrUserNotFound marks a username Duo does not know; such an error is also
// permanent.
var ErrUserNotFound = errors.New("user not found")

// Client is the Duo connector. It is safe for concurrent use.
type Client struct {
	base string // scheme://host[:port]
	host string // the signed host, lower case
	ikey string
	skey string
	http *http.Client
	now  func() time.Time
}

var _ respond.Connector = (*Client)(nil)

// New checks c and returns its connector.
func New(c Config) (*Client, error) {
	if !c.Enabled() {
		return nil, errors.New("duo: not configured (duo-url is empty)")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	u, _ := c.apiURL()
	return &Client{
		base: u.Scheme + "://" + u.Host,
		host: strings.ToLower(u.Host),
		ikey: c.IKey,
		skey: c.SKey,
		http: outbound.Client(c.Timeout),
		now:  time.Now,
	}, nil
}

// Name implements respond.Connector.
func (c *Client) Name() string { return "duo" }

// Supports implements respond.Connector: SetUserStatus only.
func (c *Client) Supports(a respond.Action) bool { return a == respond.SetUserStatus }

// Do implements respond.Connector. req.UserID is a Duo username or username
// alias; req.Status must be "disabled".
func (c *Client) Do(ctx context.Context, req respond.Request) (respond.Result, error) {
	if !c.Supports(req.Action) {
		return respond.Result{}, respond.Permanent("duo: action %q is not supported", req.Action)
	}
	if err := checkStatus(req.Status); err != nil {
		return respond.Result{}, err
	}
	name := req.UserID
	if name == "" || len(name) > 1024 || !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return respond.Result{}, respond.Permanent("duo: %q is not a username", name)
	}

	// 1. The username to the user_id.
	body, err := c.call(ctx, http.MethodGet, "/admin/v1/users", url.Values{"username": {name}}, lookupCall)
	if err != nil {
		return respond.Result{}, err
	}
	var found []user
	if err := json.Unmarshal(body, &found); err != nil {
		return respond.Result{}, fmt.Errorf("duo: %s: unreadable response: %v", lookupCall, err)
	}
	switch {
	case len(found) == 0:
		return respond.Result{}, fmt.Errorf("duo: %w: %w", ErrUserNotFound, respond.Permanent("%s: no user %q", lookupCall, name))
	case len(found) > 1:
		// Duo answers one user or none; more means the filter was lost
		// on the way, and the first would be anyone.
		return respond.Result{}, respond.Permanent("duo: %s: %d users answered for one username", lookupCall, len(found))
	case !found[0].named(name):
		return respond.Result{}, respond.Permanent("duo: %s: the user answered is not %q", lookupCall, name)
	case !alnum(found[0].UserID, 64):
		return respond.Result{}, respond.Permanent("duo: %s: unexpected user_id %q", lookupCall, found[0].UserID)
	}
	id := found[0].UserID
	details := []string{lookupCall + ": 200"}

	// 2. The status.
	body, err = c.call(ctx, http.MethodPost, "/admin/v1/users/"+id, url.Values{"status": {req.Status}}, modifyCall)
	if err != nil {
		return respond.Result{IdPUserID: id}, err
	}
	var after user
	if err := json.Unmarshal(body, &after); err != nil {
		return respond.Result{IdPUserID: id}, fmt.Errorf("duo: %s: unreadable response: %v", modifyCall, err)
	}
	if after.UserID != id || !strings.EqualFold(after.Status, req.Status) {
		return respond.Result{IdPUserID: id}, respond.Permanent("duo: %s: answered user %q with status %q", modifyCall, after.UserID, after.Status)
	}
	details = append(details, fmt.Sprintf("%s status=%s: 200", modifyCall, req.Status))
	return respond.Result{Detail: strings.Join(details, "; "), IdPUserID: id}, nil
}

// checkStatus admits the statuses the connector may set. Duo's Modify User
// takes active, bypass and disabled; "locked out" is set by Duo alone;
// bypass would let the attacker in without a second factor, and active is
// not a response to an attack.
func checkStatus(s string) error {
	switch s {
	case StatusDisabled:
		return nil
	case "locked out":
		return respond.Permanent(`duo: status "locked out" is set by Duo itself and cannot be set through the Admin API; use "disabled"`)
	case "bypass", "active":
		return respond.Permanent("duo: refusing status %q: only %q is a response to an attack", s, StatusDisabled)
	default:
		return respond.Permanent("duo: status %q is not one Duo accepts; use %q", s, StatusDisabled)
	}
}

const (
	lookupCall = "GET /admin/v1/users?username="
	modifyCall = "POST /admin/v1/users/{user_id}"
)

// user is what the connector reads of a Duo user object.
type user struct {
	UserID   string         `json:"user_id"`
	Username string         `json:"username"`
	Status   string         `json:"status"`
	Aliases  map[string]any `json:"aliases"`
	Alias1   *string        `json:"alias1"`
	Alias2   *string        `json:"alias2"`
	Alias3   *string        `json:"alias3"`
	Alias4   *string        `json:"alias4"`
}

// named reports whether name is the user's username or one of its aliases
// (Duo usernames are case-insensitive).
func (u user) named(name string) bool {
	names := []string{u.Username}
	for _, a := range []*string{u.Alias1, u.Alias2, u.Alias3, u.Alias4} {
		if a != nil {
			names = append(names, *a)
		}
	}
	for _, a := range u.Aliases {
		if s, ok := a.(string); ok {
			names = append(names, s)
		}
	}
	return slices.ContainsFunc(names, func(n string) bool { return n != "" && strings.EqualFold(n, name) })
}

// envelope is every Admin API answer.
type envelope struct {
	Stat          string          `json:"stat"`
	Response      json.RawMessage `json:"response"`
	Code          json.RawMessage `json:"code"`
	Message       string          `json:"message"`
	MessageDetail string          `json:"message_detail"`
}

// call makes one signed call and returns the "response" of a 200 answer
// with stat OK, and the error Do returns otherwise.
func (c *Client) call(ctx context.Context, method, path string, params url.Values, what string) (json.RawMessage, error) {
	_, resp, err := c.send(ctx, method, path, params, what, 0, true)
	return resp, err
}

// send makes one signed call; on a 200 answer with stat OK it returns the
// whole body, at most limit bytes (outbound.MaxBody when zero), and its
// "response". A 404 is ErrUserNotFound when userCall.
func (c *Client) send(ctx context.Context, method, path string, params url.Values, what string, limit int64, userCall bool) ([]byte, json.RawMessage, error) {
	date := c.now().UTC().Format(time.RFC1123Z)
	query := canonParams(params)
	target := c.base + path
	var body io.Reader
	if method == http.MethodGet || method == http.MethodDelete {
		if query != "" {
			target += "?" + query
		}
	} else {
		body = strings.NewReader(query)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil || req.URL.EscapedPath() != path {
		return nil, nil, respond.Permanent("duo: %s: cannot build the request", what)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Date", date)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.SetBasicAuth(c.ikey, sign(c.skey, date, method, c.host, path, query))
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // it repeats the URL, the username in it
		}
		return nil, nil, fmt.Errorf("duo: %s: %w", what, c.redactErr(err))
	}
	data, err := outbound.ReadBody(resp, limit)
	if err != nil {
		return nil, nil, fmt.Errorf("duo: %s: HTTP %d: %w", what, resp.StatusCode, err)
	}
	var env envelope
	_ = json.Unmarshal(data, &env)
	if resp.StatusCode == http.StatusOK {
		if env.Stat != "OK" {
			return nil, nil, fmt.Errorf("duo: %s: HTTP 200 with stat %q", what, env.Stat)
		}
		return data, env.Response, nil
	}
	detail := ""
	if code := strings.Trim(string(env.Code), `"`); code != "" {
		detail = "code " + code
	}
	if env.Message != "" {
		detail = strings.TrimPrefix(detail+": "+env.Message, ": ")
	}
	if env.MessageDetail != "" {
		detail += " (" + env.MessageDetail + ")"
	}
	detail = c.redact(detail)
	wait, ok := outbound.RetryAfter(resp, time.Now())
	if resp.StatusCode == http.StatusTooManyRequests && !ok {
		wait, ok = DefaultRateLimitWait, true
	}
	serr := respond.StatusError(what, resp.StatusCode, detail, wait, ok)
	if userCall && resp.StatusCode == http.StatusNotFound {
		return nil, nil, fmt.Errorf("duo: %w: %w", ErrUserNotFound, serr)
	}
	return nil, nil, fmt.Errorf("duo: %w", serr)
}

func (c *Client) redact(s string) string {
	return strings.ReplaceAll(s, c.skey, "[redacted]")
}

func (c *Client) redactErr(err error) error {
	if strings.Contains(err.Error(), c.skey) {
		return errors.New(c.redact(err.Error()))
	}
	return err
}

// sign returns the hex HMAC-SHA512, keyed with skey, of Duo's canonical
// request: the Date header, the upper-case method, the lower-case host,
// the path and the canonical parameters (canonParams), joined by newlines.
func sign(skey, date, method, host, path, canonParams string) string {
	canon := strings.Join([]string{date, strings.ToUpper(method), strings.ToLower(host), path, canonParams}, "\n")
	mac := hmac.New(sha512.New, []byte(skey))
	mac.Write([]byte(canon))
	return hex.EncodeToString(mac.Sum(nil))
}

// canonParams encodes parameters as Duo signs them: keys in byte order,
// the values of a key in byte order, each byte but ASCII letters, digits,
// '_', '.', '~' and '-' percent-encoded with upper-case hex (a space is
// %20), pairs joined by '&'. The same string is the query or form body
// sent.
func canonParams(params url.Values) string {
	type kv struct{ k, v string }
	var pairs []kv
	for k, vs := range params {
		for _, v := range vs {
			pairs = append(pairs, kv{percent(k), percent(v)})
		}
	}
	slices.SortFunc(pairs, func(a, b kv) int {
		if c := strings.Compare(a.k, b.k); c != 0 {
			return c
		}
		return strings.Compare(a.v, b.v)
	})
	var b bytes.Buffer
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

func percent(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '_' || ch == '.' || ch == '~' || ch == '-' {
			b.WriteByte(ch)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[ch>>4])
		b.WriteByte(hexDigits[ch&15])
	}
	return b.String()
}
