package store_test

import (
	"fmt"
	"math"
	"strings"
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

func TestJoinKeyAndAppendUint(t *testing.T) {
	for _, parts := range [][]string{{"a"}, {"decision/user", "t", "u", ""}, {"x", "", "y"}, {}} {
		want := strings.Join(parts, "/")
		if got := store.JoinKey(parts...); string(got) != want || cap(got) != len(want) {
			t.Errorf("JoinKey(%q) = %q (cap %d), want %q", parts, got, cap(got), want)
		}
	}
	for _, v := range []uint64{0, 1, 42, 1733382000000, math.MaxUint64} {
		if got, want := string(store.AppendUint([]byte("p/"), v, 10, 20)), fmt.Sprintf("p/%020d", v); got != want {
			t.Errorf("AppendUint(%d, 10, 20) = %q, want %q", v, got, want)
		}
		if got, want := string(store.AppendUint(nil, v, 16, 16)), fmt.Sprintf("%016x", v); got != want {
			t.Errorf("AppendUint(%d, 16, 16) = %q, want %q", v, got, want)
		}
	}
}
