package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/devcerts"
)

// certsCmd makes a development CA and node certificates for mutual TLS.
func certsCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "certs", "directory to write ca.pem, ca-key.pem, NAME.pem and NAME-key.pem into")
	names := fs.String("names", "pushback", "comma-separated node certificate names: intake, scoring, decision and notify make certificates that name their service (URI SAN urn:pushback:service:NAME), by which peers are authorized; any other name (a host, a client such as pushback explain) names no service")
	hosts := fs.String("hosts", "localhost,127.0.0.1,::1", "comma-separated DNS names and IPs the certificates are valid for")
	validity := fs.Duration("validity", 90*24*time.Hour, "how long the certificates are valid")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: pushback certs [--out DIR] [--names a,b] [--hosts h1,h2] [--validity 2160h]")
		fmt.Fprintln(stderr, "Makes a development CA and node certificates for --tls-cert/--tls-key/--tls-ca.")
		fmt.Fprintln(stderr, "For the split topology: pushback certs --names=intake,scoring,decision,notify,client")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	files, err := devcerts.WriteFiles(*out, split(*names), split(*hosts), *validity)
	if err != nil {
		fmt.Fprintf(stderr, "pushback certs: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "CA: %s\n", files.CA)
	for _, n := range split(*names) {
		f := files.Node[n]
		role := "names no service"
		if u, ok := auth.ServiceURI(n); ok {
			role = "names service " + u.String()
		}
		fmt.Fprintf(stdout, "%s (%s): --tls-cert=%s --tls-key=%s --tls-ca=%s\n", n, role, f[0], f[1], files.CA)
	}
	return 0
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
