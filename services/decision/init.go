package decision

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	defaultpolicy "github.com/pushbackhq/pushback/deploy/policy"
	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/component"
	"github.com/pushbackhq/pushback/services/decision/policy"
	"google.golang.org/grpc"
)

// DecideRoute names POST /v1/decide in the guard's logs and metrics.
const DecideRoute = "POST /v1/decide"

// LoadPolicy reads a policy file, or the built-in default when path is empty.
func LoadPolicy(path string) (*policy.Policy, error) {
	if path == "" {
		return policy.Parse(bytes.NewReader(defaultpolicy.Default))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := policy.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return p, nil
}

// Init builds the decision service for a process that runs it: the
// service over its policies, which asks scoring and notify; the reloader
// of its policy files (on SIGHUP and by polling); and the responder that
// follows scoring's risk feed. counters receives the service's counts.
func Init(cfg Config, d component.Deps, counters *Counters) (component.Parts, error) {
	pol, err := LoadPolicy(cfg.PolicyFile)
	if err != nil {
		return component.Parts{}, err
	}
	var shadow *policy.Policy
	if cfg.ShadowPolicy != "" {
		if shadow, err = LoadPolicy(cfg.ShadowPolicy); err != nil {
			return component.Parts{}, fmt.Errorf("shadow-policy: %w", err)
		}
	}
	sc, err := d.Peer(component.Scoring)
	if err != nil {
		return component.Parts{}, err
	}
	nc, err := d.Peer(component.Notify)
	if err != nil {
		return component.Parts{}, err
	}
	if sc == nil || nc == nil {
		return component.Parts{}, errors.New("decision: scoring and notify must be reachable")
	}
	svc, err := New(Options{
		Store: d.Store, Scorer: scoringv1.NewScoringServiceClient(sc), Notifier: notifyv1.NewNotificationServiceClient(nc),
		Policy: pol, Logger: d.Logger, Tracer: d.Tracer, Budget: cfg.Budget,
		ShadowPolicy: shadow, Counters: counters, Meter: d.Meter, Redactor: d.Redactor, UserIDs: d.UserIDs,
		ClockSkew: cfg.ClockSkew, MaxInFlight: cfg.MaxInFlight, SharedStore: d.SharedStore,
		Feed: scoringv1.NewScoringServiceClient(sc), RespondDryRun: cfg.RespondDryRun,
	})
	if err != nil {
		return component.Parts{}, err
	}
	d.Logger.Info("policy loaded", slog.String("policy_version", pol.Version), slog.Int("rules", len(pol.Rules)))
	if shadow != nil {
		d.Logger.Info("shadow policy loaded", slog.String("policy_version", shadow.Version), slog.Int("rules", len(shadow.Rules)))
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	rl := NewReloader(svc, ReloaderOptions{PolicyFile: cfg.PolicyFile, ShadowFile: cfg.ShadowPolicy, Poll: cfg.PolicyPoll, Logger: d.Logger})
	// The responder's long wait on the feed ends at shutdown before the
	// server stops (Quiet), not when the workers stop after it.
	rctx, stopResponder := context.WithCancel(context.Background())
	responded := make(chan struct{})
	return component.Parts{
		Register: []func(grpc.ServiceRegistrar){svc.Register},
		Workers: []func(context.Context) error{
			func(ctx context.Context) error { return rl.Run(ctx, hup) },
			func(ctx context.Context) error {
				defer close(responded)
				stop := context.AfterFunc(ctx, stopResponder)
				defer stop()
				return svc.RunResponder(rctx)
			},
		},
		Drain:   []func(context.Context) error{svc.Drain},
		Quiet:   []func(){func() { stopResponder(); <-responded }},
		Closers: []func(context.Context) error{func(context.Context) error { signal.Stop(hup); return nil }},
	}, nil
}

// Routes serve POST /v1/decide, for hooks, where decision is reachable.
func Routes(d component.Deps) ([]component.Route, error) {
	conn, err := d.Peer(component.Decision)
	if conn == nil || err != nil {
		return nil, err
	}
	return []component.Route{{Pattern: "/v1/decide", Name: DecideRoute, Role: auth.Hook, Handler: HTTPHandler(decisionv1.NewDecisionServiceClient(conn))}}, nil
}

// Methods says who may call each method of decision (docs/security.md).
func Methods() map[string]auth.Rule {
	return map[string]auth.Rule{
		// Hooks ask before a push; the HTTP gateway forwards /v1/decide.
		decisionv1.DecisionService_Decide_FullMethodName: {Roles: []auth.Role{auth.Hook, auth.Mesh}},
		// Decisions name users, their places and devices: operators only.
		decisionv1.DecisionService_GetDecision_FullMethodName:   {Roles: []auth.Role{auth.Operator}},
		decisionv1.DecisionService_ListDecisions_FullMethodName: {Roles: []auth.Role{auth.Operator}},
		// Ending a cooldown lets pushes through again: a deliberate act.
		decisionv1.DecisionService_ClearCooldown_FullMethodName: {Roles: []auth.Role{auth.Operator}},
		// A cooldown names a user and the sources that attacked them.
		decisionv1.DecisionService_GetCooldown_FullMethodName: {Roles: []auth.Role{auth.Operator}},
	}
}
