package mesh_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/services/mesh"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

type running struct {
	grpcAddr, httpAddr string
	conn               *grpc.ClientConn
	stop               func() error
}

// start runs a whole mesh on ephemeral ports with the production wiring.
func start(t testing.TB, cfg mesh.Config) *running {
	t.Helper()
	// These tests check outcomes; the budget is tested on its own.
	cfg.Decision.Budget = 5 * time.Second
	return startWith(t, cfg, mesh.Options{})
}

// startWith is start keeping cfg's decide budget, with opts.
func startWith(t testing.TB, cfg mesh.Config, opts mesh.Options) *running {
	t.Helper()
	if cfg.DataDir == "" || cfg.DataDir == mesh.Default().DataDir {
		cfg.DataDir = t.TempDir()
	}
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		opts.Getenv = func(string) string { return "" }
		opts.Ready = func(g, h string) { ready <- [2]string{g, h} }
		done <- mesh.Run(ctx, cfg, opts)
	}()
	var addrs [2]string
	select {
	case addrs = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("mesh did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("mesh did not start within 30s")
	}
	conn, err := grpc.NewClient(addrs[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	r := &running{grpcAddr: addrs[0], httpAddr: addrs[1], conn: conn}
	var stopped bool
	r.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		_ = conn.Close()
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = r.stop() })
	return r
}

func decideReq(user, attempt string, at time.Time) *decisionv1.DecideRequest {
	return &decisionv1.DecideRequest{
		UserId: user, AppId: "vpn", Factor: eventv1.Factor_FACTOR_PUSH, AttemptId: attempt, Time: timestamppb.New(at),
		Client: &eventv1.Client{Ip: "198.51.100.7", DeviceId: "d1", UserAgent: "Mozilla/5.0",
			Geo: &eventv1.Geo{Latitude: 40.71, Longitude: -74.0, AccuracyKm: 20, Country: "US", City: "New York"}},
	}
}

func hasSignal(ra *scoringv1.RiskAssessment, code string) bool {
	for _, s := range ra.GetSignals() {
		if s.GetCode() == code {
			return true
		}
	}
	return false
}

func TestBurstEscalatesToDenyAndSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := mesh.Default()
	cfg.DataDir = dir
	m := start(t, cfg)
	dc := decisionv1.NewDecisionServiceClient(m.conn)
	ctx := context.Background()
	base := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	want := []decisionv1.Outcome{
		decisionv1.Outcome_OUTCOME_ALLOW, decisionv1.Outcome_OUTCOME_ALLOW,
		decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH, decisionv1.Outcome_OUTCOME_REQUIRE_NUMBER_MATCH,
		decisionv1.Outcome_OUTCOME_DENY,
	}
	var last *decisionv1.DecideResponse
	for i, w := range want {
		resp, err := dc.Decide(ctx, decideReq("alice", fmt.Sprintf("a-%d", i), base.Add(time.Duration(i)*time.Minute)))
		if err != nil {
			t.Fatalf("Decide %d: %v", i+1, err)
		}
		if resp.GetOutcome() != w {
			t.Fatalf("Decide %d = %v, want %v (reasons %v)", i+1, resp.GetOutcome(), w, resp.GetReasons())
		}
		if resp.GetDecisionId() == "" || resp.GetPolicyVersion() == "" || len(resp.GetTraceId()) != 32 {
			t.Fatalf("Decide %d: missing decision id, policy version or trace id: %v", i+1, resp)
		}
		last = resp
	}
	if !hasSignal(last.GetRisk(), "PUSH_BURST") {
		t.Fatalf("DENY without PUSH_BURST: %v", last.GetRisk())
	}
	if last.GetCooldown().AsDuration() <= 0 {
		t.Fatalf("DENY without cooldown: %v", last.GetCooldown())
	}
	// The deny was audited and raised an alert in the outbox.
	got, err := dc.GetDecision(ctx, &decisionv1.GetDecisionRequest{DecisionId: last.GetDecisionId()})
	if err != nil || got.GetDecision().GetResponse().GetOutcome() != decisionv1.Outcome_OUTCOME_DENY {
		t.Fatalf("GetDecision = %v, %v", got, err)
	}
	list, err := dc.ListDecisions(ctx, &decisionv1.ListDecisionsRequest{UserId: "alice", PageSize: 3})
	if err != nil || len(list.GetDecisions()) != 3 || list.GetNextPageToken() == "" {
		t.Fatalf("ListDecisions page 1 = %d decisions, token %q, %v", len(list.GetDecisions()), list.GetNextPageToken(), err)
	}
	if list.GetDecisions()[0].GetDecisionId() != last.GetDecisionId() {
		t.Fatalf("ListDecisions is not newest first")
	}
	list2, err := dc.ListDecisions(ctx, &decisionv1.ListDecisionsRequest{UserId: "alice", PageSize: 3, PageToken: list.GetNextPageToken()})
	if err != nil || len(list2.GetDecisions()) != 2 || list2.GetNextPageToken() != "" {
		t.Fatalf("ListDecisions page 2 = %d decisions, token %q, %v", len(list2.GetDecisions()), list2.GetNextPageToken(), err)
	}
	// The alert is queued just after the answer.
	nc := notifyv1.NewNotificationServiceClient(m.conn)
	var deliveries *notifyv1.ListDeliveriesResponse
	waitFor(t, "the alert in the outbox", func() bool {
		deliveries, err = nc.ListDeliveries(ctx, &notifyv1.ListDeliveriesRequest{})
		return err == nil && len(deliveries.GetDeliveries()) > 0
	})
	if len(deliveries.GetDeliveries()) != 1 || deliveries.GetDeliveries()[0].GetNotification().GetDecisionId() != last.GetDecisionId() {
		t.Fatalf("outbox = %v, %v; want one alert for the deny", deliveries, err)
	}

	// Restart on the same data dir: the next attempt is still denied.
	if err := m.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	m2 := start(t, cfg)
	resp, err := decisionv1.NewDecisionServiceClient(m2.conn).Decide(ctx, decideReq("alice", "a-after-restart", base.Add(6*time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY {
		t.Fatalf("after restart = %v, want DENY", resp.GetOutcome())
	}
}

func TestSameAttemptIDIsCountedOnce(t *testing.T) {
	m := start(t, mesh.Default())
	dc := decisionv1.NewDecisionServiceClient(m.conn)
	ctx := context.Background()
	// The mesh runs on the real clock: an attempt's time is clamped to it.
	at := time.Now().UTC().Truncate(time.Millisecond)
	first, err := dc.Decide(ctx, decideReq("bob", "same", at))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		again, err := dc.Decide(ctx, decideReq("bob", "same", at))
		if err != nil {
			t.Fatal(err)
		}
		if again.GetDecisionId() != first.GetDecisionId() || !again.GetReplayed() {
			t.Fatalf("retry %d gave decision %s (replayed %v), want %s", i, again.GetDecisionId(), again.GetReplayed(), first.GetDecisionId())
		}
	}
	risk, err := scoringv1.NewScoringServiceClient(m.conn).GetRisk(ctx, &scoringv1.GetRiskRequest{UserId: "bob", Time: timestamppb.New(at)})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range risk.GetAssessment().GetWindows() {
		if w.GetAttempts() != 1 {
			t.Fatalf("window %v counts %d attempts, want 1", w.GetWindow().AsDuration(), w.GetAttempts())
		}
	}
}

func TestBadInputIsInvalidArgumentAndStoresNothing(t *testing.T) {
	m := start(t, mesh.Default())
	ctx := context.Background()
	dc := decisionv1.NewDecisionServiceClient(m.conn)
	ic := intakev1.NewIntakeServiceClient(m.conn)
	at := timestamppb.New(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	good := func(id string) *eventv1.AuthEvent {
		return &eventv1.AuthEvent{EventId: id, UserId: "carol", Type: eventv1.EventType_EVENT_TYPE_PUSH_DENIED, Time: at}
	}
	bigBatch := &intakev1.IngestRequest{}
	for i := 0; i < 1001; i++ {
		bigBatch.Events = append(bigBatch.Events, good(fmt.Sprint("big-", i)))
	}
	badLat := decideReq("carol", "x", at.AsTime())
	badLat.Client.Geo.Latitude = 123
	cases := []struct {
		name  string
		call  func() error
		field string
	}{
		{"empty user id", func() error { _, err := dc.Decide(ctx, decideReq("", "x", at.AsTime())); return err }, "user_id"},
		{"malformed ip", func() error {
			r := decideReq("carol", "x", at.AsTime())
			r.Client.Ip = "300.1.2.3"
			_, err := dc.Decide(ctx, r)
			return err
		}, "client.ip"},
		{"latitude out of range", func() error { _, err := dc.Decide(ctx, badLat); return err }, "client.geo.latitude"},
		{"unknown enum", func() error {
			r := decideReq("carol", "x", at.AsTime())
			r.Factor = 99
			_, err := dc.Decide(ctx, r)
			return err
		}, "factor"},
		{"event with bad ip among good ones", func() error {
			bad := good("e2")
			bad.Client = &eventv1.Client{Ip: "not-an-ip"}
			_, err := ic.Ingest(ctx, &intakev1.IngestRequest{Events: []*eventv1.AuthEvent{good("e1"), bad}})
			return err
		}, "events[1].client.ip"},
		{"event type unspecified", func() error {
			e := good("e3")
			e.Type = eventv1.EventType_EVENT_TYPE_UNSPECIFIED
			_, err := ic.Ingest(ctx, &intakev1.IngestRequest{Events: []*eventv1.AuthEvent{e}})
			return err
		}, "events[0].type"},
		{"oversized batch", func() error { _, err := ic.Ingest(ctx, bigBatch); return err }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("code = %v (%v), want InvalidArgument", status.Code(err), err)
			}
			if tc.field != "" && !contains(apierr.Fields(err), tc.field) {
				t.Fatalf("field violations %v do not name %q", apierr.Fields(err), tc.field)
			}
		})
	}
	// Nothing was stored: no decision for carol, no event from the rejected batches.
	list, err := dc.ListDecisions(ctx, &decisionv1.ListDecisionsRequest{UserId: "carol"})
	if err != nil || len(list.GetDecisions()) != 0 {
		t.Fatalf("decisions after bad input: %v, %v", list, err)
	}
	events, err := ic.ListEvents(ctx, &intakev1.ListEventsRequest{UserId: "carol"})
	if err != nil || len(events.GetEvents()) != 0 {
		t.Fatalf("events after bad input: %v, %v", events, err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestHTTPDecideAndErrors(t *testing.T) {
	m := start(t, mesh.Default())
	post := func(body string) (int, map[string]any) {
		resp, err := http.Post("http://"+m.httpAddr+"/v1/decide", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("response is not JSON: %v", err)
		}
		return resp.StatusCode, out
	}
	body := `{"userId":"alice","appId":"vpn","factor":"FACTOR_PUSH","attemptId":"a-1","time":"2026-11-27T10:00:00Z","client":{"ip":"198.51.100.7","deviceId":"d1","userAgent":"Mozilla/5.0","geo":{"latitude":40.71,"longitude":-74.0,"accuracyKm":20,"country":"US","city":"New York"}}}`
	code, out := post(body)
	if code != 200 || out["outcome"] != "OUTCOME_ALLOW" || out["decisionId"] == nil || out["traceId"] == nil {
		t.Fatalf("POST /v1/decide = %d %v", code, out)
	}
	for _, tc := range []struct{ name, body, field string }{
		{"malformed JSON", `{"userId":`, ""},
		{"unknown field", `{"userId":"a","bogus":1}`, "bogus"},
		{"unknown enum", `{"userId":"a","factor":"FACTOR_CARRIER_PIGEON"}`, ""},
		{"empty user", `{"userId":""}`, "user_id"},
	} {
		code, out := post(tc.body)
		errObj, _ := out["error"].(map[string]any)
		if code != 400 || errObj == nil || errObj["code"] != "INVALID_ARGUMENT" {
			t.Errorf("%s: %d %v, want 400 with an INVALID_ARGUMENT error", tc.name, code, out)
			continue
		}
		if tc.field != "" && !strings.Contains(fmt.Sprint(errObj), tc.field) {
			t.Errorf("%s: error %v does not name %q", tc.name, errObj, tc.field)
		}
	}
	resp, err := http.Post("http://"+m.httpAddr+"/v1/decide", "application/json", bytes.NewReader(bytes.Repeat([]byte(" "), 2<<20)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("2 MiB body = %d, want 413", resp.StatusCode)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + m.httpAddr + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s = %v, %v", path, resp, err)
		}
		resp.Body.Close()
	}
}

func TestHealthServingThenShutdown(t *testing.T) {
	m := start(t, mesh.Default())
	hc := healthpb.NewHealthClient(m.conn)
	for _, svc := range []string{"", "pushback.decision.v1.DecisionService", "pushback.scoring.v1.ScoringService", "pushback.intake.v1.IntakeService", "pushback.notify.v1.NotificationService"} {
		resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %q = %v, %v", svc, resp, err)
		}
	}
	if err := m.stop(); err != nil {
		t.Fatalf("graceful shutdown returned %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown service", []string{"--services=scoring,billing"}, nil, "unknown service"},
		{"decision without scoring address", []string{"--services=decision,notify"}, nil, "scoring-addr"},
		{"bad duration", []string{"--decide-budget=fast"}, nil, "decide-budget"},
		{"bad env duration", nil, map[string]string{"PUSHBACK_DECIDE_BUDGET": "soon"}, "PUSHBACK_DECIDE_BUDGET"},
		{"stray argument", []string{"extra"}, nil, "unexpected argument"},
		{"open decision API on a public address", []string{"--grpc-addr=0.0.0.0:50051"}, nil, "auth-tokens"},
		{"open ingest on a public address", []string{"--services=intake,scoring", "--http-addr=0.0.0.0:8080"}, nil, "intake-token"},
		{"redis cluster", []string{"--store=redis", "--redis-addr=10.0.0.1:6379,10.0.0.2:6379"}, nil, "Redis Cluster is not supported"},
		{"alert webhook not a URL", []string{"--alert-webhook=hooks.example.com/x"}, nil, "alert-webhook"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mesh.Load(tc.args, func(k string) string { return tc.env[k] })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
	for _, args := range [][]string{
		{"--services=intake,scoring", "--http-addr=0.0.0.0:8080", "--intake-token=0123456789abcdef"},
		{"--services=intake,scoring", "--http-addr=0.0.0.0:8080", "--allow-unauthenticated"},
		{"--services=intake,scoring", "--http-addr=127.0.0.1:8080"},
	} {
		if _, err := mesh.Load(args, func(string) string { return "" }); err != nil {
			t.Fatalf("Load(%v) = %v, want it accepted", args, err)
		}
	}
	// A boolean flag alone means true; a value still works.
	for _, args := range [][]string{{"--sync-writes"}, {"--sync-writes=true"}} {
		if cfg, err := mesh.Load(args, func(string) string { return "" }); err != nil || !cfg.SyncWrites {
			t.Fatalf("Load(%v): sync writes %v, %v", args, cfg.SyncWrites, err)
		}
	}
	if _, err := mesh.Load([]string{"--sync-writes=maybe"}, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "not a boolean") {
		t.Fatalf("--sync-writes=maybe: %v", err)
	}
	cfg, err := mesh.Load([]string{"--grpc-addr=127.0.0.1:7000"}, func(k string) string {
		return map[string]string{"PUSHBACK_GRPC_ADDR": "127.0.0.1:6000", "PUSHBACK_DATA_DIR": "/var/lib/pushback"}[k]
	})
	if err != nil || cfg.GRPCAddr != "127.0.0.1:7000" || cfg.DataDir != "/var/lib/pushback" {
		t.Fatalf("flags over env over defaults: %+v, %v", cfg, err)
	}
}

func TestConfigFileIsStrict(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "grpc-addr: 127.0.0.1:7001\nservices: [scoring]\ndecide-budget: 80ms\n")
	cfg, err := mesh.Load([]string{"--config=" + good}, func(string) string { return "" })
	if err != nil || cfg.GRPCAddr != "127.0.0.1:7001" || len(cfg.Services) != 1 || cfg.Decision.Budget != 80*time.Millisecond {
		t.Fatalf("file settings not applied: %+v, %v", cfg, err)
	}
	// Env overrides the file, flags override env.
	cfg, err = mesh.Load([]string{"--config=" + good, "--decide-budget=90ms"}, func(k string) string {
		return map[string]string{"PUSHBACK_GRPC_ADDR": "127.0.0.1:7002", "PUSHBACK_DECIDE_BUDGET": "70ms"}[k]
	})
	if err != nil || cfg.GRPCAddr != "127.0.0.1:7002" || cfg.Decision.Budget != 90*time.Millisecond {
		t.Fatalf("precedence: %+v, %v", cfg, err)
	}
	for name, body := range map[string]string{
		"unknown.yaml": "grpc-addr: 127.0.0.1:7001\ngrpc-adress: typo\n",
		"bad.yaml":     "decide-budget: soon\n",
		"broken.yaml":  "grpc-addr: [\n",
	} {
		if _, err := mesh.Load([]string{"--config=" + write(name, body)}, func(string) string { return "" }); err == nil {
			t.Errorf("%s accepted", name)
		} else if name == "unknown.yaml" && !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%s: %v does not name the line", name, err)
		}
	}
}
