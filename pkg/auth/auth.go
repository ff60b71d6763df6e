// Package auth decides who may call which method of the mesh. It knows a
// caller by its credentials — the mesh's own in-process credential, a peer
// service's mutual-TLS certificate, an outside caller's bearer token or
// HMAC signature — as one or more roles, and a Guard enforces one
// authorization table (the rules each service declares for its methods,
// and ServerRules) in a gRPC server interceptor and an HTTP middleware.
// Rejected calls never reach a handler.
package auth

import (
	"crypto/x509"
	"net/url"
	"strings"
)

// Role is a kind of caller. A caller may hold several (a process whose
// certificate names two services; a token configured for two roles).
type Role string

// The roles. Services are known by their certificate, outside callers by
// the credential configured for their role.
const (
	// Mesh is the process's own code calling its own services in memory:
	// the HTTP gateway, decision's calls to scoring and notify, intake's
	// forwarding to scoring, the report link. It presents a random
	// credential made when the process starts, never configured, printed
	// or sent over the network.
	Mesh Role = "mesh"
	// Decision, Intake, Scoring and Notify are services in other processes,
	// known by the URI SAN of their mutual-TLS certificate (ServiceURI).
	Decision Role = "decision"
	Intake   Role = "intake"
	Scoring  Role = "scoring"
	Notify   Role = "notify"
	// Hook is an identity provider's hook that asks before a push (an
	// Auth0 Action, the RADIUS gate, a login service): --auth-tokens or
	// --auth-hmac-secrets.
	Hook Role = "hook"
	// LogShipper delivers the identity provider's events (webhooks,
	// pollers, log pipelines): --intake-token.
	LogShipper Role = "log-shipper"
	// RiskReader reads users' risk (a SIEM, a session manager): --scoring-tokens.
	RiskReader Role = "risk-reader"
	// Operator reads decisions, events and deliveries and ends cooldowns
	// (the SOC, `pushback explain`): --operator-tokens.
	Operator Role = "operator"
)

// Roles lists every role, services first.
func Roles() []Role {
	return []Role{Mesh, Decision, Intake, Scoring, Notify, Hook, LogShipper, RiskReader, Operator}
}

// roleSet is a set of roles as bits, so that checking a call allocates
// nothing.
type roleSet uint16

// bit is r's place in a roleSet (a switch, since it runs on every call).
func (r Role) bit() roleSet {
	switch r {
	case Mesh:
		return 1 << 0
	case Decision:
		return 1 << 1
	case Intake:
		return 1 << 2
	case Scoring:
		return 1 << 3
	case Notify:
		return 1 << 4
	case Hook:
		return 1 << 5
	case LogShipper:
		return 1 << 6
	case RiskReader:
		return 1 << 7
	case Operator:
		return 1 << 8
	}
	return 0
}

func setOf(roles ...Role) roleSet {
	var s roleSet
	for _, r := range roles {
		s |= r.bit()
	}
	return s
}

// list names the roles in s, in the order of Roles.
func (s roleSet) list() []Role {
	var out []Role
	for _, r := range Roles() {
		if s&r.bit() != 0 {
			out = append(out, r)
		}
	}
	return out
}

func (s roleSet) cmp(o roleSet) int { return int(s) - int(o) }

func (s roleSet) String() string {
	if s == 0 {
		return "none"
	}
	parts := make([]string, 0, 4)
	for _, r := range s.list() {
		parts = append(parts, string(r))
	}
	return strings.Join(parts, ",")
}

// ServiceURIPrefix starts the URI SAN by which a node certificate names the
// Pushback service it runs: urn:pushback:service:scoring. A certificate may
// name several; one that names none (a client certificate for `pushback
// explain`) identifies no service, and its holder needs a token for a role.
const ServiceURIPrefix = "urn:pushback:service:"

// isService reports whether a certificate may name r.
func isService(r Role) bool { return r == Decision || r == Intake || r == Scoring || r == Notify }

// ServiceURI is the URI SAN naming service in a certificate; ok is false
// when service is not one of intake, scoring, decision, notify.
func ServiceURI(service string) (u *url.URL, ok bool) {
	if !isService(Role(service)) {
		return nil, false
	}
	u, err := url.Parse(ServiceURIPrefix + service)
	return u, err == nil
}

// ServicesOf lists the services a certificate names by URI SAN. The common
// name and DNS names are never read: they name hosts, which a PKI hands out
// for other reasons.
func ServicesOf(cert *x509.Certificate) []Role { return servicesOf(cert).list() }

func servicesOf(cert *x509.Certificate) roleSet {
	var s roleSet
	for _, u := range cert.URIs {
		// urn:pushback:service:NAME parses as scheme "urn" and opaque
		// "pushback:service:NAME"; reading those allocates nothing.
		if u == nil || u.Scheme != "urn" {
			continue
		}
		if name, ok := strings.CutPrefix(u.Opaque, strings.TrimPrefix(ServiceURIPrefix, "urn:")); ok && isService(Role(name)) {
			s |= Role(name).bit()
		}
	}
	return s
}
