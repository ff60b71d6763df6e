package store

import (
	"errors"
	"testing"
)

func TestKeyspaces(t *testing.T) {
	ks, err := NewKeyspaces(
		Keyspace{Prefix: "scoring/user/", HashTagParts: 2},
		Keyspace{Prefix: "scoring/change/", Scannable: true},
		Keyspace{Prefix: "decision/user/", Scannable: true, HashTagParts: 2},
		Keyspace{Prefix: "scoring/user/", HashTagParts: 2}, // declared twice alike
		Keyspace{Prefix: "notify/incident/"},
		Keyspace{Prefix: "notify/incidents/", Scannable: true},
	)
	if err != nil {
		t.Fatal(err)
	}
	if ks.Len() != 5 {
		t.Fatalf("%d keyspaces, want 5", ks.Len())
	}
	r := &Redis{prefix: "p:", ks: ks}
	for _, tc := range []struct {
		key, keyspace, rkey string
	}{
		{"scoring/user/t/u", "scoring/user/", "p:{scoring/user/t/u}"},
		{"scoring/user/t%/u/x", "scoring/user/", "p:{scoring/user/t%/u}/x"},
		{"decision/user/t/u/00000000000000000001/id", "decision/user/", "p:{decision/user/t/u}/00000000000000000001/id"},
		{"scoring/change/0001/x", "scoring/change/", "p:{scoring/change/0001/x}"},
		{"notify/incident/t/u", "notify/incident/", "p:{notify/incident/t/u}"},
		{"notify/incidents/t", "notify/incidents/", "p:{notify/incidents/t}"},
		{"notify/incidents/", "notify/incidents/", "p:{notify/incidents/}"},
		{"notify/incident", "", ""},
		{"scoring/", "", ""},
		{"scoring/users/t/u", "", ""},
		{"zzz/", "", ""},
		{"", "", ""},
	} {
		k, ok := ks.Lookup([]byte(tc.key))
		if k.Prefix != tc.keyspace || ok != (tc.keyspace != "") {
			t.Errorf("Lookup(%q) = %q, %v; want %q", tc.key, k.Prefix, ok, tc.keyspace)
			continue
		}
		if ok {
			if got := r.rkey(k, []byte(tc.key)); got != tc.rkey {
				t.Errorf("rkey(%q) = %q, want %q", tc.key, got, tc.rkey)
			}
		}
	}
	if _, err := ks.checkScan([]byte("scoring/user/t/")); !errors.Is(err, ErrKeyspace) {
		t.Errorf("scan of a keyspace that is not scannable: %v", err)
	}
	if _, err := ks.checkScan([]byte("decision/user/t/u/")); err != nil {
		t.Errorf("scan inside a scannable keyspace: %v", err)
	}

	for name, decl := range map[string][]Keyspace{
		"nested":              {{Prefix: "a/"}, {Prefix: "a/b/"}},
		"declared twice":      {{Prefix: "a/"}, {Prefix: "a/", Scannable: true}},
		"no trailing slash":   {{Prefix: "a"}},
		"empty":               {{Prefix: ""}},
		"negative hash parts": {{Prefix: "a/", HashTagParts: -1}},
	} {
		if _, err := NewKeyspaces(decl...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
