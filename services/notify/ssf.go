package notify

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// SSFConfigurationPath is where a Shared Signals transmitter publishes its
// configuration metadata (OpenID SSF 1.0, "Obtaining Transmitter
// Configuration Metadata"), for an issuer without a path.
const SSFConfigurationPath = "/.well-known/ssf-configuration"

// Delivery method URIs of the Shared Signals Framework.
const (
	// DeliveryPush is RFC 8935 push delivery, the one Pushback transmits by.
	DeliveryPush = "urn:ietf:rfc:8935"
	// DeliveryPoll is RFC 8936 poll delivery.
	DeliveryPoll = "urn:ietf:rfc:8936"
)

// SSFConfiguration is the transmitter configuration metadata a receiver
// reads before it trusts a stream's tokens. Pushback pushes to receivers
// the operator configures; it has no stream management API, so it names
// no configuration, status or verification endpoint (a receiver that
// insists on managing its stream cannot use Pushback as a transmitter).
type SSFConfiguration struct {
	// SpecVersion is the SSF version implemented ("1_0").
	SpecVersion string `json:"spec_version"`
	// Issuer is the "iss" of every SET, the public URL of the mesh.
	Issuer string `json:"issuer"`
	// JWKSURI is where the signing keys are, absolute.
	JWKSURI string `json:"jwks_uri"`
	// DeliveryMethodsSupported lists delivery method URIs.
	DeliveryMethodsSupported []string `json:"delivery_methods_supported"`
}

// issuerPath admits the paths an issuer's well-known path can be built from
// and served at: plain segments of unreserved characters.
var issuerPath = regexp.MustCompile(`^(/[A-Za-z0-9._~-]+)*/?$`)

// NewSSFConfiguration is the metadata of a transmitter whose issuer is
// the mesh's public URL: an absolute http(s) URL without query or
// fragment, as SSF requires of an issuer.
func NewSSFConfiguration(issuer string) (SSFConfiguration, error) {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil ||
		!issuerPath.MatchString(u.EscapedPath()) {
		return SSFConfiguration{}, errors.New("the security event issuer (public-url) must be an absolute http(s) URL without credentials, query or fragment, its path plain segments")
	}
	return SSFConfiguration{
		SpecVersion:              "1_0",
		Issuer:                   issuer,
		JWKSURI:                  strings.TrimSuffix(issuer, "/") + JWKSPath,
		DeliveryMethodsSupported: []string{DeliveryPush},
	}, nil
}

// Paths are the HTTP paths the document is served at: the well-known path
// with the issuer's path appended (SSF inserts the well-known segment
// between host and path), and the bare well-known path where the issuer has
// none or a proxy strips it.
func (c SSFConfiguration) Paths() []string {
	u, err := url.Parse(c.Issuer)
	if err != nil {
		return nil
	}
	out := []string{SSFConfigurationPath}
	if p := strings.TrimSuffix(u.EscapedPath(), "/"); p != "" {
		out = append(out, SSFConfigurationPath+p)
	}
	return out
}

// SSFConfigurationHandler serves the document as JSON, cacheable for the
// same five minutes as the key set it names.
func SSFConfigurationHandler(c SSFConfiguration) http.Handler {
	body, _ := json.Marshal(c)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMethodNotAllowed)
			_, _ = w.Write([]byte(`{"error":"method not allowed"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(body)
	})
}
