package component_test

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/pushbackhq/pushback/pkg/component"
)

// Parts joined keep their order: shutdown hooks run in the order the
// services were built.
func TestAddKeepsOrder(t *testing.T) {
	var got []string
	quiet := func(name string) func() { return func() { got = append(got, name) } }
	closer := func(name string) func(context.Context) error {
		return func(context.Context) error { got = append(got, name); return nil }
	}
	var all component.Parts
	all.Add(component.Parts{Quiet: []func(){quiet("scoring")}, Closers: []func(context.Context) error{closer("scoring")}})
	all.Add(component.Parts{Quiet: []func(){quiet("decision")}, Closers: []func(context.Context) error{closer("decision")}})
	for _, q := range all.Quiet {
		q()
	}
	for _, c := range all.Closers {
		_ = c(context.Background())
	}
	if want := []string{"scoring", "decision", "scoring", "decision"}; !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
}

func TestWithNamesTheService(t *testing.T) {
	var buf bytes.Buffer
	d := component.Deps{Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	d.With("notify").Logger.Info("hello")
	d.Logger.Info("plain")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "service=notify") || strings.Contains(lines[1], "service=") {
		t.Fatalf("logs:\n%s", buf.String())
	}
}
