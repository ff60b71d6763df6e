package mesh

import (
	"maps"

	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/component"
	"github.com/pushbackhq/pushback/services/decision"
	"github.com/pushbackhq/pushback/services/intake"
	"github.com/pushbackhq/pushback/services/notify"
	"github.com/pushbackhq/pushback/services/scoring"
)

// service is what the mesh knows of one service: how to build it where it
// runs, the HTTP routes it serves wherever it is reachable, and who may
// call its methods.
type service struct {
	name string
	// init builds the service in a process that runs it.
	init func(cfg Config, d component.Deps, counters *decision.Counters) (component.Parts, error)
	// routes are its gateway's routes; each asks for its peer and serves
	// nothing when the service is neither run nor given an address.
	routes func(cfg Config, d component.Deps) ([]component.Route, error)
	// methods are the rules of its RPCs.
	methods func() map[string]auth.Rule
}

// services lists the services in the order they are built: a service's
// shutdown hooks (quiets, closers) run in that order, scoring's ending of
// the risk feed's long waits before decision's responder stops waiting.
func services() []service {
	return []service{
		{
			name: Scoring,
			init: func(cfg Config, d component.Deps, _ *decision.Counters) (component.Parts, error) {
				return scoring.Init(cfg.Scoring, d)
			},
			routes:  func(_ Config, d component.Deps) ([]component.Route, error) { return scoring.Routes(d) },
			methods: scoring.Methods,
		},
		{
			name: Notify,
			init: func(cfg Config, d component.Deps, _ *decision.Counters) (component.Parts, error) {
				// Response connectors act through notify's outbox.
				conns, err := cfg.Connectors.Responders()
				if err != nil {
					return component.Parts{}, err
				}
				return notify.Init(cfg.Notify, d, conns)
			},
			routes:  func(cfg Config, d component.Deps) ([]component.Route, error) { return notify.Routes(cfg.Notify, d) },
			methods: notify.Methods,
		},
		{
			name: Decision,
			init: func(cfg Config, d component.Deps, counters *decision.Counters) (component.Parts, error) {
				return decision.Init(cfg.Decision, d, counters)
			},
			routes:  func(_ Config, d component.Deps) ([]component.Route, error) { return decision.Routes(d) },
			methods: decision.Methods,
		},
		{
			name: Intake,
			init: func(cfg Config, d component.Deps, _ *decision.Counters) (component.Parts, error) {
				// Pollers store through intake, so they run where it runs.
				sources, err := cfg.Connectors.LogSources()
				if err != nil {
					return component.Parts{}, err
				}
				return intake.Init(cfg.Intake, d, sources)
			},
			routes: func(cfg Config, d component.Deps) ([]component.Route, error) {
				return intake.Routes(cfg.Auth.IntakeToken, d)
			},
			methods: intake.Methods,
		},
	}
}

// Policy is the authorization table of every service the mesh knows, by
// full gRPC method name, without the server's own methods
// (auth.ServerRules). A process guards the methods of services it does
// not run too: its HTTP gateway forwards their calls (docs/security.md).
func Policy() map[string]auth.Rule {
	out := map[string]auth.Rule{}
	for _, s := range services() {
		maps.Copy(out, s.methods())
	}
	return out
}

// initServices builds every service this process runs, in the order of
// services(); each one's closers go on cl as it is built, after the peer
// connections it dialled, so that they are released before those.
func initServices(cfg Config, d component.Deps, counters *decision.Counters, cl *closers) (component.Parts, error) {
	var all component.Parts
	for _, s := range services() {
		if !cfg.Runs(s.name) {
			continue
		}
		p, err := s.init(cfg, d.With(s.name), counters)
		for _, c := range p.Closers {
			cl.add(c)
		}
		all.Add(p)
		if err != nil {
			return all, err
		}
	}
	return all, nil
}

// gatewayRoutes are the HTTP routes of every service this process reaches.
func gatewayRoutes(cfg Config, d component.Deps) ([]component.Route, error) {
	var out []component.Route
	for _, s := range services() {
		rs, err := s.routes(cfg, d.With(s.name))
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}
