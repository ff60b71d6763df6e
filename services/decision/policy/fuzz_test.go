package policy_test

import (
	"bytes"
	"errors"
	"testing"

	defaultpolicy "github.com/pushbackhq/pushback/deploy/policy"
	"github.com/pushbackhq/pushback/services/decision/policy"
)

// FuzzParse feeds arbitrary files to the policy compiler: it must return a
// policy or a *policy.Error (or an I/O error), never panic, and a policy it
// accepts must evaluate without panicking.
func FuzzParse(f *testing.F) {
	f.Add(defaultpolicy.Default)
	f.Add([]byte("rules:\n  - name: a\n    when: score > 1\n    outcome: DENY\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := policy.Parse(bytes.NewReader(data))
		if err != nil {
			var pe *policy.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		_, _ = p.Evaluate(in("vpn", 3, 5, "PUSH_BURST"))
	})
}
