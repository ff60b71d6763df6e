package formats

import (
	"bytes"
	"errors"
	"io"
	"testing"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/validate"
)

// fuzzFormat checks the parser's contract on arbitrary input: it never
// panics, it always terminates, and every event it returns satisfies the
// AuthEvent contract intake validates.
func fuzzFormat(f *testing.F, format Format) {
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSameAsSequential(t, format, data)
		r := NewReader(format, bytes.NewReader(data), Options{Tenant: "t"})
		for i := 0; ; i++ {
			if i > len(data)+1 {
				t.Fatalf("reader did not terminate after %d records", i)
			}
			evs, _, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			var re *RecordError
			if errors.As(err, &re) {
				continue
			}
			if err != nil {
				break
			}
			for _, e := range evs {
				var v apierr.Violations
				validate.Event(&v, "event", e)
				if v.Len() > 0 {
					t.Fatalf("invalid event %v: %v", e, v.Err())
				}
			}
		}
		// The all-or-nothing path must agree: no panic, and a batch it
		// accepts validates as a whole.
		if b, err := Parse(format, data, Options{}); err == nil {
			var v apierr.Violations
			for _, e := range b.Events {
				validate.Event(&v, "event", e)
			}
			if v.Len() > 0 {
				t.Fatalf("Parse accepted invalid events: %v", v.Err())
			}
		}
	})
}

func FuzzOkta(f *testing.F)   { fuzzFormat(f, Okta) }
func FuzzEntra(f *testing.F)  { fuzzFormat(f, Entra) }
func FuzzDuo(f *testing.F)    { fuzzFormat(f, Duo) }
func FuzzAuth0(f *testing.F)  { fuzzFormat(f, Auth0) }
func FuzzPingID(f *testing.F) { fuzzFormat(f, PingID) }
func FuzzOCSF(f *testing.F)   { fuzzFormat(f, OCSF) }
func FuzzNative(f *testing.F) { fuzzFormat(f, Native) }

// FuzzNativeFast checks that the fast native decoder takes only what
// protojson takes, and decodes it to the same event.
func FuzzNativeFast(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := decodeNativeFast(data)
		want := &eventv1.AuthEvent{}
		err := protojson.Unmarshal(data, want)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("fast decoder took %q, protojson: %v", data, err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("fast decoder read %q as %v, protojson as %v", data, got, want)
		}
	})
}
