package notify_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/pushbackhq/pushback/services/notify"
)

func TestSSFConfigurationDocument(t *testing.T) {
	c, err := notify.NewSSFConfiguration("https://pushback.example.com")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(notify.SSFConfigurationHandler(c))
	defer srv.Close()
	resp, err := http.Get(srv.URL + notify.SSFConfigurationPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") {
		t.Fatalf("answer %d %v", resp.StatusCode, resp.Header)
	}
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"spec_version":               "1_0",
		"issuer":                     "https://pushback.example.com",
		"jwks_uri":                   "https://pushback.example.com/.well-known/jwks.json",
		"delivery_methods_supported": []any{"urn:ietf:rfc:8935"},
	}
	for k, v := range want {
		got, _ := json.Marshal(doc[k])
		w, _ := json.Marshal(v)
		if string(got) != string(w) {
			t.Errorf("%s = %s, want %s", k, got, w)
		}
	}
	// No stream management exists: advertising its endpoints would send a
	// receiver to routes that answer 404.
	for _, k := range []string{"configuration_endpoint", "status_endpoint", "add_subject_endpoint", "remove_subject_endpoint", "verification_endpoint"} {
		if _, ok := doc[k]; ok {
			t.Errorf("the document advertises %s", k)
		}
	}
	if len(doc) != len(want) {
		t.Errorf("document %v has members beyond %v", doc, want)
	}

	post, err := http.Post(srv.URL+notify.SSFConfigurationPath, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	_ = post.Body.Close()
	if post.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST answered %d", post.StatusCode)
	}
}

// TestSSFConfigurationPaths: an issuer with a path is discovered at the
// well-known path with the issuer's path appended, as SSF says, and its
// keys under the issuer.
func TestSSFConfigurationPaths(t *testing.T) {
	c, err := notify.NewSSFConfiguration("https://idp.example.com/pushback/")
	if err != nil {
		t.Fatal(err)
	}
	if c.JWKSURI != "https://idp.example.com/pushback/.well-known/jwks.json" {
		t.Fatalf("jwks_uri %s", c.JWKSURI)
	}
	if p := c.Paths(); !slices.Equal(p, []string{"/.well-known/ssf-configuration", "/.well-known/ssf-configuration/pushback"}) {
		t.Fatalf("paths %v", p)
	}
}

func TestSSFIssuerMustBeAURL(t *testing.T) {
	for _, issuer := range []string{"", "pushback", "/relative", "ftp://pushback.example.com", "https://pushback.example.com/?tenant=a",
		"https://pushback.example.com/#x", "https://user:pass@pushback.example.com",
		"https://pushback.example.com/a{b}", "https://pushback.example.com/a//b", "https://pushback.example.com/a%20b", "https://pushback.example.com/?"} {
		if _, err := notify.NewSSFConfiguration(issuer); err == nil {
			t.Errorf("issuer %q accepted", issuer)
		}
	}
	c := notify.DefaultConfig()
	c.SETReceiver = "https://receiver.example.com/events"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "public-url") {
		t.Fatalf("Validate without public-url: %v", err)
	}
	c.PublicURL = "https://pushback.example.com?x=1"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "public-url") {
		t.Fatalf("Validate with a query in public-url: %v", err)
	}
	c.PublicURL = "https://pushback.example.com"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
