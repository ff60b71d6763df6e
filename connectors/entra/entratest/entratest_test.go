package entratest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func post(t *testing.T, target string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(target, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	return resp.StatusCode, body
}

// The token endpoint checks tenant, client, secret, scope and grant
// exactly, and answers each mistake as the identity platform does.
func TestTokenEndpointChecksEveryField(t *testing.T) {
	s := New()
	defer s.Close()
	good := func() url.Values {
		return url.Values{"client_id": {s.ClientID}, "client_secret": {s.ClientSecret}, "scope": {Scope}, "grant_type": {"client_credentials"}}
	}
	tokenURL := func(tenant string) string { return s.URL + "/" + tenant + "/oauth2/v2.0/token" }
	for _, tc := range []struct {
		name   string
		tenant string
		change func(url.Values)
		status int
		err    string
		code   string
	}{
		{"unknown tenant", "fabrikam.onmicrosoft.com", func(url.Values) {}, 400, "invalid_request", "AADSTS90002"},
		{"unknown client", s.Tenant, func(f url.Values) { f.Set("client_id", NewID()) }, 400, "unauthorized_client", "AADSTS700016"},
		{"wrong secret", s.Tenant, func(f url.Values) { f.Set("client_secret", s.ClientSecret+"x") }, 401, "invalid_client", "AADSTS7000215"},
		{"secret in another case", s.Tenant, func(f url.Values) { f.Set("client_secret", strings.ToUpper(s.ClientSecret)) }, 401, "invalid_client", "AADSTS7000215"},
		{"no scope", s.Tenant, func(f url.Values) { f.Del("scope") }, 400, "invalid_scope", "AADSTS1002012"},
		{"another scope", s.Tenant, func(f url.Values) { f.Set("scope", "https://graph.microsoft.com/User.Read") }, 400, "invalid_scope", "AADSTS1002012"},
		{"another grant", s.Tenant, func(f url.Values) { f.Set("grant_type", "password") }, 400, "unsupported_grant_type", "AADSTS70003"},
	} {
		form := good()
		tc.change(form)
		status, body := post(t, tokenURL(tc.tenant), form)
		if status != tc.status || body["error"] != tc.err || !strings.HasPrefix(body["error_description"].(string), tc.code+":") {
			t.Errorf("%s: HTTP %d %v", tc.name, status, body)
		}
	}
	if s.TokenRequests() != 7 {
		t.Errorf("%d token requests counted", s.TokenRequests())
	}
	for _, tenant := range []string{s.Tenant, "CONTOSO.onmicrosoft.com"} {
		status, body := post(t, tokenURL(tenant), good())
		tok, _ := body["access_token"].(string)
		if status != 200 || body["token_type"] != "Bearer" || body["expires_in"] != float64(3600) || tok == "" {
			t.Fatalf("tenant %s: HTTP %d %v", tenant, status, body)
		}
		// Graph takes the token, and only it.
		for _, auth := range []string{"", "Bearer", "Bearer " + tok + "x", "Basic " + tok} {
			if st := graphGet(t, s, auth); st != 401 {
				t.Errorf("Authorization %q: HTTP %d", auth, st)
			}
		}
		if st := graphGet(t, s, "Bearer "+tok); st != 404 {
			t.Errorf("valid token: HTTP %d, want 404 for an unknown user", st)
		}
	}
}

func graphGet(t *testing.T, s *Server, auth string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+"/v1.0/users/nobody@contoso.onmicrosoft.com?$select=id", nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// List signIns needs a bearer token, refuses a $top or $filter it does not
// know and a $skiptoken it did not issue, and pages with an opaque one.
func TestListSignIns(t *testing.T) {
	s := New()
	defer s.Close()
	_, body := post(t, s.URL+"/"+s.Tenant+"/oauth2/v2.0/token", url.Values{"client_id": {s.ClientID}, "client_secret": {s.ClientSecret}, "scope": {Scope}, "grant_type": {"client_credentials"}})
	tok, _ := body["access_token"].(string)
	get := func(target, token string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	at := time.Date(2026, 3, 6, 9, 0, 0, 0, time.UTC)
	for i := range 3 {
		s.AddSignIn(SignIn{ID: NewID(), Created: at.Add(time.Duration(i) * time.Minute)})
	}
	list := s.URL + "/v1.0/auditLogs/signIns?"
	filter := url.Values{"$filter": {"createdDateTime ge 2026-03-06T09:01:00Z"}, "$top": {"1"}}.Encode()
	if st, _ := get(list+filter, ""); st != http.StatusUnauthorized {
		t.Errorf("no token: %d", st)
	}
	for _, q := range []string{"$top=0", "$top=1001", "$filter=userId+eq+'x'", "$skiptoken=forged"} {
		if st, _ := get(list+q, tok); st != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, st)
		}
	}
	st, m := get(list+filter, tok)
	v, _ := m["value"].([]any)
	next, _ := m["@odata.nextLink"].(string)
	if st != http.StatusOK || len(v) != 1 || !strings.HasPrefix(next, list) || !strings.Contains(next, "%24skiptoken=") {
		t.Fatalf("first page: %d, %d sign-ins, nextLink %q", st, len(v), next)
	}
	if got := v[0].(map[string]any)["createdDateTime"]; got != "2026-03-06T09:02:00Z" {
		t.Errorf("first sign-in %v, want the newest", got)
	}
	st, m = get(next, tok)
	v, _ = m["value"].([]any)
	if _, more := m["@odata.nextLink"]; st != http.StatusOK || len(v) != 1 || more {
		t.Fatalf("second page: %d, %d sign-ins, more %v", st, len(v), more)
	}
	s.SetPermissions(UserRead)
	if st, m := get(list+filter, tok); st != http.StatusForbidden || m["error"].(map[string]any)["code"] != "Authorization_RequestDenied" {
		t.Errorf("without %s: %d %v", AuditLogRead, st, m)
	}
}
