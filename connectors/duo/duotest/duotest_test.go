package duotest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// The fake's canonicalisation, written apart from the connector's, also
// yields the signature of the example in Duo's API documentation (its
// example secret key, not an account's).
func TestCanonicalRequestMatchesDuoDocumentedExample(t *testing.T) {
	canon := canonicalRequest("Tue, 21 Aug 2012 17:29:18 -0000", "post", "api-XXXXXXXX.duosecurity.com", "/accounts/v1/account/list",
		url.Values{"username": {"root"}, "realname": {"First Last"}})
	want := "Tue, 21 Aug 2012 17:29:18 -0000\nPOST\napi-xxxxxxxx.duosecurity.com\n/accounts/v1/account/list\nrealname=First%20Last&username=root"
	if canon != want {
		t.Fatalf("canonical request %q, want %q", canon, want)
	}
	sig := signature("Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep", canon)
	if sig != "1bffb8924348f7db7da9e7d7d749ded93aafd02d8e904960da7b96c57510220185a64a2827ee8f24ac5d30802a9ee97e59de44b304b18242f0d596d15a8122af" {
		t.Fatalf("signature %s", sig)
	}
}

func get(t *testing.T, s *Server, auth func(*http.Request)) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+"/admin/v1/users?username=alice", nil)
	auth(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return resp.StatusCode, body
}

func TestRefusals(t *testing.T) {
	s := New()
	defer s.Close()
	s.AddUser("alice")
	signed := func(ikey, skey string, at time.Time) func(*http.Request) {
		return func(r *http.Request) {
			date := at.UTC().Format(time.RFC1123Z)
			r.Header.Set("Date", date)
			r.SetBasicAuth(ikey, signature(skey, canonicalRequest(date, r.Method, r.Host, r.URL.EscapedPath(), r.URL.Query())))
		}
	}
	for _, tc := range []struct {
		name   string
		auth   func(*http.Request)
		status int
		code   float64
		msg    string
	}{
		{"no credentials", func(*http.Request) {}, 401, 40101, "Missing request credentials"},
		{"wrong ikey", signed("DIWRONGWRONGWRONGWRO", s.SKey, time.Now()), 401, 40102, "Invalid integration key in request credentials"},
		{"wrong skey", signed(s.IKey, "not-the-secret-key", time.Now()), 401, 40103, "Invalid signature in request credentials"},
		{"date 10 minutes old", signed(s.IKey, s.SKey, time.Now().Add(-10*time.Minute)), 401, 40105, ""},
		{"date 10 minutes ahead", signed(s.IKey, s.SKey, time.Now().Add(10*time.Minute)), 401, 40105, ""},
		{"good", signed(s.IKey, s.SKey, time.Now()), 200, 0, ""},
	} {
		status, body := get(t, s, tc.auth)
		if status != tc.status {
			t.Errorf("%s: HTTP %d, want %d (%v)", tc.name, status, tc.status, body)
			continue
		}
		if tc.code == 0 {
			if body["stat"] != "OK" || len(body["response"].([]any)) != 1 {
				t.Errorf("%s: body %v", tc.name, body)
			}
			continue
		}
		if body["stat"] != "FAIL" || body["code"] != tc.code || (tc.msg != "" && body["message"] != tc.msg) {
			t.Errorf("%s: body %v", tc.name, body)
		}
		if tc.msg != "" && len(body) != 3 {
			t.Errorf("%s: body %v has more than stat, code and message", tc.name, body)
		}
	}
}
