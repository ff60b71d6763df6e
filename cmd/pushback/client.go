package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"google.golang.org/grpc/credentials"
)

// clientFlags are the credentials a command presents to a running mesh:
// a token (or a hook's HMAC secret) for its role, and a client certificate
// when the mesh requires mutual TLS.
type clientFlags struct {
	token, tokenFile, hmacSecret *string
	tlsCert, tlsKey, tlsCA       *string
	getenv                       func(string) string
	allowHMAC                    bool
}

// addClientFlags declares the flags on fs; role names the credential the
// command needs, in its usage text, and only a hook may sign instead of a
// token (allowHMAC). Secrets are read from the environment after parsing
// (resolve), so that the usage text never prints them as defaults.
func addClientFlags(fs *flag.FlagSet, getenv func(string) string, role string, allowHMAC bool) *clientFlags {
	f := &clientFlags{getenv: getenv, allowHMAC: allowHMAC}
	f.token = fs.String("token", "", "bearer token: "+role+" (env PUSHBACK_TOKEN)")
	f.tokenFile = fs.String("token-file", "", "file holding the bearer token")
	if allowHMAC {
		f.hmacSecret = fs.String("hmac-secret", "", "HMAC secret to sign the call with, when no token is given (env PUSHBACK_HMAC_SECRET)")
	}
	f.tlsCert = fs.String("tls-cert", getenv("PUSHBACK_TLS_CERT"), "client certificate (PEM) for a mesh that requires mutual TLS (env PUSHBACK_TLS_CERT)")
	f.tlsKey = fs.String("tls-key", getenv("PUSHBACK_TLS_KEY"), "private key (PEM) of --tls-cert (env PUSHBACK_TLS_KEY)")
	f.tlsCA = fs.String("tls-ca", getenv("PUSHBACK_TLS_CA"), "CA (PEM) the mesh's certificate is checked against (env PUSHBACK_TLS_CA)")
	return f
}

// resolve returns the call credentials and the transport credentials (nil
// for plaintext). Its errors name the flag and never a secret.
func (f *clientFlags) resolve() (auth.Credentials, credentials.TransportCredentials, error) {
	c := auth.Credentials{Token: *f.token}
	if c.Token == "" {
		c.Token = f.getenv("PUSHBACK_TOKEN")
	}
	if f.allowHMAC {
		if c.HMACSecret = *f.hmacSecret; c.HMACSecret == "" {
			c.HMACSecret = f.getenv("PUSHBACK_HMAC_SECRET")
		}
	}
	if *f.tokenFile != "" {
		b, err := os.ReadFile(*f.tokenFile)
		if err != nil {
			return c, nil, fmt.Errorf("--token-file: %w", err)
		}
		c.Token = strings.TrimSpace(string(b))
	}
	if *f.tlsCert == "" && *f.tlsKey == "" && *f.tlsCA == "" {
		return c, nil, nil
	}
	_, client, _, err := rpc.MutualTLS(*f.tlsCert, *f.tlsKey, *f.tlsCA)
	if err != nil {
		return c, nil, fmt.Errorf("--tls-cert, --tls-key, --tls-ca: %w", err)
	}
	return c, client, nil
}
