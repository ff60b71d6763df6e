package entra

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pushbackhq/pushback/connectors/respond"
	"github.com/pushbackhq/pushback/pkg/outbound"
)

// tokenCall names the token request in errors and details.
const tokenCall = "POST /{tenant}/oauth2/v2.0/token"

// maxRefreshMargin is how long before its expiry a token is replaced at
// the most; a short-lived token is replaced after nine tenths of its life.
const maxRefreshMargin = 5 * time.Minute

// tokenResponse is the identity platform's answer, success or error.
type tokenResponse struct {
	AccessToken      string          `json:"access_token"`
	TokenType        string          `json:"token_type"`
	ExpiresIn        json.RawMessage `json:"expires_in"`
	Error            string          `json:"error"`
	ErrorDescription string          `json:"error_description"`
}

// fetchToken runs the client credentials grant.
func (c *Client) fetchToken(ctx context.Context) (string, time.Duration, error) {
	form := url.Values{
		"client_id":     {c.clientID},
		"client_secret": {c.secret},
		"scope":         {Scope},
		"grant_type":    {"client_credentials"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.tokenURL, bytes.NewReader([]byte(form.Encode())))
	if err != nil {
		return "", 0, respond.Permanent("entra: %s: %v", tokenCall, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("entra: %s: %w", tokenCall, c.redactErr(transportErr(err)))
	}
	body, err := outbound.ReadBody(resp, 0)
	if err != nil {
		return "", 0, fmt.Errorf("entra: %s: HTTP %d: %w", tokenCall, resp.StatusCode, err)
	}
	var tr tokenResponse
	_ = json.Unmarshal(body, &tr) // an unparsable body leaves it empty
	if resp.StatusCode != http.StatusOK {
		detail := c.redact(aadDetail(tr))
		if tr.Error == "temporarily_unavailable" {
			return "", 0, fmt.Errorf("entra: %s: HTTP %d (%s)", tokenCall, resp.StatusCode, detail)
		}
		wait, ok := outbound.RetryAfter(resp, time.Now())
		return "", 0, fmt.Errorf("entra: %w", respond.StatusError(tokenCall, resp.StatusCode, detail, wait, ok))
	}
	life, ok := parseExpiresIn(tr.ExpiresIn)
	if tr.AccessToken == "" || !strings.EqualFold(tr.TokenType, "Bearer") || !ok {
		return "", 0, fmt.Errorf("entra: %s: HTTP 200 without a bearer token and its lifetime", tokenCall)
	}
	return tr.AccessToken, life, nil
}

// parseExpiresIn reads expires_in, a number of seconds (sent as a string by
// older endpoints).
func parseExpiresIn(raw json.RawMessage) (time.Duration, bool) {
	s := strings.Trim(string(raw), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > 24*3600 {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

var aadCode = regexp.MustCompile(`^AADSTS\d+`)

// aadDetail keeps the OAuth error and the AADSTS code with its first
// sentence; trace and correlation ids and the rest are dropped.
func aadDetail(tr tokenResponse) string {
	d := tr.Error
	desc := strings.TrimSpace(tr.ErrorDescription)
	if code := aadCode.FindString(desc); code != "" {
		first, _, _ := strings.Cut(desc, ". ")
		first, _, _ = strings.Cut(first, "\n")
		if len(first) > 160 {
			first = first[:160]
		}
		d += ": " + strings.TrimSuffix(first, ".")
	}
	return d
}

// transportErr drops the *url.Error wrapper (it repeats the URL) and keeps
// the cause.
func transportErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
