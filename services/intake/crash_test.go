package intake_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// server is one `pushback serve` process.
type server struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{} // closed when the process has exited
	err  error
}

func startServer(t *testing.T, bin, dataDir string) *server {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--services=intake,scoring", "--data-dir="+dataDir,
		"--grpc-addr=127.0.0.1:0", "--http-addr=", "--log-format=json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var line struct {
				Msg      string `json:"msg"`
				GRPCAddr string `json:"grpc_addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "pushback serving" {
				addr <- line.GRPCAddr
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { s.err = cmd.Wait(); close(s.done) }()
	select {
	case s.addr = <-addr:
	case <-s.done:
		t.Fatalf("pushback serve exited before serving: %v", s.err)
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("pushback serve did not start within 60s")
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.done
	})
	return s
}

func (s *server) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done
}

func client(t *testing.T, addr string) intakev1.IntakeServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return intakev1.NewIntakeServiceClient(conn)
}

var users = []string{"ada@example.com", "grace@example.com", "linus@example.com"}

const perBatch, perStream = 40, 10

// batch returns the events of batch b: ids are global, users rotate.
func batch(b int) []*eventv1.AuthEvent {
	base := time.Date(2024, 3, 4, 9, 0, 0, 0, time.UTC)
	out := make([]*eventv1.AuthEvent, perBatch)
	for i := range out {
		n := b*perBatch + i
		out[i] = &eventv1.AuthEvent{
			EventId: fmt.Sprintf("evt-%06d", n),
			UserId:  users[n%len(users)],
			Type:    eventv1.EventType_EVENT_TYPE_PUSH_SENT,
			Factor:  eventv1.Factor_FACTOR_PUSH,
			Time:    timestamppb.New(base.Add(time.Duration(n) * time.Second)),
			Client:  &eventv1.Client{Ip: "198.51.100.7"},
		}
	}
	return out
}

// stream sends batches [from, from+perStream) on one IngestStream and
// reports whether the server acknowledged them. killAfter >= 0 kills the
// server after that many batches, before the stream is closed.
func stream(ctx context.Context, c intakev1.IntakeServiceClient, from, killAfter int, kill func()) bool {
	st, err := c.IngestStream(ctx)
	if err != nil {
		return false
	}
	for b := from; b < from+perStream; b++ {
		if b-from == killAfter {
			kill()
		}
		if err := st.Send(&intakev1.IngestStreamRequest{Events: batch(b)}); err != nil {
			return false
		}
	}
	resp, err := st.CloseAndRecv()
	return err == nil && resp.GetBatches() == perStream
}

// stored lists every stored event id and how often it is there.
func stored(t *testing.T, ctx context.Context, c intakev1.IntakeServiceClient) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for _, u := range users {
		tok := ""
		for {
			resp, err := c.ListEvents(ctx, &intakev1.ListEventsRequest{UserId: u, PageSize: 1000, PageToken: tok})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range resp.GetEvents() {
				seen[e.GetEventId()]++
			}
			if tok = resp.GetNextPageToken(); tok == "" {
				break
			}
		}
	}
	return seen
}

// TestSIGKILLMidStream kills the intake process with SIGKILL while a stream
// is in flight, restarts it on the same data directory and shows that every
// acknowledged event is stored exactly once, that nothing is stored twice,
// and that the IdP's re-delivery of everything is de-duplicated.
func TestSIGKILLMidStream(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("the go tool is needed to build the binary")
	}
	bin := filepath.Join(t.TempDir(), "pushback")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/pushbackhq/pushback/cmd/pushback").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dataDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	srv := startServer(t, bin, dataDir)
	c := client(t, srv.addr)
	const streams = 6
	acked := map[int]bool{} // stream index -> acknowledged
	for s := range streams {
		killAfter := -1
		if s == streams-1 {
			killAfter = perStream / 2 // half of the last stream is on the wire
		}
		acked[s] = stream(ctx, c, s*perStream, killAfter, func() { srv.kill(t) })
	}
	if acked[streams-1] {
		t.Fatal("the stream cut by SIGKILL was acknowledged")
	}
	for s := range streams - 1 {
		if !acked[s] {
			t.Fatalf("stream %d was not acknowledged before the kill", s)
		}
	}

	srv = startServer(t, bin, dataDir)
	c = client(t, srv.addr)
	seen := stored(t, ctx, c)
	for s := range streams {
		for b := s * perStream; b < (s+1)*perStream; b++ {
			for _, e := range batch(b) {
				n := seen[e.GetEventId()]
				if acked[s] && n != 1 {
					t.Fatalf("acknowledged event %s stored %d times", e.GetEventId(), n)
				}
				if n > 1 {
					t.Fatalf("unacknowledged event %s stored %d times", e.GetEventId(), n)
				}
			}
		}
	}
	before := len(seen)
	t.Logf("%d acknowledged events, %d stored after SIGKILL and restart", (streams-1)*perStream*perBatch, before)

	// The IdP re-delivers everything: only the missing events are added.
	st, err := c.IngestStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for b := range streams * perStream {
		if err := st.Send(&intakev1.IngestStreamRequest{Events: batch(b)}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := st.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	total := streams * perStream * perBatch
	if resp.GetDuplicates() != int64(before) || resp.GetAccepted() != int64(total-before) {
		t.Fatalf("re-delivery: accepted %d duplicates %d, want %d and %d", resp.GetAccepted(), resp.GetDuplicates(), total-before, before)
	}
	seen = stored(t, ctx, c)
	if len(seen) != total {
		t.Fatalf("%d distinct events stored, want %d", len(seen), total)
	}
	for id, n := range seen {
		if n != 1 || !strings.HasPrefix(id, "evt-") {
			t.Fatalf("event %s stored %d times", id, n)
		}
	}
	_ = os.Remove(bin)
}
