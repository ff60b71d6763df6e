package devcerts_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/pkg/devcerts"
)

func TestWriteFilesMakesVerifiableCertificates(t *testing.T) {
	dir := t.TempDir()
	files, err := devcerts.WriteFiles(dir, []string{"scoring", "decision"}, []string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA file holds no certificate")
	}
	for _, name := range []string{"scoring", "decision"} {
		pair, err := tls.LoadX509KeyPair(files.Node[name][0], files.Node[name][1])
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, host := range []string{"localhost", "127.0.0.1"} {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Fatalf("%s for %s: %v", name, host, err)
			}
		}
		info, err := os.Stat(files.Node[name][1])
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("key file mode %v, %v; want 0600", info.Mode(), err)
		}
	}
	if _, err := devcerts.WriteFiles(dir, []string{"scoring"}, nil, time.Hour); err == nil {
		t.Fatal("existing files were overwritten")
	}
	if _, err := os.Stat(filepath.Join(dir, "ca-key.pem")); err != nil {
		t.Fatal(err)
	}
}
