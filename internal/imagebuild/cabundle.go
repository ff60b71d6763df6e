package imagebuild

import (
	"bytes"
	"encoding/pem"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// CABundle is the image's CA bundle, in PEM: the Mozilla NSS roots that
// golang.org/x/crypto/x509roots/fallback carries, pinned by go.sum, so
// that the bundle (and so the digest) does not depend on the building
// machine's /etc/ssl. Roots NSS trusts only with a constraint (a
// distrust date) are left out: a PEM file cannot carry the constraint,
// and leaving them out fails closed. Updating the module updates the bundle.
func CABundle() []byte {
	var b bytes.Buffer
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate})
	}
	return b.Bytes()
}
