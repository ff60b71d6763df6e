package rpc

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"google.golang.org/grpc/credentials"
)

// MutualTLS loads a certificate, its key and the CA that signs every peer,
// and returns server credentials that require a client certificate signed by
// that CA and client credentials that present the certificate and verify the
// server against the CA.
//
// inProcess is the client side for the in-memory connection to this
// process's own server: it verifies the server as the name in its own
// certificate, since an in-memory address has no host name.
func MutualTLS(certFile, keyFile, caFile string) (server, client, inProcess credentials.TransportCredentials, err error) {
	if certFile == "" || keyFile == "" || caFile == "" {
		return nil, nil, nil, errors.New("mutual TLS needs a certificate, its key and a CA file")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("load certificate %s: %w", certFile, err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read CA %s: %w", caFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, nil, fmt.Errorf("CA %s holds no PEM certificate", caFile)
	}
	server = credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	})
	client = credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS13,
	})
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, nil, nil, fmt.Errorf("parse certificate %s: %w", certFile, err)
	}
	name := leaf.Subject.CommonName
	if len(leaf.DNSNames) > 0 {
		name = leaf.DNSNames[0]
	} else if len(leaf.IPAddresses) > 0 {
		name = leaf.IPAddresses[0].String()
	}
	inProcess = credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   name,
		MinVersion:   tls.VersionTLS13,
	})
	return server, client, inProcess, nil
}

// LogHandshakeFailures wraps server credentials so that a peer refused
// during the TLS handshake (wrong CA, expired, no certificate) is logged
// with its address and the reason, instead of vanishing into a closed
// connection.
func LogHandshakeFailures(c credentials.TransportCredentials, log *slog.Logger) credentials.TransportCredentials {
	return loggingCreds{TransportCredentials: c, log: log}
}

type loggingCreds struct {
	credentials.TransportCredentials
	log *slog.Logger
}

func (l loggingCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, info, err := l.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		l.log.Warn("peer refused: TLS handshake failed", slog.String("peer", conn.RemoteAddr().String()), slog.Any("error", err))
	}
	return c, info, err
}

func (l loggingCreds) Clone() credentials.TransportCredentials {
	return loggingCreds{TransportCredentials: l.TransportCredentials.Clone(), log: l.log}
}
