package formats

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
)

// trace is everything a reader returned, in order, as text.
func trace(t testing.TB, r *Reader) []string {
	t.Helper()
	var out []string
	for i := 0; ; i++ {
		if i > 1<<20 {
			t.Fatal("reader did not terminate")
		}
		evs, skip, err := r.Next()
		if errors.Is(err, io.EOF) {
			return append(out, "EOF")
		}
		if err != nil {
			out = append(out, fmt.Sprintf("%T %v", err, err))
			var re *RecordError
			if !errors.As(err, &re) {
				return out
			}
			continue
		}
		line := "skip=" + skip
		for _, e := range evs {
			b, err := protojson.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			line += " " + string(b)
		}
		out = append(out, line)
	}
}

// sequential is the reference: every value through encoding/json's
// decoder, one record mapped at a time.
func sequential(f Format, data []byte) *Reader {
	r := NewReader(f, bytes.NewReader(data), Options{Tenant: "t"})
	r.noLines, r.workers = true, 1
	return r
}

// checkSameAsSequential fails when the reader's line splitting and parallel
// mapping return anything other than the one-at-a-time decoder path.
func checkSameAsSequential(t *testing.T, f Format, data []byte) {
	t.Helper()
	want := trace(t, sequential(f, data))
	for _, workers := range []int{1, 2, 4} {
		r := NewReader(f, bytes.NewReader(data), Options{Tenant: "t"})
		r.workers = workers
		got := trace(t, r)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%d workers on %q:\ngot  %q\nwant %q", workers, truncate(string(data), 300), got, want)
		}
	}
}

func nativeLine(i int) string {
	return fmt.Sprintf(`{"eventId":"e%d","userId":"u%d@example.com","type":"EVENT_TYPE_PUSH_SENT","time":"2024-01-01T00:00:%02dZ"}`, i, i%7, i%60)
}

func TestReaderMatchesSequential(t *testing.T) {
	many := func(n int, bad func(i int) string) string {
		var b strings.Builder
		for i := range n {
			if s := bad(i); s != "" {
				b.WriteString(s)
			} else {
				b.WriteString(nativeLine(i))
			}
			b.WriteString("\n")
		}
		return b.String()
	}
	long := `{"eventId":"long","userId":"u","type":"EVENT_TYPE_PUSH_SENT","time":"2024-01-01T00:00:00Z","appId":"` + strings.Repeat("a", 100<<10) + `"}`
	cases := map[string]string{
		"empty":              "",
		"white space":        " \n\t\r\n ",
		"bom":                "\xEF\xBB\xBF" + nativeLine(1) + "\n",
		"no final newline":   nativeLine(1) + "\n" + nativeLine(2),
		"crlf and blanks":    nativeLine(1) + "\r\n\r\n  \n" + nativeLine(2) + "  \r\n",
		"two on a line":      nativeLine(1) + " " + nativeLine(2) + "\n" + nativeLine(3) + "\n",
		"pretty printed":     nativeLine(1) + "\n{\n  \"eventId\": \"x\",\n  \"userId\": \"u\", \"type\": 1, \"time\": \"2024-01-01T00:00:00Z\"\n}\n" + nativeLine(3) + "\n",
		"truncated last":     nativeLine(1) + "\n" + `{"eventId": "n-7", "userId":` + "\n",
		"garbage mid-stream": many(600, func(i int) string { return map[bool]string{true: `{"eventId": nope}`}[i == 300] }),
		"brace garbage":      nativeLine(1) + "\n" + `{"a":1}}{` + "\n" + nativeLine(2) + "\n",
		"scalar line":        nativeLine(1) + "\n42\n" + nativeLine(2) + "\n",
		"record errors": many(700, func(i int) string {
			return map[bool]string{true: `{"eventId":"x","userId":"u","type":"EVENT_TYPE_NOPE"}`}[i%37 == 0]
		}),
		"skips and missing": many(300, func(i int) string { return map[int]string{1: `{"eventId":"s","userId":"u"}`, 2: `{"userId":"u"}`}[i%5] }),
		"envelopes in lines": many(100, func(i int) string {
			return map[bool]string{true: `{"events":[` + nativeLine(i) + `,` + nativeLine(i+1000) + `]}`}[i%10 == 0]
		}),
		"nested envelope":             `{"events":[{"events":[]}]}` + "\n" + nativeLine(1) + "\n",
		"array then lines":            "[" + nativeLine(1) + "," + nativeLine(2) + "]\n" + nativeLine(3) + "\n",
		"line longer than the buffer": nativeLine(1) + "\n" + long + "\n" + nativeLine(2) + "\n",
		"invalid utf-8":               nativeLine(1) + "\n" + `{"eventId":"a` + "\xff" + `","userId":"u","type":1,"time":"2024-01-01T00:00:00Z"}` + "\n",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) { checkSameAsSequential(t, Native, []byte(in)) })
	}
	// Every fixture of every format.
	for _, f := range All {
		files, _ := filepath.Glob(filepath.Join("testdata", string(f), "*.json*"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			t.Run(file, func(t *testing.T) { checkSameAsSequential(t, f, data) })
		}
	}
}

// BenchmarkReaderNative compares the reader with the one-at-a-time decoder
// path it replaced, on the same NDJSON.
func BenchmarkReaderNative(b *testing.B) {
	var buf bytes.Buffer
	for i := range 10_000 {
		buf.WriteString(nativeLine(i))
		buf.WriteByte('\n')
	}
	data := buf.Bytes()
	for _, bc := range []struct {
		name string
		open func() *Reader
	}{
		{"sequential", func() *Reader { return sequential(Native, data) }},
		{"reader", func() *Reader { return NewReader(Native, bytes.NewReader(data), Options{Tenant: "t"}) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for range b.N {
				r := bc.open()
				for {
					if _, _, err := r.Next(); errors.Is(err, io.EOF) {
						break
					} else if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(10_000*b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// TestReaderRefusesAnEndlessLine: a line longer than any record stops the
// reader with an error instead of growing without bound.
func TestReaderRefusesAnEndlessLine(t *testing.T) {
	data := nativeLine(1) + "\n" + `{"eventId":"` + strings.Repeat("x", MaxRecordBytes+10) + "\n" + nativeLine(2) + "\n"
	r := NewReader(Native, strings.NewReader(data), Options{})
	var err error
	for err == nil {
		_, _, err = r.Next()
	}
	var se *SyntaxError
	if !errors.As(err, &se) || !strings.Contains(se.Error(), "longer than") {
		t.Fatalf("err = %v, want a SyntaxError about the line length", err)
	}
}
