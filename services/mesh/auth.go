package mesh

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"github.com/pushbackhq/pushback/services/decision"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
)

// Who may call which method each service says (Policy, docs/security.md);
// pkg/auth enforces it. This file decides, from the configuration, whether the mesh checks credentials
// at all, which credentials its own clients present, and which
// configurations would expose a service without them.

// Open reports whether the mesh answers every caller without credentials:
// none of any kind is configured (no token, no mutual TLS) and nothing
// listens or dials beyond loopback. That is the newcomer's `pushback
// serve`. Once any credential is configured, every service authenticates
// every call, on loopback too.
func (c Config) Open() bool {
	return !c.Auth.Any() && !c.MutualTLS() && !c.public() && !c.dialsBeyondLoopback()
}

// public reports whether a listener is on a non-loopback address.
func (c Config) public() bool {
	return !rpc.Loopback(c.GRPCAddr) || (c.HTTPAddr != "" && !rpc.Loopback(c.HTTPAddr))
}

// remotePeers are the services this process reaches in other processes:
// a peer address given for a service it does not run.
func (c Config) remotePeers() map[string]string {
	out := map[string]string{}
	for svc, addr := range map[string]string{Scoring: c.ScoringAddr, Notify: c.NotifyAddr, Decision: c.DecisionAddr, Intake: c.IntakeAddr} {
		if addr != "" && !c.Runs(svc) {
			out[svc] = addr
		}
	}
	return out
}

func (c Config) dialsBeyondLoopback() bool {
	for _, addr := range c.remotePeers() {
		if !rpc.Loopback(addr) {
			return true
		}
	}
	return false
}

// ServesDecisionAPI reports whether this process answers decision calls,
// over gRPC or through its HTTP gateway.
func (c Config) ServesDecisionAPI() bool {
	return c.Runs(Decision) || (c.HTTPAddr != "" && c.DecisionAddr != "")
}

// servesIngestPublicly reports whether log shippers' calls reach this
// process on a non-loopback address, over gRPC or HTTP.
func (c Config) servesIngestPublicly() bool {
	grpcIngest := c.Runs(Intake) && !rpc.Loopback(c.GRPCAddr)
	httpIngest := (c.Runs(Intake) || c.IntakeAddr != "") && c.HTTPAddr != "" && !rpc.Loopback(c.HTTPAddr)
	return grpcIngest || httpIngest
}

// validateAuth refuses a configuration that would let a caller nobody
// authenticated reach a service on a non-loopback address.
func (c Config) validateAuth() []error {
	var errs []error
	if !c.MutualTLS() {
		split := len(c.Services) < len(AllServices)
		peers := slices.Sorted(maps.Keys(c.remotePeers()))
		switch {
		case split && !rpc.Loopback(c.GRPCAddr):
			// Peers in other processes call this one over the network, and
			// only a certificate tells decision's Assess from an attacker's.
			errs = append(errs, fmt.Errorf("tls-cert: %s would take calls from services in other processes on the non-loopback address %s without knowing who calls; set tls-cert, tls-key and tls-ca (mutual TLS, a certificate per service)", strings.Join(c.Services, ","), c.GRPCAddr))
		case len(peers) > 0 && !c.Open():
			// With credentials configured (or anything beyond loopback)
			// every service authenticates, and a remote peer knows this
			// process only by its certificate.
			errs = append(errs, fmt.Errorf("tls-cert: this process calls %s in other processes, which know a service only by its certificate once any credential is set or an address is beyond loopback; set tls-cert, tls-key and tls-ca (mutual TLS, a certificate per service)", strings.Join(peers, ",")))
		}
	}
	if c.ServesDecisionAPI() && c.public() && !c.Auth.Has(auth.Hook) && !c.Auth.AllowUnauthenticated {
		errs = append(errs, errors.New("auth-tokens: the decision API would be on a non-loopback address with no credentials for its callers; set auth-tokens or auth-hmac-secrets (or allow-unauthenticated)"))
	}
	if c.servesIngestPublicly() && !c.Auth.Has(auth.LogShipper) && !c.Auth.AllowUnauthenticated {
		errs = append(errs, errors.New("intake-token: ingest (gRPC IntakeService and the HTTP ingest endpoints) would be on a non-loopback address without the log shippers' token; set intake-token (or allow-unauthenticated)"))
	}
	return errs
}

