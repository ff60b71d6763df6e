// Package devcerts makes a development certificate authority and node
// certificates for mutual TLS between Pushback processes. Production
// deployments bring certificates from their own PKI (cert-manager, Vault).
package devcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pushbackhq/pushback/pkg/auth"
)

// CA is a certificate authority that signs node certificates.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
}

// NewCA makes a self-signed CA valid for validity.
func NewCA(name string, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Pushback development CA"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Node is a certificate usable as both TLS server and client.
type Node struct {
	CertPEM, KeyPEM []byte
}

// Issue signs a node certificate for name with the given DNS names and IPs.
// When name is a service (intake, scoring, decision, notify) the
// certificate names it by URI SAN (auth.ServiceURI), which is how the
// mesh knows a peer service; any other name (a client of `pushback
// explain`, a host) makes a certificate that names no service.
func (ca *CA) Issue(name string, hosts []string, validity time.Duration) (*Node, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"Pushback"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if u, ok := auth.ServiceURI(name); ok {
		tmpl.URIs = append(tmpl.URIs, u)
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Node{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
	}, nil
}

// Files are the paths WriteFiles wrote.
type Files struct {
	CA   string
	Node map[string][2]string // name -> cert, key
}

// WriteFiles makes a CA and one node certificate per name in dir:
// ca.pem, ca-key.pem, NAME.pem, NAME-key.pem. Keys are written 0600.
// Existing files are never overwritten.
func WriteFiles(dir string, names, hosts []string, validity time.Duration) (Files, error) {
	if len(names) == 0 {
		return Files{}, errors.New("devcerts: at least one node name")
	}
	if validity <= 0 {
		return Files{}, errors.New("devcerts: the validity must be positive")
	}
	seen := map[string]bool{}
	for _, n := range names {
		// A node named "ca" would overwrite the CA; a path would write
		// outside dir.
		if n == "ca" || n == "." || n == ".." || strings.ContainsAny(n, `/\`) || seen[n] {
			return Files{}, fmt.Errorf("devcerts: %q cannot name a node certificate (not ca, not a path, each once)", n)
		}
		seen[n] = true
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return Files{}, err
	}
	ca, err := NewCA("pushback-dev-ca", validity)
	if err != nil {
		return Files{}, err
	}
	kb, err := x509.MarshalECPrivateKey(ca.Key)
	if err != nil {
		return Files{}, err
	}
	out := Files{CA: filepath.Join(dir, "ca.pem"), Node: map[string][2]string{}}
	writes := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{out.CA, ca.CertPEM, 0o644},
		{filepath.Join(dir, "ca-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600},
	}
	for _, n := range names {
		node, err := ca.Issue(n, hosts, validity)
		if err != nil {
			return Files{}, err
		}
		cp, kp := filepath.Join(dir, n+".pem"), filepath.Join(dir, n+"-key.pem")
		out.Node[n] = [2]string{cp, kp}
		writes = append(writes, struct {
			path string
			data []byte
			mode os.FileMode
		}{cp, node.CertPEM, 0o644}, struct {
			path string
			data []byte
			mode os.FileMode
		}{kp, node.KeyPEM, 0o600})
	}
	for _, w := range writes {
		if _, err := os.Lstat(w.path); err == nil {
			return Files{}, fmt.Errorf("devcerts: %s exists; refusing to overwrite", w.path)
		}
	}
	// All or nothing: each file is created exclusively (never through a
	// link that appeared meanwhile); on a failure the files written so far
	// are removed, so a rerun does not find half a set.
	var written []string
	for _, w := range writes {
		if err := writeNew(w.path, w.data, w.mode); err != nil {
			for _, p := range written {
				_ = os.Remove(p)
			}
			return Files{}, err
		}
		written = append(written, w.path)
	}
	return out, nil
}

// writeNew creates path, which must not exist, with data.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		_ = os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return err
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
