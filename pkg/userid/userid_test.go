package userid

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pushbackhq/pushback/pkg/apierr"
	"golang.org/x/text/unicode/norm"
)

func TestFoldMakesSpellingsOfOneUserOne(t *testing.T) {
	tests := []struct{ in, want string }{
		{"bob", "bob"},
		{"Bob", "bob"},
		{"BOB", "bob"},
		{" bob ", "bob"},
		{"\tBOB\n", "bob"},
		{"\u00a0bob\u3000", "bob"},             // no-break and ideographic spaces
		{"ｂｏｂ", "bob"},                         // fullwidth
		{"ＢＯＢ", "bob"},                         // fullwidth capitals
		{"Bob@Example.COM", "bob@example.com"}, // an address is folded whole
		{"straße", "strasse"},                  // full folding, not lowering
		{"STRASSE", "strasse"},
		{"ﬁnance", "finance"},      // the fi ligature
		{"Ǆ", "dž"},                // a titlecase digraph
		{"\u212a", "k"},            // KELVIN SIGN
		{"e\u0301", "é"},           // composed
		{"\u00a8bob", "\u0308bob"}, // NFKC gives a space that is trimmed
		{"Ⅻ", "xii"},               // ROMAN NUMERAL TWELVE
		{"user-42", "user-42"},
		{"", ""},
		{"   ", ""},
	}
	for _, tt := range tests {
		if got := Fold.Apply(tt.in); got != tt.want {
			t.Errorf("Fold(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestExactOnlyTrims(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Bob", "Bob"},
		{" Bob\u3000", "Bob"},
		{"ｂｏｂ", "ｂｏｂ"},
		{"Bob@Example.COM", "Bob@Example.COM"},
	}
	for _, tt := range tests {
		if got := Exact.Apply(tt.in); got != tt.want {
			t.Errorf("Exact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRulesPerTenant(t *testing.T) {
	r := NewRules(Fold, map[string]Rule{"acme": Exact})
	if got := r.Canonical("acme", "Bob"); got != "Bob" {
		t.Errorf("acme (exact): %q", got)
	}
	if got := r.Canonical("globex", "Bob"); got != "bob" {
		t.Errorf("globex (default fold): %q", got)
	}
	if got := r.Canonical("", "Bob"); got != "bob" {
		t.Errorf("default tenant: %q", got)
	}
	var none *Rules
	if got := none.Canonical("acme", "Bob"); got != "bob" || none.For("acme") != Default {
		t.Errorf("nil rules: %q, %v", got, none.For("acme"))
	}
	exact := NewRules(Exact, nil)
	if got := exact.Canonical("", " Bob "); got != "Bob" {
		t.Errorf("exact default: %q", got)
	}
}

func TestCheckRefusesWhatIsNotAnIDOnceCanonical(t *testing.T) {
	var r *Rules
	long := strings.Repeat("\ufdfa", 20) // 60 bytes, 660 once NFKC expands it
	tests := []struct {
		name, id, want, violation string
	}{
		{"already canonical", "bob", "bob", ""},
		{"folded", "BOB", "bob", ""},
		{"white space only", " \u3000 ", "", "is only white space"},
		{"expands past the limit", long, "", "longer than 256 bytes in its canonical form"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v apierr.Violations
			got := r.Check(&v, "user_id", "", tt.id)
			if got != tt.want {
				t.Errorf("Check(%q) = %q, want %q", tt.id, got, tt.want)
			}
			switch {
			case tt.violation == "" && v.Len() > 0:
				t.Errorf("unexpected violation %v", v.Err())
			case tt.violation != "" && (v.Len() != 1 || v.List()[0].Field != "user_id" || !strings.Contains(v.List()[0].Description, tt.violation)):
				t.Errorf("violations %v, want one of user_id saying %q", v.List(), tt.violation)
			}
		})
	}
}

// TestFoldAllocatesNothingForACanonicalASCIIID: Decide and Observe apply
// the rule to every id, nearly always one already canonical.
func TestFoldAllocatesNothingForACanonicalASCIIID(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = Fold.Apply("alice@example.com") }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func TestConfig(t *testing.T) {
	c := DefaultConfig()
	for _, st := range c.Settings() {
		switch st.Name {
		case "user-id-rule":
			if st.Get() != "fold" {
				t.Errorf("default rule %q", st.Get())
			}
		case "user-id-rule-tenants":
			if err := st.Set("acme=exact, globex = fold"); err != nil {
				t.Fatal(err)
			}
		case "user-aliases":
			if st.Get() != "" {
				t.Errorf("default aliases %q", st.Get())
			}
		default:
			t.Errorf("unexpected setting %q", st.Name)
		}
	}
	r, err := c.Rules()
	if err != nil {
		t.Fatal(err)
	}
	if r.For("acme") != Exact || r.For("globex") != Fold || r.For("initech") != Fold {
		t.Errorf("rules %v %v %v", r.For("acme"), r.For("globex"), r.For("initech"))
	}
	bad := Config{Rule: "lower", Tenants: map[string]string{"acme": "Exact!", "globex": "fold"}}
	err = bad.Validate()
	if err == nil || !strings.Contains(err.Error(), `user-id-rule: "lower"`) || !strings.Contains(err.Error(), `tenant "acme"`) || strings.Contains(err.Error(), "globex") {
		t.Fatalf("Validate = %v", err)
	}
	if _, err := bad.Rules(); err == nil {
		t.Fatal("Rules accepted an unknown rule")
	}
}

// FuzzFold checks what every caller relies on: the canonical form is
// stable (Decide canonicalises what intake already did), in NFKC, and
// valid UTF-8 whenever the input was.
func FuzzFold(f *testing.F) {
	for _, s := range []string{"Bob", " ｂｏｂ ", "straße", "\u00a8bob", "ǅ", "ΐ", "\u0345", "İstanbul", "\ufdfa"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range []Rule{Fold, Exact} {
			once := r.Apply(s)
			if twice := r.Apply(once); twice != once {
				t.Fatalf("%s(%q) = %q, but %s of that is %q", r, s, once, r, twice)
			}
			if utf8.ValidString(s) && !utf8.ValidString(once) {
				t.Fatalf("%s(%q) = %q is not UTF-8", r, s, once)
			}
		}
		if c := Fold.Apply(s); utf8.ValidString(s) && !norm.NFKC.IsNormalString(c) {
			t.Fatalf("Fold(%q) = %q is not in NFKC", s, c)
		}
	})
}

// BenchmarkFold: Decide and scoring's Assess apply the rule to every
// attempt; an id already canonical must cost next to nothing.
func BenchmarkFold(b *testing.B) {
	for _, id := range []string{"alice.smith@example.com", "Alice.Smith@Example.com", "ａｌｉｃｅ.smith@example.com"} {
		b.Run(id, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = Fold.Apply(id)
			}
		})
	}
}
