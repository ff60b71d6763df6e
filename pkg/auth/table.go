package auth

import (
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
)

// Rule says who may call one method.
type Rule struct {
	// Anyone may call, with or without credentials.
	Anyone bool
	// AnyCaller: every caller that holds some role may call.
	AnyCaller bool
	// Roles may call.
	Roles []Role
}

// ServerRules are the rules of the methods every Pushback gRPC server
// serves besides its services: health and reflection. Each service
// declares the rules of its own methods beside its Register (its
// Methods), and the process that runs it gives them to the guard
// (Options.Rules); together they are the authorization table, by full gRPC
// method name. A method without a rule is refused to everyone, so a new RPC
// cannot ship unguarded. docs/security.md explains each line.
func ServerRules() map[string]Rule {
	return map[string]Rule{
		// Load balancers and probes check health without credentials; it
		// tells serving or not, nothing about users.
		healthpb.Health_Check_FullMethodName: {Anyone: true},
		healthpb.Health_List_FullMethodName:  {Anyone: true},
		healthpb.Health_Watch_FullMethodName: {Anyone: true},
		// Reflection describes the public contracts (grpcurl); it answers
		// callers the guard knows, so an anonymous scan learns nothing of
		// what a process runs.
		reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName:      {AnyCaller: true},
		reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: {AnyCaller: true},
	}
}

// rule is a Rule as the guard checks it.
type rule struct {
	anyone, anyCaller bool
	roles             roleSet
}

func compile(rules map[string]Rule) map[string]rule {
	out := make(map[string]rule, len(rules))
	for m, r := range rules {
		out[m] = rule{anyone: r.Anyone, anyCaller: r.AnyCaller, roles: setOf(r.Roles...)}
	}
	return out
}
