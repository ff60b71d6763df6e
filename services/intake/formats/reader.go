package formats

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
)

// batchSize bounds how many records are read ahead of the caller and mapped
// together; parallelMin is the smallest batch worth spreading over workers.
const (
	batchSize   = 256
	parallelMin = 16
)

// Reader reads records one at a time from a stream.
//
// Records are read sequentially but mapped in batches on up to GOMAXPROCS
// goroutines; Next still returns them one by one in input order, with the
// same paths and errors as reading them one at a time. No goroutine outlives
// a call to Next, so a Reader needs no closing.
//
// Newline-delimited input is split at line ends without a JSON decoder when
// every line holds one object; the first line that does not (a value spread
// over lines, two values on a line, malformed JSON) hands the rest of the
// stream to encoding/json's decoder from that line on, so where the decoder
// stops and what it reports are unchanged.
type Reader struct {
	codec codec
	opts  Options
	br    *bufio.Reader
	// dec reads top-level arrays and streams that are not one object a
	// line; decBase is the stream offset of its first byte.
	dec     *json.Decoder
	decBase int64
	state   int // 0 start, 1 in top-level array, 2 value stream, 3 done
	index   int // top-level values read
	// noLines keeps streams on the decoder (tests compare the two paths).
	noLines bool
	// read is the stream offset after the last line read; tail holds a
	// line read but not yet handed out (the decoder starts with it).
	read int64
	tail []byte
	// lastEnd is the stream offset just after the last record returned
	// from a line: where the decoder's position would be.
	lastEnd int64
	// jobs are records read ahead, from pos on not yet returned; an error
	// that ended reading is returned after them.
	jobs    []job
	pos     int
	readErr error
	offset  int64
	workers int
}

// job is one record and, once mapped, what it became.
type job struct {
	raw []byte
	// line is the whole input line raw came from (line mode only) and
	// start its stream offset.
	line  []byte
	start int64
	// Path: prefix + "[idx]"; nested records are inside an envelope.
	prefix string
	idx    int
	nested bool
	first  bool // the first value of a stream that is not an array

	mapped    bool
	events    []*eventv1.AuthEvent
	skip      string
	inner     []json.RawMessage
	innerPath string
	err       error
	invalid   bool // a line that is not valid JSON
	panicked  any
}

// errBatchEnd ends a batch early: the next record needs the decoder.
var errBatchEnd = errors.New("formats: batch ends")

func (j *job) path() string {
	return j.prefix + "[" + strconv.Itoa(j.idx) + "]"
}

// NewReader reads format f from r.
func NewReader(f Format, r io.Reader, o Options) *Reader {
	return &Reader{codec: codecOf(f), opts: o, br: bufio.NewReaderSize(r, 64<<10), workers: runtime.GOMAXPROCS(0)}
}

// Offset is how many input bytes have been consumed, ignoring leading
// white space (it may run a batch of records ahead of Next).
func (r *Reader) Offset() int64 {
	if r.dec != nil {
		return r.decBase + r.dec.InputOffset()
	}
	return r.offset
}

// Next returns the events of the next record, or the source type when the
// record was skipped. A *RecordError leaves the reader usable; io.EOF ends
// the input; a *SyntaxError is fatal.
func (r *Reader) Next() ([]*eventv1.AuthEvent, string, error) {
	if r.codec == nil {
		return nil, "", errors.New("formats: unknown format")
	}
	for {
		if r.pos == len(r.jobs) {
			r.jobs, r.pos = r.jobs[:0], 0
			if r.readErr != nil {
				return nil, "", r.readErr
			}
			r.fill()
			continue
		}
		if !r.jobs[r.pos].mapped {
			r.mapFrom(r.pos)
		}
		j := &r.jobs[r.pos]
		if j.panicked != nil {
			panic(j.panicked)
		}
		if j.invalid {
			// Not one JSON value: the decoder takes over from this line.
			r.toDecoder(r.pos)
			continue
		}
		r.pos++
		if j.line != nil {
			r.offset = j.start + int64(len(j.line))
			r.lastEnd = j.start + int64(bytes.LastIndexByte(j.line, '}')) + 1
		}
		if j.inner != nil {
			prefix := j.path() + "." + j.innerPath
			if j.first {
				// One envelope as the whole body: paths start at the envelope.
				prefix = j.innerPath
			}
			inner := make([]job, len(j.inner), len(j.inner)+len(r.jobs)-r.pos)
			for i, raw := range j.inner {
				inner[i] = job{raw: raw, prefix: prefix, idx: i, nested: true}
			}
			r.jobs, r.pos = append(inner, r.jobs[r.pos:]...), 0
			continue
		}
		return j.events, j.skip, j.err
	}
}

