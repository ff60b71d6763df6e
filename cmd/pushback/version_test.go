package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestVersionNamesTheRelease(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, &out, &errOut, func(string) string { return "" }); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "pushback "+version+"\n") {
		t.Fatalf("version printed %q", out.String())
	}
}
