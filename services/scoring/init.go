package scoring

import (
	"context"

	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/component"
	"github.com/pushbackhq/pushback/pkg/settings"
	"google.golang.org/grpc"
)

// ServiceConfig is what an operator sets for the scoring service (the
// engine's thresholds are Config).
type ServiceConfig struct {
	// GeoIPDB names MaxMind-format databases, comma separated.
	GeoIPDB string
}

// Settings binds the configuration to its flags.
func (c *ServiceConfig) Settings() []settings.Setting {
	return []settings.Setting{
		settings.String(&c.GeoIPDB, "geoip-db", "MaxMind-format .mmdb files, comma separated (City, ASN), that locate events arriving without geo"),
	}
}

// Validate reports every inconsistency (a database that cannot be opened
// is reported by Init).
func (c ServiceConfig) Validate() error { return nil }

// Init opens the scoring service for a process that runs it.
func Init(cfg ServiceConfig, d component.Deps) (component.Parts, error) {
	sc, err := Open(Options{Store: d.Store, SharedStore: d.SharedStore, Logger: d.Logger, Tracer: d.Tracer, GeoIPDB: cfg.GeoIPDB, Meter: d.Meter, Redactor: d.Redactor, UserIDs: d.UserIDs})
	if err != nil {
		return component.Parts{}, err
	}
	return component.Parts{
		Register: []func(grpc.ServiceRegistrar){sc.Register},
		Quiet:    []func(){sc.StopWaiting},
		Closers:  []func(context.Context) error{func(context.Context) error { return sc.Close() }},
	}, nil
}

// Routes serve the risk feed where scoring is reachable: risk readers
// follow a tenant's risk changes as Server-Sent Events.
func Routes(d component.Deps) ([]component.Route, error) {
	conn, err := d.Peer(component.Scoring)
	if conn == nil || err != nil {
		return nil, err
	}
	return []component.Route{{Pattern: FeedPath, Role: auth.RiskReader, Handler: FeedHandler(scoringv1.NewScoringServiceClient(conn))}}, nil
}

// Methods says who may call each method of the scoring service
// (docs/security.md).
func Methods() map[string]auth.Rule {
	return map[string]auth.Rule{
		// Only decision records attempts; only decision (suppressed pushes)
		// and intake (validated, stored events) change a user's state.
		scoringv1.ScoringService_Assess_FullMethodName:  {Roles: []auth.Role{auth.Decision, auth.Mesh}},
		scoringv1.ScoringService_Observe_FullMethodName: {Roles: []auth.Role{auth.Decision, auth.Intake, auth.Mesh}},
		scoringv1.ScoringService_GetRisk_FullMethodName: {Roles: []auth.Role{auth.RiskReader, auth.Operator}},
		// WatchRisk streams; the mesh watches for the HTTP risk feed, after
		// checking the risk reader's credential.
		scoringv1.ScoringService_WatchRisk_FullMethodName: {Roles: []auth.Role{auth.RiskReader, auth.Operator, auth.Mesh}},
		// The feed of every user's risk changes drives decision's response
		// rules; a SIEM may follow it too.
		scoringv1.ScoringService_ListRiskChanges_FullMethodName: {Roles: []auth.Role{auth.Decision, auth.Mesh, auth.RiskReader}},
	}
}