// newGuard builds the guard that every call of this process passes, and
// says at start-up what it lets through.
func newGuard(cfg Config, log *slog.Logger, meter metric.Meter, counters *decision.Counters) (*auth.Guard, error) {
	decisionPrefix := "/" + decisionv1.DecisionService_ServiceDesc.ServiceName + "/"
	g, err := auth.NewGuard(auth.Options{Config: cfg.Auth, Rules: Policy(), Open: cfg.Open(), Logger: log.With("component", "auth"), Meter: meter,
		OnReject: func(method string) {
			if strings.HasPrefix(method, decisionPrefix) || method == decision.DecideRoute {
				counters.AuthFailures.Add(1)
			}
		}})
	if err != nil {
		return nil, err
	}
	if cfg.Open() {
		log.Warn("no credentials configured: every caller on this machine may call every method; this is only allowed on loopback (see docs/security.md)")
		return g, nil
	}
	anonymous := cfg.Auth.Anonymous()
	if len(anonymous) > 0 {
		log.Warn("ALLOW-UNAUTHENTICATED: callers without any credential are let in as these roles", slog.Any("roles", anonymous),
			slog.Any("methods", methodsOf(anonymous...)), slog.String("grpc_addr", cfg.GRPCAddr), slog.String("http_addr", cfg.HTTPAddr))
	}
	for _, r := range []auth.Role{auth.Hook, auth.LogShipper, auth.RiskReader, auth.Operator} {
		if !cfg.Auth.Has(r) && !slices.Contains(anonymous, r) {
			log.Info("no credentials for a role: no outside caller may call its methods", slog.String("role", string(r)), slog.Any("methods", methodsOf(r)))
		}
	}
	if cfg.MutualTLS() {
		warnCertificate(cfg, log)
	}
	for _, roles := range cfg.Auth.Shared() {
		log.Warn("one token is configured for several roles: whoever holds it has all of them; give each role its own", slog.Any("roles", roles))
	}
	return g, nil
}

// warnCertificate says when this process's certificate does not name the
// services it runs (its peers will refuse its calls) or names others (it
// could make their calls): both are a certificate handed to the wrong
// process.
func warnCertificate(cfg Config, log *slog.Logger) {
	pair, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil || len(pair.Certificate) == 0 {
		return // Run reports the certificate itself
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return
	}
	var named []string
	for _, r := range auth.ServicesOf(leaf) {
		named = append(named, string(r))
	}
	runs := cfg.Services
	var missing, extra []string
	for _, s := range runs {
		if !slices.Contains(named, s) {
			missing = append(missing, s)
		}
	}
	for _, s := range named {
		if !slices.Contains(runs, s) {
			extra = append(extra, s)
		}
	}
	if len(missing) > 0 && len(cfg.remotePeers()) > 0 {
		log.Warn("the certificate does not name services this process runs: peers in other processes will refuse their calls; issue it with URI SAN "+auth.ServiceURIPrefix+"<service>",
			slog.Any("runs", runs), slog.Any("certificate_names", named))
	}
	if len(extra) > 0 {
		log.Warn("the certificate names services this process does not run: whoever holds it may make their calls", slog.Any("runs", runs), slog.Any("certificate_names", named))
	}
}

// methodsOf lists the methods the table opens to roles, as Service/Method.
func methodsOf(roles ...auth.Role) []string {
	var out []string
	for m, r := range Policy() {
		for _, role := range roles {
			if slices.Contains(r.Roles, role) {
				out = append(out, m[strings.LastIndex(m, ".")+1:])
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// gatewayCredentials are what this process presents, besides its
// certificate, on its connections to a remote peer. Its HTTP gateway
// verifies hooks (/v1/decide) and log shippers (/v1/ingest, and the report
// link's fraud report), then forwards to a remote decision or intake, which
// take those calls from hooks and log shippers, never from services: the
// gateway presents the first configured credential of that role.
func gatewayCredentials(cfg Config, peer string) []grpc.UnaryClientInterceptor {
	var c auth.Credentials
	switch peer {
	case Decision:
		c = auth.Credentials{Token: first(cfg.Auth.HookTokens), HMACSecret: first(cfg.Auth.HookHMACSecrets)}
	case Intake:
		c = auth.Credentials{Token: cfg.Auth.IntakeToken}
	}
	if c.Empty() {
		return nil
	}
	return []grpc.UnaryClientInterceptor{c.UnaryClientInterceptor()}
}
