package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
)

// NoCredential is the fingerprint of a call that presented no bearer token
// (the newcomer's mesh, which needs none, or a service's own call).
const NoCredential = "none"

// Fingerprint names a bearer token without revealing it: "sha256:" and the
// first 16 hex digits of its SHA-256. An audit record keeps it so that an
// operator's act is tied to the credential that made it, which the
// operator cannot choose, while a leaked record does not leak the token.
func Fingerprint(token string) string {
	if token == "" {
		return NoCredential
	}
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// CallerFingerprint is the Fingerprint of the bearer token in the call's
// incoming metadata. The guard has checked that token before the handler
// runs, so a handler may record it as who called.
func CallerFingerprint(ctx context.Context) string {
	v := incoming(ctx)("authorization")
	if len(v) == 0 {
		return NoCredential
	}
	return Fingerprint(BearerToken(v[0]))
}
