package intake

import (
	"context"
	"errors"
	"log/slog"

	"github.com/pushbackhq/pushback/connectors/poll"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/component"
	"github.com/pushbackhq/pushback/pkg/settings"
	"google.golang.org/grpc"
)

// Config is what an operator sets for intake.
type Config struct {
	// Poll paces the log pollers of the connectors that poll
	// (docs/intake.md, Polling).
	Poll poll.Config
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{Poll: poll.DefaultConfig()} }

// Settings binds the configuration to its flags.
func (c *Config) Settings() []settings.Setting { return c.Poll.Settings() }

// Validate reports every inconsistency.
func (c Config) Validate() error { return c.Poll.Validate() }

// Init builds intake for a process that runs it: the service, which
// forwards to scoring, and a poller for every log source given (each
// stores through intake, so it runs where intake runs, and the shared
// store's lease keeps one replica polling).
func Init(cfg Config, d component.Deps, sources []poll.Source) (component.Parts, error) {
	sc, err := d.Peer(component.Scoring)
	if err != nil {
		return component.Parts{}, err
	}
	if sc == nil {
		return component.Parts{}, errors.New("intake: no scoring to forward to")
	}
	in, err := New(Options{Store: d.Store, Observer: scoringv1.NewScoringServiceClient(sc), Logger: d.Logger, Tracer: d.Tracer, Meter: d.Meter, Redactor: d.Redactor, UserIDs: d.UserIDs})
	if err != nil {
		return component.Parts{}, err
	}
	parts := component.Parts{Register: []func(grpc.ServiceRegistrar){in.Register}, Workers: []func(context.Context) error{in.Run}}
	log := d.Logger.With("component", "poll")
	for _, src := range sources {
		r, err := poll.New(poll.Options{Source: src, Store: d.Store, Parse: parsePage, Save: saveTo(in, log), Config: cfg.Poll, Logger: log, Meter: d.Meter})
		if err != nil {
			return component.Parts{}, err
		}
		d.Logger.Info("polling", slog.String("source", src.Name()), slog.Duration("interval", cfg.Poll.Interval))
		parts.Workers = append(parts.Workers, r.Run)
	}
	return parts, nil
}

// Routes serve ingest over HTTP where intake is reachable: the native
// batch endpoint and the IdP adapters, for log shippers holding token.
func Routes(token string, d component.Deps) ([]component.Route, error) {
	conn, err := d.Peer(component.Intake)
	if conn == nil || err != nil {
		return nil, err
	}
	c := intakev1.NewIntakeServiceClient(conn)
	return []component.Route{
		{Pattern: "/v1/ingest", Role: auth.LogShipper, Handler: NativeHandler(c, token)},
		{Pattern: AdapterPrefix, Name: AdapterPrefix + "{format}", Role: auth.LogShipper, Handler: AdapterHandler(c, AdapterOptions{Token: token, Logger: d.Logger})},
	}, nil
}

// Methods says who may call each method of intake (docs/security.md).
func Methods() map[string]auth.Rule {
	return map[string]auth.Rule{
		// Log shippers deliver events; the gateway's /v1/ingest and the
		// report link (a user's "not me") go through Ingest in memory.
		intakev1.IntakeService_Ingest_FullMethodName:       {Roles: []auth.Role{auth.LogShipper, auth.Mesh}},
		intakev1.IntakeService_IngestStream_FullMethodName: {Roles: []auth.Role{auth.LogShipper}},
		intakev1.IntakeService_ListEvents_FullMethodName:   {Roles: []auth.Role{auth.Operator}},
	}
}