// fill reads up to batchSize top-level records into jobs, recording the
// error (io.EOF or a *SyntaxError) that ended the input in readErr.
func (r *Reader) fill() {
	for len(r.jobs) < batchSize {
		j, err := r.nextValue()
		if errors.Is(err, errBatchEnd) {
			return
		}
		if err != nil {
			r.readErr = err
			return
		}
		j.idx = r.index
		j.first = r.state == 2 && r.index == 0
		r.index++
		r.jobs = append(r.jobs, j)
	}
}

// mapFrom maps the unmapped jobs from i on, up to a batch, in parallel.
func (r *Reader) mapFrom(i int) {
	end := i
	for end < len(r.jobs) && end-i < batchSize && !r.jobs[end].mapped {
		end++
	}
	batch := r.jobs[i:end]
	workers := min(r.workers, len(batch)/parallelMin)
	if workers <= 1 {
		for k := range batch {
			r.mapJob(&batch[k])
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1)) - 1
				if k >= len(batch) {
					return
				}
				r.mapJob(&batch[k])
			}
		}()
	}
	wg.Wait()
}

// mapJob runs the codec on one record; it must not touch the Reader's
// mutable state, as jobs of a batch are mapped concurrently.
func (r *Reader) mapJob(j *job) {
	j.mapped = true
	defer func() {
		if p := recover(); p != nil {
			j.panicked = p
		}
	}()
	m, inner, innerPath, err := r.codec(j.raw, r.opts)
	if err != nil && j.line != nil && !json.Valid(j.raw) {
		j.invalid = true
		return
	}
	switch {
	case err == nil && inner != nil && j.nested:
		err = errField("", "envelope nested in an envelope")
	case err == nil && inner != nil:
		j.inner, j.innerPath = inner, innerPath
		return
	}
	if err != nil || len(m.events) > 0 {
		// A record that maps to events, or fails to (protojson refuses
		// such a string with a message that does not name it), may not
		// carry a string encoding/json would have replaced.
		if field, bad := invalidText(j.raw); bad {
			j.err = &RecordError{Record: j.path(), Field: field, Msg: invalidTextMsg}
			return
		}
	}
	j.events, j.skip, j.err = result(j, m, err, r.opts)
}

func result(j *job, m mapped, err error, o Options) ([]*eventv1.AuthEvent, string, error) {
	if err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			return nil, "", &RecordError{Record: j.path(), Field: fe.field, Msg: fe.msg}
		}
		return nil, "", &RecordError{Record: j.path(), Msg: jsonMsg(err)}
	}
	for i, e := range m.events {
		if err := finish(e, o); err != nil {
			var fe *fieldError
			if errors.As(err, &fe) {
				return nil, "", &RecordError{Record: j.path(), Field: fe.field, Msg: fe.msg}
			}
			return nil, "", &RecordError{Record: j.path(), Msg: fmt.Sprintf("event %d: %v", i, err)}
		}
	}
	return m.events, m.skip, nil
}

// toDecoder hands the stream from job i's line on to a JSON decoder: the
// jobs after it are dropped and their lines read again.
func (r *Reader) toDecoder(i int) {
	pending := r.gap(r.jobs[i].start)
	for _, j := range r.jobs[i:] {
		pending = append(pending, j.line...)
	}
	pending = append(pending, r.tail...)
	r.index = r.jobs[i].idx
	r.jobs, r.pos, r.tail, r.readErr, r.state = r.jobs[:0], 0, nil, nil, 2
	r.startDecoder(pending)
}

// gap starts the decoder's input at the end of the last record, as if it
// had read the stream from the start: the white space between that record
// and the line at offset start is given back as spaces, so the decoder's
// offsets are the ones reading the whole stream would report.
func (r *Reader) gap(start int64) []byte {
	r.decBase = r.lastEnd
	return bytes.Repeat([]byte{' '}, int(start-r.lastEnd))
}

