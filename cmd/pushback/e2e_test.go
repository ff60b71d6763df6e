package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// buildBinary compiles pushback once per test binary run.
var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "pushback-e2e-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "pushback")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func binary(t *testing.T) string {
	t.Helper()
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type proc struct {
	name string
	cmd  *exec.Cmd
	addr string
	// httpAddr serves /healthz, /readyz and the HTTP APIs.
	httpAddr string
	logs     *strings.Builder
	mu       *sync.Mutex
	done     chan error
}

func (p *proc) log() string { p.mu.Lock(); defer p.mu.Unlock(); return p.logs.String() }

// startProc runs `pushback serve args...` and waits until its gRPC health is SERVING.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	addr, httpAddr := freeAddr(t), freeAddr(t)
	args = append([]string{"serve", "--grpc-addr=" + addr, "--http-addr=" + httpAddr, "--data-dir=" + t.TempDir()}, args...)
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, addr: addr, httpAddr: httpAddr, logs: &strings.Builder{}, mu: &sync.Mutex{}, done: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.log())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The HTTP readiness endpoint reports the gRPC health, whether or
		// not the gRPC port requires client certificates.
		resp, err := http.Get("http://" + p.httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case err := <-p.done:
			t.Fatalf("%s exited before serving: %v\n%s", name, err, p.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not serving after 30s\n%s", name, p.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and returns the exit code and how long the exit took.
func (p *proc) stop(t *testing.T) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not exit within 20s of SIGTERM", p.name)
	}
	return p.cmd.ProcessState.ExitCode(), time.Since(start)
}

func TestSplitTopologyDeniesBurstAndAlerts(t *testing.T) {
	alerts := make(chan string, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		alerts <- string(b)
	}))
	defer hook.Close()

	scoring := startProc(t, "scoring", "--services=scoring")
	notify := startProc(t, "notify", "--services=notify", "--alert-webhook="+hook.URL)
	decision := startProc(t, "decision", "--services=decision", "--scoring-addr="+scoring.addr, "--notify-addr="+notify.addr, "--decide-budget=5s")
	intake := startProc(t, "intake", "--services=intake", "--scoring-addr="+scoring.addr)

	conn, err := grpc.NewClient(decision.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dc := decisionv1.NewDecisionServiceClient(conn)
	ctx := context.Background()
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	var outcomes []decisionv1.Outcome
	var last *decisionv1.DecideResponse
	for i := 0; i < 5; i++ {
		resp, err := dc.Decide(ctx, &decisionv1.DecideRequest{UserId: "dave", AppId: "vpn", Factor: eventv1.Factor_FACTOR_PUSH,
			AttemptId: fmt.Sprint("d-", i), Time: timestamppb.New(base.Add(time.Duration(i) * time.Minute)),
			Client: &eventv1.Client{Ip: "203.0.113.9"}})
		if err != nil {
			t.Fatalf("Decide %d: %v", i+1, err)
		}
		outcomes = append(outcomes, resp.GetOutcome())
		last = resp
	}
	if last.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY || last.GetFailureMode() != decisionv1.FailureMode_FAILURE_MODE_UNSPECIFIED {
		t.Fatalf("outcomes %v (failure mode %v), want the 5th to be DENY from scoring", outcomes, last.GetFailureMode())
	}
	select {
	case a := <-alerts:
		if !strings.Contains(a, last.GetDecisionId()) {
			t.Fatalf("alert %s does not name decision %s", a, last.GetDecisionId())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no alert reached the webhook")
	}

	// Intake forwards to the remote scoring service.
	ic, err := grpc.NewClient(intake.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	_, err = intakev1.NewIntakeServiceClient(ic).Ingest(ctx, &intakev1.IngestRequest{Events: []*eventv1.AuthEvent{{
		EventId: "fraud-1", UserId: "erin", Type: eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED, Time: timestamppb.New(base),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := grpc.NewClient(scoring.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	risk, err := scoringv1.NewScoringServiceClient(sc).GetRisk(ctx, &scoringv1.GetRiskRequest{UserId: "erin", Time: timestamppb.New(base.Add(time.Minute))})
	if err != nil {
		t.Fatal(err)
	}
	if len(risk.GetAssessment().GetSignals()) == 0 || risk.GetAssessment().GetSignals()[0].GetCode() != "FRAUD_REPORTED" {
		t.Fatalf("erin's risk after a forwarded fraud report: %v", risk.GetAssessment())
	}

	for _, p := range []*proc{intake, decision, notify, scoring} {
		code, took := p.stop(t)
		if code != 0 || took > 10*time.Second {
			t.Fatalf("%s: exit %d after %s, want 0 within 10s\n%s", p.name, code, took, p.log())
		}
	}
}
