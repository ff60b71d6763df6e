package devcerts_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/pkg/auth"
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

func TestWriteFilesRefusesWhatWouldLoseTheCA(t *testing.T) {
	tests := []struct {
		name     string
		names    []string
		validity time.Duration
	}{
		{"a node named ca", []string{"scoring", "ca"}, time.Hour},
		{"a path", []string{"../escape"}, time.Hour},
		{"a name twice", []string{"a", "a"}, time.Hour},
		{"no validity", []string{"a"}, 0},
		{"negative validity", []string{"a"}, -48 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := devcerts.WriteFiles(dir, tt.names, []string{"localhost"}, tt.validity); err == nil {
				t.Fatal("accepted")
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Fatalf("a refused call left %d files", len(left))
			}
		})
	}
	// A second run never overwrites the first.
	dir := t.TempDir()
	if _, err := devcerts.WriteFiles(dir, []string{"a"}, []string{"localhost"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(dir + "/ca-key.pem")
	if _, err := devcerts.WriteFiles(dir, []string{"b"}, []string{"localhost"}, time.Hour); err == nil {
		t.Fatal("a second run over an existing CA succeeded")
	}
	after, _ := os.ReadFile(dir + "/ca-key.pem")
	if string(before) != string(after) {
		t.Fatal("the CA key changed")
	}
	if _, err := os.Stat(dir + "/b.pem"); err == nil {
		t.Fatal("the refused run left b.pem")
	}
}

// A service's certificate names its service by URI SAN, which is what the
// mesh authorizes; a client's names none.
func TestNodeCertificatesNameTheirService(t *testing.T) {
	ca, err := devcerts.NewCA("test-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]auth.Role{
		"scoring": {auth.Scoring}, "decision": {auth.Decision}, "intake": {auth.Intake}, "notify": {auth.Notify},
		"client": nil, "pushback": nil, "mesh": nil,
	} {
		node, err := ca.Issue(name, []string{"localhost"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(node.CertPEM, node.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if got := auth.ServicesOf(leaf); !slices.Equal(got, want) {
			t.Errorf("%s certificate names services %v, want %v", name, got, want)
		}
	}
}
