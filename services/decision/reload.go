package decision

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/pushbackhq/pushback/services/decision/policy"
)

// PolicySource reads a policy file and remembers the hash of the content in
// force, so that only a change of content counts as a change.
type PolicySource struct {
	// Path of the policy file.
	Path string
	sum  [sha256.Size]byte
}

// Load reads and compiles the file. changed is false (and p nil) when the
// content is the same as at the last successful or failed load, so a broken
// file is reported once, not at every poll.
func (ps *PolicySource) Load() (p *policy.Policy, changed bool, err error) {
	data, err := os.ReadFile(ps.Path)
	if err != nil {
		// The same read error (a file being replaced) is reported once.
		sum := sha256.Sum256([]byte("read error: " + err.Error()))
		if sum == ps.sum {
			return nil, false, nil
		}
		ps.sum = sum
		return nil, true, fmt.Errorf("policy %s: %w", ps.Path, err)
	}
	sum := sha256.Sum256(data)
	if sum == ps.sum {
		return nil, false, nil
	}
	ps.sum = sum
	p, err = policy.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, true, fmt.Errorf("policy %s: %w", ps.Path, err)
	}
	return p, true, nil
}

// Reloader keeps the service's enforced and shadow policies in step with
// their files: on a signal (SIGHUP) and whenever a file's content changes.
// An invalid new file is rejected, the policy in force stays, and the
// failure is logged and counted.
type Reloader struct {
	svc    *Service
	log    *slog.Logger
	every  time.Duration
	enf    *PolicySource
	shadow *PolicySource
}

// ReloaderOptions configures a Reloader.
type ReloaderOptions struct {
	// PolicyFile is the enforced policy ("" when the built-in one is used).
	PolicyFile string
	// ShadowFile is the shadow policy ("" without shadow mode).
	ShadowFile string
	// Poll is how often the files are checked for a change (0 disables
	// polling; a signal still reloads).
	Poll   time.Duration
	Logger *slog.Logger
}

// NewReloader returns a reloader for svc. The files are assumed to be the
// ones the service was started with: their current content is not a change.
func NewReloader(svc *Service, o ReloaderOptions) *Reloader {
	r := &Reloader{svc: svc, log: o.Logger, every: o.Poll}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if o.PolicyFile != "" {
		r.enf = &PolicySource{Path: o.PolicyFile}
		r.enf.prime(svc.Policy())
	}
	if o.ShadowFile != "" {
		r.shadow = &PolicySource{Path: o.ShadowFile}
		r.shadow.prime(svc.ShadowPolicy())
	}
	return r
}

// prime records the hash of what is in force: the digest of the bytes the
// running policy was compiled from, so that a change written between the
// service's start and this call is still seen. A policy without a digest
// (compiled, not parsed) falls back to the file's current content.
func (ps *PolicySource) prime(running *policy.Policy) {
	if running != nil && running.Digest != ([32]byte{}) {
		ps.sum = running.Digest
		return
	}
	if data, err := os.ReadFile(ps.Path); err == nil {
		ps.sum = sha256.Sum256(data)
	}
}

// Reload checks both files now. It returns the first error; a file that did
// not change is not reloaded.
func (r *Reloader) Reload(ctx context.Context) error {
	var first error
	for _, src := range []struct {
		ps    *PolicySource
		kind  string
		apply func(*policy.Policy)
	}{
		{r.enf, "policy", r.svc.SetPolicy},
		{r.shadow, "shadow policy", r.svc.SetShadowPolicy},
	} {
		if src.ps == nil {
			continue
		}
		p, changed, err := src.ps.Load()
		if err != nil {
			r.svc.count.PolicyReloadFailures.Add(1)
			r.log.ErrorContext(ctx, src.kind+" rejected; the one in force stays", slog.String("file", src.ps.Path), slog.Any("error", err))
			if first == nil {
				first = err
			}
			continue
		}
		if !changed {
			continue
		}
		src.apply(p)
		r.svc.count.PolicyReloads.Add(1)
		r.log.InfoContext(ctx, src.kind+" reloaded", slog.String("file", src.ps.Path), slog.String("policy_version", p.Version), slog.Int("rules", len(p.Rules)))
	}
	return first
}

// Run reloads on every value of signals and every Poll until ctx ends.
func (r *Reloader) Run(ctx context.Context, signals <-chan os.Signal) error {
	var tick <-chan time.Time
	if r.every > 0 && (r.enf != nil || r.shadow != nil) {
		t := time.NewTicker(r.every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-signals:
			if r.enf == nil && r.shadow == nil {
				r.log.InfoContext(ctx, "reload requested, but the built-in policy is in force and has no file")
			}
			r.forceNext()
			_ = r.Reload(ctx)
		case <-tick:
			_ = r.Reload(ctx)
		}
	}
}

// forceNext makes the next Reload re-read a file whose content was rejected
// before, so that a signal always retries and reports.
func (r *Reloader) forceNext() {
	for _, ps := range []*PolicySource{r.enf, r.shadow} {
		if ps != nil {
			ps.sum = [sha256.Size]byte{}
		}
	}
}