func (r *Reader) startDecoder(pending []byte) {
	var src io.Reader = r.br
	if len(pending) > 0 {
		src = io.MultiReader(bytes.NewReader(pending), r.br)
	}
	r.dec = json.NewDecoder(src)
	r.dec.UseNumber()
}

// nextValue returns the next top-level record (an array element or a
// value of a stream).
func (r *Reader) nextValue() (job, error) {
	for {
		switch r.state {
		case 0:
			b, err := peekNonSpace(r.br)
			if err != nil {
				r.state = 3
				return job{}, err
			}
			if b == '[' || r.noLines {
				r.startDecoder(nil)
			}
			if b == '[' {
				if _, err := r.dec.Token(); err != nil {
					return job{}, r.syntax(err)
				}
				r.state = 1
			} else {
				r.state = 2
			}
		case 1:
			if !r.dec.More() {
				if _, err := r.dec.Token(); err != nil {
					return job{}, r.syntax(err)
				}
				r.state = 2 // anything after the array is a stream of values
				continue
			}
			var raw json.RawMessage
			if err := r.dec.Decode(&raw); err != nil {
				return job{}, r.syntax(err)
			}
			return job{raw: raw}, nil
		case 2:
			if r.dec == nil && r.tail != nil {
				if len(r.jobs) > 0 {
					return job{}, errBatchEnd // the lines before it come first
				}
				pending := append(r.gap(r.read-int64(len(r.tail))), r.tail...)
				r.tail = nil
				r.startDecoder(pending)
			}
			if r.dec == nil {
				if j, ok, err := r.nextLine(); ok || err != nil {
					return j, err
				}
				continue
			}
			var raw json.RawMessage
			if err := r.dec.Decode(&raw); err != nil {
				if errors.Is(err, io.EOF) {
					r.state = 3
					return job{}, io.EOF
				}
				return job{}, r.syntax(err)
			}
			return job{raw: raw}, nil
		default:
			return job{}, io.EOF
		}
	}
}

// MaxRecordBytes caps one line of newline-delimited input.
const MaxRecordBytes = 1 << 20

// nextLine returns the next line that holds one object. A line that
// cannot (it does not start with '{' and end with '}') is kept in tail for
// the decoder, and ok is false.
func (r *Reader) nextLine() (j job, ok bool, err error) {
	for {
		line, err := r.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = r.br.ReadSlice('\n')
				long = append(long, line...)
				if len(long) > MaxRecordBytes {
					// One record is never this long; reading on would hold
					// an unbounded line in memory.
					r.state = 3
					return job{}, false, &SyntaxError{Offset: r.read, Msg: fmt.Sprintf("a line longer than %d bytes", MaxRecordBytes)}
				}
			}
			line = long
		} else {
			line = bytes.Clone(line)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			r.state = 3
			return job{}, false, &SyntaxError{Offset: r.read, Msg: err.Error()}
		}
		start := r.read
		r.read += int64(len(line))
		rec := trimSpace(line)
		switch {
		case len(rec) >= 2 && rec[0] == '{' && rec[len(rec)-1] == '}':
			return job{raw: rec, line: line, start: start}, true, nil
		case len(rec) > 0:
			r.tail = line
			return job{}, false, nil
		case err != nil: // io.EOF after white space
			r.state = 3
			return job{}, false, io.EOF
		}
	}
}

func trimSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func (r *Reader) syntax(err error) error {
	r.state = 3
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &SyntaxError{Offset: r.decBase + r.dec.InputOffset(), Msg: "unexpected end of input"}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &SyntaxError{Offset: r.decBase + se.Offset, Msg: se.Error()}
	}
	return &SyntaxError{Offset: r.decBase + r.dec.InputOffset(), Msg: err.Error()}
}

func peekNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		case 0xEF: // UTF-8 byte order mark
			if rest, err := br.Peek(2); err == nil && rest[0] == 0xBB && rest[1] == 0xBF {
				_, _ = br.Discard(2)
				continue
			}
		}
		return b, br.UnreadByte()
	}
}
