package formats

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// goldenDoc is what a fixture file parsed into.
type goldenDoc struct {
	Events  []json.RawMessage `json:"events"`
	Skipped map[string]int    `json:"skipped,omitempty"`
	Errors  []string          `json:"errors,omitempty"`
}

func readAll(t testing.TB, f Format, data []byte) goldenDoc {
	t.Helper()
	doc := goldenDoc{Events: []json.RawMessage{}}
	r := NewReader(f, bytes.NewReader(data), Options{})
	for {
		evs, skip, err := r.Next()
		if errors.Is(err, io.EOF) {
			return doc
		}
		var re *RecordError
		if errors.As(err, &re) {
			doc.Errors = append(doc.Errors, stable(re.Error()))
			continue
		}
		if err != nil {
			doc.Errors = append(doc.Errors, stable(err.Error()))
			return doc
		}
		if skip != "" {
			if doc.Skipped == nil {
				doc.Skipped = map[string]int{}
			}
			doc.Skipped[skip]++
		}
		for _, e := range evs {
			b, err := protojson.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			var c bytes.Buffer
			if err := json.Compact(&c, b); err != nil {
				t.Fatal(err)
			}
			doc.Events = append(doc.Events, c.Bytes())
		}
	}
}

// stable removes protojson's deliberately unstable spacing from messages.
func stable(s string) string { return strings.ReplaceAll(s, "\u00a0", " ") }

func TestGolden(t *testing.T) {
	for _, f := range All {
		files, _ := filepath.Glob(filepath.Join("testdata", string(f), "*.*json"))
		if len(files) == 0 {
			t.Errorf("%s: no fixtures", f)
		}
		sort.Strings(files)
		for _, in := range files {
			t.Run(string(f)+"/"+filepath.Base(in), func(t *testing.T) {
				data, err := os.ReadFile(in)
				if err != nil {
					t.Fatal(err)
				}
				got, err := json.MarshalIndent(readAll(t, f, data), "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, '\n')
				golden := strings.TrimSuffix(in, filepath.Ext(in)) + ".golden"
				if *update {
					if err := os.WriteFile(golden, got, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from %s; run with -update and review the diff\ngot:\n%s", in, golden, got)
				}
			})
		}
	}
}
