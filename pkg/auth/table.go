package auth

import (
	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
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

// Rules is the authorization table: every method a Pushback server serves,
// by full gRPC method name, and who may call it. A method without a rule is
// refused to everyone (TestEveryMethodHasARule keeps every RPC of every
// service here), so a new RPC cannot ship unguarded. docs/security.md
// explains each line.
func Rules() map[string]Rule {
	return map[string]Rule{
		// Hooks ask before a push; the HTTP gateway forwards /v1/decide.
		decisionv1.DecisionService_Decide_FullMethodName: {Roles: []Role{Hook, Mesh}},
		// Decisions name users, their places and devices: operators only.
		decisionv1.DecisionService_GetDecision_FullMethodName:   {Roles: []Role{Operator}},
		decisionv1.DecisionService_ListDecisions_FullMethodName: {Roles: []Role{Operator}},
		// Ending a cooldown lets pushes through again: a deliberate act.
		decisionv1.DecisionService_ClearCooldown_FullMethodName: {Roles: []Role{Operator}},

		// Log shippers deliver events; the gateway's /v1/ingest and the
		// report link (a user's "not me") go through Ingest in memory.
		intakev1.IntakeService_Ingest_FullMethodName:       {Roles: []Role{LogShipper, Mesh}},
		intakev1.IntakeService_IngestStream_FullMethodName: {Roles: []Role{LogShipper}},
		intakev1.IntakeService_ListEvents_FullMethodName:   {Roles: []Role{Operator}},

		// Only decision records attempts; only decision (suppressed pushes)
		// and intake (validated, stored events) change a user's state.
		scoringv1.ScoringService_Assess_FullMethodName:  {Roles: []Role{Decision, Mesh}},
		scoringv1.ScoringService_Observe_FullMethodName: {Roles: []Role{Decision, Intake, Mesh}},
		scoringv1.ScoringService_GetRisk_FullMethodName: {Roles: []Role{RiskReader, Operator}},
		// WatchRisk streams; the mesh watches for the HTTP risk feed, after
		// checking the risk reader's credential.
		scoringv1.ScoringService_WatchRisk_FullMethodName: {Roles: []Role{RiskReader, Operator, Mesh}},
		// The feed of every user's risk changes drives decision's response
		// rules; a SIEM may follow it too.
		scoringv1.ScoringService_ListRiskChanges_FullMethodName: {Roles: []Role{Decision, Mesh, RiskReader}},

		// Nobody outside queues a notification: decision raises alerts, and
		// the report link (served where intake runs) revokes sessions.
		notifyv1.NotificationService_Notify_FullMethodName:         {Roles: []Role{Decision, Intake, Mesh}},
		notifyv1.NotificationService_ListDeliveries_FullMethodName: {Roles: []Role{Operator}},
		notifyv1.NotificationService_ListIncidents_FullMethodName:  {Roles: []Role{Operator}},
		notifyv1.NotificationService_GetIncident_FullMethodName:    {Roles: []Role{Operator}},
		// Letting held revocations go is an operator's deliberate act.
		notifyv1.NotificationService_ReleaseActions_FullMethodName: {Roles: []Role{Operator}},

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
