package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/pushbackhq/pushback/pkg/telemetry"
	"github.com/pushbackhq/pushback/services/mesh"
)

func serve(ctx context.Context, args []string, _, stderr io.Writer, getenv func(string) string) int {
	if slices.Contains(args, "-h") || slices.Contains(args, "--help") || slices.Contains(args, "-help") {
		fmt.Fprintf(stderr, "Usage: pushback serve [flags]\n\n%s", mesh.Usage())
		return 0
	}
	cfg, err := mesh.Load(args, getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "Usage: pushback serve [flags]\n\n%s", mesh.Usage())
			return 0
		}
		fmt.Fprintf(stderr, "pushback serve: %v\n", err)
		return 2
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err := mesh.Run(ctx, cfg, mesh.Options{Logger: log, Getenv: getenv}); err != nil {
		log.Error("pushback stopped with an error", slog.Any("error", err))
		return 1
	}
	log.Info("pushback stopped")
	return 0
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(telemetry.LogHandler(slog.NewTextHandler(w, opts)))
	}
	return slog.New(telemetry.LogHandler(slog.NewJSONHandler(w, opts)))
}
