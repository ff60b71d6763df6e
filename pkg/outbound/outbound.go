// Package outbound is the plumbing of calls Pushback makes to other
// services' HTTP APIs: URLs that must be HTTPS (plain HTTP on loopback
// only), a client that bounds every call and never follows a redirect,
// bounded reads of response bodies, and the rate-limit headers vendors send.
package outbound

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds one outbound call when the caller sets none.
const DefaultTimeout = 10 * time.Second

// MaxBody is the most of a response body read by ReadBody.
const MaxBody = 1 << 20

// ParseURL checks an API base URL named by setting: an absolute https URL,
// or http to a loopback address (a test server, a local proxy). It returns
// the URL without a trailing slash.
func ParseURL(setting, raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%s: %q is not an absolute http(s) URL", setting, raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s: credentials in the URL are not allowed; use the secret setting", setting)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%s: %q must not carry a query or fragment", setting, raw)
	}
	if u.Scheme == "http" && !Loopback(u.Hostname()) {
		return nil, fmt.Errorf("%s: plain http is allowed to loopback addresses only; use https for %s", setting, u.Host)
	}
	return u, nil
}

// Loopback reports whether host (no port) names this machine only.
func Loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Client returns an HTTP client that gives up after timeout (DefaultTimeout
// when zero) and returns redirects to the caller instead of following them:
// a credential is for its URL only.
func Client(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &http.Client{Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// ErrBodyTooLarge is returned by ReadBody past its limit.
var ErrBodyTooLarge = errors.New("response body too large")

// ReadBody reads at most limit bytes (MaxBody when zero) of a response
// body and closes it.
func ReadBody(resp *http.Response, limit int64) ([]byte, error) {
	defer resp.Body.Close()
	if limit <= 0 {
		limit = MaxBody
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, ErrBodyTooLarge
	}
	return b, nil
}

// MaxWait caps what a server may ask a caller to wait.
const MaxWait = 15 * time.Minute

// RetryAfter returns how long a 429 or 503 response asks the caller to
// wait: Retry-After in seconds or as an HTTP date (RFC 9110), or Okta's
// X-Rate-Limit-Reset (the Unix time the window resets). ok is false when
// the response names no wait. The wait is capped at MaxWait.
func RetryAfter(resp *http.Response, now time.Time) (wait time.Duration, ok bool) {
	h := resp.Header
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs >= 0 {
			return min(time.Duration(secs)*time.Second, MaxWait), true
		}
		if t, err := http.ParseTime(v); err == nil {
			return min(max(t.Sub(now), 0), MaxWait), true
		}
	}
	if v := strings.TrimSpace(h.Get("X-Rate-Limit-Reset")); v != "" {
		if unix, err := strconv.ParseInt(v, 10, 64); err == nil && unix > 0 {
			return min(max(time.Unix(unix, 0).Sub(now), 0), MaxWait), true
		}
	}
	return 0, false
}
