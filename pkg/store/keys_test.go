package store_test

import (
	"testing"

	"github.com/pushbackhq/pushback/pkg/store"
)

func TestKeyPartAndCursor(t *testing.T) {
	for in, want := range map[string]string{"alice": "alice", "a/b": "YS9i%", "50%": "NTAl%", "": ""} {
		if got := store.KeyPart(in); got != want {
			t.Errorf("KeyPart(%q) = %q, want %q", in, got, want)
		}
	}
	prefix := []byte("decision/user//alice/")
	key := append(append([]byte(nil), prefix...), "00000000000000000001/x"...)
	tok := store.Cursor(key)
	if got, ok := store.ParseCursor(tok, prefix); !ok || string(got) != string(key) {
		t.Fatalf("round trip: %q, %v", got, ok)
	}
	for _, bad := range []string{"!!", store.Cursor([]byte("decision/user//bob/1")), store.Cursor(prefix)} {
		if _, ok := store.ParseCursor(bad, prefix); ok {
			t.Errorf("token %q accepted", bad)
		}
	}
}
