package notify

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestOutboundClientDoesNotFollowRedirects: a signed notification is for
// its URL only; a redirect is a failed delivery (retried), not a silent
// success at another address.
func TestOutboundClientDoesNotFollowRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			elsewhere.Add(1)
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	defer srv.Close()
	resp, err := outboundClient().Post(srv.URL+"/hook", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || elsewhere.Load() != 0 {
		t.Fatalf("status %d, %d requests to the redirect target; want the 302 itself and none", resp.StatusCode, elsewhere.Load())
	}
}
