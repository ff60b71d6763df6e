package duo

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/connectors/duo/duotest"
	"github.com/pushbackhq/pushback/connectors/respond"
)

// The example of Duo's API documentation ("Authentication"): its
// integration key, secret key and request, and the Authorization header it
// shows for them. These keys are the documentation's, not an account's.
const (
	docIKey = "DIWJ8X6AEYOR5OMC6TQ1"
	docSKey = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep"
	docAuth = "Basic RElXSjhYNkFFWU9SNU9NQzZUUTE6MWJmZmI4OTI0MzQ4ZjdkYjdkYTllN2Q3ZDc0OWRlZDkzYWFmZDAyZDhlOTA0OTYwZGE3Yjk2YzU3NTEwMjIwMTg1YTY0YTI4MjdlZThmMjRhYzVkMzA4MDJhOWVlOTdlNTlkZTQ0YjMwNGIxODI0MmYwZDU5NmQxNWE4MTIyYWY="
)

func TestSignMatchesDuoDocumentedExample(t *testing.T) {
	params := url.Values{"username": {"root"}, "realname": {"First Last"}}
	canon := canonParams(params)
	if canon != "realname=First%20Last&username=root" {
		t.Fatalf("canonParams = %q", canon)
	}
	sig := sign(docSKey, "Tue, 21 Aug 2012 17:29:18 -0000", "post", "api-XXXXXXXX.duosecurity.com", "/accounts/v1/account/list", canon)
	got := "Basic " + base64.StdEncoding.EncodeToString([]byte(docIKey+":"+sig))
	if got != docAuth {
		t.Fatalf("Authorization = %s\nwant            %s", got, docAuth)
	}
}

func TestCanonParams(t *testing.T) {
	for _, tc := range []struct {
		params url.Values
		want   string
	}{
		{url.Values{}, ""},
		{url.Values{"username": {"a b+c&d=e/f?g#h%i@j~k-l_m.n"}}, "username=a%20b%2Bc%26d%3De%2Ff%3Fg%23h%25i%40j~k-l_m.n"},
		{url.Values{"b": {"2", "1"}, "a": {"z"}, "a_b": {"y"}}, "a=z&a_b=y&b=1&b=2"},
		{url.Values{"name": {"é日"}}, "name=%C3%A9%E6%97%A5"},
		{url.Values{"p": {"!\"#$%&'()*+,/:;<=>?@[\\]^`{|}"}}, "p=%21%22%23%24%25%26%27%28%29%2A%2B%2C%2F%3A%3B%3C%3D%3E%3F%40%5B%5C%5D%5E%60%7B%7C%7D"},
	} {
		if got := canonParams(tc.params); got != tc.want {
			t.Errorf("canonParams(%v) = %q, want %q", tc.params, got, tc.want)
		}
	}
}

func fakeClient(t *testing.T) (*duotest.Server, *Client) {
	t.Helper()
	s := duotest.New()
	t.Cleanup(s.Close)
	c, err := New(Config{URL: s.URL, IKey: s.IKey, SKey: s.SKey, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// A request signed with a clock 10 minutes off is refused: the fake
// really checks the Date it signs.
func TestClockTenMinutesOffIsRefused(t *testing.T) {
	for _, off := range []time.Duration{-10 * time.Minute, 10 * time.Minute} {
		s, c := fakeClient(t)
		s.AddUser("alice")
		c.now = func() time.Time { return time.Now().Add(off) }
		_, err := c.Do(context.Background(), respond.Request{UserID: "alice", Action: respond.SetUserStatus, Status: "disabled"})
		if !respond.IsPermanent(err) || !strings.Contains(err.Error(), "40105") {
			t.Errorf("clock off by %s: %v, want a permanent 40105", off, err)
		}
		if len(s.StatusChanges()) != 0 {
			t.Errorf("clock off by %s: status changed", off)
		}
		// Within the tolerance it passes.
		c.now = func() time.Time { return time.Now().Add(off / 5) }
		if _, err := c.Do(context.Background(), respond.Request{UserID: "alice", Action: respond.SetUserStatus, Status: "disabled"}); err != nil {
			t.Errorf("clock off by %s: %v", off/5, err)
		}
	}
}

// The fake verifies what was signed: parameters, path, method and host
// changed after signing are refused.
func TestFakeRefusesTamperedRequests(t *testing.T) {
	s, c := fakeClient(t)
	id := s.AddUser("alice")
	send := func(method, path, signedPath string, signed, sent url.Values, host string) int {
		t.Helper()
		date := time.Now().UTC().Format(time.RFC1123Z)
		req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(canonParams(sent)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Date", date)
		req.SetBasicAuth(s.IKey, sign(s.SKey, date, method, host, signedPath, canonParams(signed)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	p := "/admin/v1/users/" + id
	disabled := url.Values{"status": {"disabled"}}
	if st := send("POST", p, p, disabled, url.Values{"status": {"bypass"}}, c.host); st != 401 {
		t.Errorf("changed parameter: HTTP %d", st)
	}
	if st := send("POST", p, "/admin/v1/users/DUOTHERUSER000000000", disabled, disabled, c.host); st != 401 {
		t.Errorf("changed path: HTTP %d", st)
	}
	if st := send("POST", p, p, disabled, disabled, "api-other.duosecurity.com"); st != 401 {
		t.Errorf("other host: HTTP %d", st)
	}
	if len(s.StatusChanges()) != 0 {
		t.Fatalf("a tampered request changed a status: %v", s.StatusChanges())
	}
	if st := send("POST", p, p, disabled, disabled, strings.ToUpper(c.host)); st != 200 {
		t.Errorf("the untampered request (host in upper case): HTTP %d", st)
	}
}
