package formats

import (
	"bytes"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// invalidTextMsg is what a record with a string that is not text is told.
const invalidTextMsg = "is not valid UTF-8 (a byte that is not UTF-8, or a \\u escape of half a surrogate pair); the record is refused rather than the text replaced"

// invalidText returns the path, relative to the record, of the first JSON
// string in raw that is not text: one holding a byte that is not UTF-8 or
// a \u escape of an unpaired surrogate. encoding/json replaces both with
// U+FFFD without a word, which turns a user id into another user's (and
// two spellings that differ only there into one); a record carrying one
// is refused instead, naming the field. Nearly every record is plain UTF-8
// without surrogate escapes and costs one pass over its bytes.
func invalidText(raw []byte) (path string, bad bool) {
	if utf8.Valid(raw) && !surrogateEscape(raw) {
		return "", false
	}
	w := textWalker{b: raw}
	w.value("")
	return w.path, w.bad
}

// surrogateEscape reports whether raw may hold a \u escape of a surrogate
// (\uD800 to \uDFFF); it may say yes to an escaped backslash followed by
// such text, which the walker then reads correctly.
func surrogateEscape(raw []byte) bool {
	for {
		i := bytes.Index(raw, []byte(`\u`))
		if i < 0 || i+3 >= len(raw) {
			return false
		}
		if (raw[i+2] == 'd' || raw[i+2] == 'D') && bytes.IndexByte([]byte("89abcdefABCDEF"), raw[i+3]) >= 0 {
			return true
		}
		raw = raw[i+2:]
	}
}

// textWalker finds the first string of a JSON value that is not text. It
// stops at anything that is not JSON: the codec reports that.
type textWalker struct {
	b    []byte
	i    int
	path string
	bad  bool
}

func (w *textWalker) ws() {
	for w.i < len(w.b) && (w.b[w.i] == ' ' || w.b[w.i] == '\t' || w.b[w.i] == '\n' || w.b[w.i] == '\r') {
		w.i++
	}
}

func (w *textWalker) next(c byte) bool {
	w.ws()
	if w.i < len(w.b) && w.b[w.i] == c {
		w.i++
		return true
	}
	return false
}

// value walks one value at path; false stops the walk.
func (w *textWalker) value(path string) bool {
	w.ws()
	if w.i >= len(w.b) {
		return false
	}
	switch w.b[w.i] {
	case '{':
		w.i++
		if w.next('}') {
			return true
		}
		for {
			w.ws()
			key, st := w.str()
			if st != strText {
				return w.stop(st, path)
			}
			field := key
			if path != "" {
				field = path + "." + key
			}
			if !w.next(':') || !w.value(field) {
				return false
			}
			if w.next(',') {
				continue
			}
			return w.next('}')
		}
	case '[':
		w.i++
		if w.next(']') {
			return true
		}
		for n := 0; ; n++ {
			if !w.value(path + "[" + strconv.Itoa(n) + "]") {
				return false
			}
			if w.next(',') {
				continue
			}
			return w.next(']')
		}
	case '"':
		if _, st := w.str(); st != strText {
			return w.stop(st, path)
		}
		return true
	default:
		for w.i < len(w.b) && bytes.IndexByte([]byte(",]} \t\r\n"), w.b[w.i]) < 0 {
			w.i++
		}
		return true
	}
}

// What str found.
const (
	strText    = iota // a string that is text
	strNotText        // a string that is not text
	strNotJSON        // no string, or one that does not end
)

// stop ends the walk at a string that is not text or is not JSON,
// recording path in the first case.
func (w *textWalker) stop(st int, path string) bool {
	if st == strNotText {
		w.path, w.bad = path, true
	}
	return false
}

// str reads the string at w.i and returns its raw content.
func (w *textWalker) str() (string, int) {
	if w.i >= len(w.b) || w.b[w.i] != '"' {
		return "", strNotJSON
	}
	start := w.i + 1
	for j := start; j < len(w.b); {
		switch c := w.b[j]; {
		case c == '"':
			w.i = j + 1
			return string(w.b[start:j]), strText
		case c == '\\' && j+1 < len(w.b) && w.b[j+1] == 'u':
			r, ok := hex4(w.b, j+2)
			if !ok {
				return "", strNotJSON
			}
			j += 6
			if !utf16.IsSurrogate(r) {
				continue
			}
			// Half a pair is no character: a high surrogate must be
			// followed at once by the escape of a low one.
			low := rune(0)
			if r < 0xdc00 && j+1 < len(w.b) && w.b[j] == '\\' && w.b[j+1] == 'u' {
				low, _ = hex4(w.b, j+2)
			}
			if utf16.DecodeRune(r, low) == utf8.RuneError {
				return "", strNotText
			}
			j += 6
		case c == '\\':
			j += 2
		case c < utf8.RuneSelf:
			j++
		default:
			r, n := utf8.DecodeRune(w.b[j:])
			if r == utf8.RuneError && n == 1 {
				return "", strNotText
			}
			j += n
		}
	}
	return "", strNotJSON
}

// hex4 reads the four hex digits of a \u escape at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[i:i+4]), 16, 32)
	return rune(n), err == nil
}
