package formats

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestEntraGraphSameAsEventHub: a Graph sign-in page, a bare list of signIn
// resources and Event Hub records holding the same resources as properties
// parse into the same events; only the raw event type names the category.
func TestEntraGraphSameAsEventHub(t *testing.T) {
	page, err := os.ReadFile(filepath.Join("testdata", "entra", "graph_signins_page.json"))
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Value []json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(page, &p); err != nil || len(p.Value) != 3 {
		t.Fatalf("fixture: %v, %d sign-ins", err, len(p.Value))
	}
	list, _ := json.Marshal(p.Value)
	var lines [][]byte
	for _, v := range p.Value {
		var c bytes.Buffer
		_ = json.Compact(&c, v)
		lines = append(lines, c.Bytes())
	}
	records := func(category string) []byte {
		type rec struct {
			Time       string          `json:"time"`
			Category   string          `json:"category,omitempty"`
			Properties json.RawMessage `json:"properties"`
		}
		var rs []rec
		for _, v := range p.Value {
			rs = append(rs, rec{Time: "2000-01-01T00:00:00Z", Category: category, Properties: v})
		}
		b, _ := json.Marshal(map[string]any{"records": rs})
		return b
	}
	want := readAll(t, Entra, page)
	if len(want.Events) != 5 || want.Skipped != nil || want.Errors != nil {
		t.Fatalf("page: %d events, skipped %v, errors %v", len(want.Events), want.Skipped, want.Errors)
	}
	for name, in := range map[string][]byte{
		"bare list":                  list,
		"records without category":   records(""),
		"records of SignInLogs":      records("SignInLogs"),
		"one signIn per line":        bytes.Join(lines, []byte("\n")),
		"value of one line (NDJSON)": append(bytes.ReplaceAll(page, []byte("\n"), nil), '\n'),
	} {
		got := readAll(t, Entra, in)
		if len(got.Events) != len(want.Events) || got.Skipped != nil || got.Errors != nil {
			t.Errorf("%s: %d events, skipped %v, errors %v", name, len(got.Events), got.Skipped, got.Errors)
			continue
		}
		for i := range got.Events {
			g := bytes.ReplaceAll(got.Events[i], []byte(`"SignInLogs:`), []byte(`"signIn:`))
			if !bytes.Equal(g, want.Events[i]) {
				t.Errorf("%s: event %d\n got %s\nwant %s", name, i, got.Events[i], want.Events[i])
			}
		}
	}
}

// TestEntraGraphSignInNotAGuess: an object that is neither a record nor a
// signIn resource is still skipped as before.
func TestEntraGraphSignInNotAGuess(t *testing.T) {
	got := readAll(t, Entra, []byte(`{"userPrincipalName":"ada@contoso.com"}`))
	if len(got.Events) != 0 || got.Skipped["entra record without category"] != 1 {
		t.Fatalf("got %+v", got)
	}
}
