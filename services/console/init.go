package console

import (
	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/component"
)

// RouteName names the console in logs.
const RouteName = "help-desk console"

// Routes serve the console where decision is reachable. The console
// authenticates its own callers (a session started with an operator
// token), so the route carries no role for the guard; every call it makes
// carries the operator's token and passes the guard as theirs.
func Routes(cfg Config, d component.Deps, operatorTokens []string) ([]component.Route, error) {
	dc, err := d.Peer(component.Decision)
	if dc == nil || err != nil {
		return nil, err
	}
	o := Options{Config: cfg, Decisions: decisionv1.NewDecisionServiceClient(dc), OperatorTokens: operatorTokens, Logger: d.Logger}
	nc, err := d.Peer(component.Notify)
	if err != nil {
		return nil, err
	}
	if nc != nil {
		o.Incidents = notifyv1.NewNotificationServiceClient(nc)
	}
	c, err := New(o)
	if err != nil {
		return nil, err
	}
	return []component.Route{{Pattern: Prefix, Name: RouteName, Handler: c.Handler()}}, nil
}
