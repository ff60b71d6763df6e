package auth_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pushbackhq/pushback/pkg/auth"
	"google.golang.org/grpc/metadata"
)

// TestFingerprintNamesATokenWithoutRevealingIt: audit records keep the
// fingerprint of the token that acted; it tells tokens apart and reveals
// none of them.
func TestFingerprintNamesATokenWithoutRevealingIt(t *testing.T) {
	const token = "operator-token-0123456789"
	f := auth.Fingerprint(token)
	if !strings.HasPrefix(f, "sha256:") || len(f) != len("sha256:")+16 || strings.Contains(f, token[:8]) {
		t.Fatalf("Fingerprint = %q", f)
	}
	if auth.Fingerprint(token+"x") == f {
		t.Fatal("two tokens share a fingerprint")
	}
	if auth.Fingerprint("") != auth.NoCredential {
		t.Fatalf("no token: %q", auth.Fingerprint(""))
	}
	for _, tc := range []struct {
		md   metadata.MD
		want string
	}{
		{metadata.Pairs("authorization", "Bearer "+token), f},
		{metadata.Pairs("authorization", "bearer  "+token+" "), f},
		{metadata.Pairs("authorization", token), f},
		{metadata.MD{}, auth.NoCredential},
	} {
		if got := auth.CallerFingerprint(metadata.NewIncomingContext(context.Background(), tc.md)); got != tc.want {
			t.Errorf("CallerFingerprint(%v) = %q, want %q", tc.md, got, tc.want)
		}
	}
}
