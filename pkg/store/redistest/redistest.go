// Package redistest starts a real redis-server for tests and stops it when
// the test ends. scripts/test installs redis-server when it is missing.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is a running redis-server.
type Server struct {
	Addr string
	Port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  strings.Builder
}

// Start runs redis-server on a free loopback port, without persistence,
// and stops it in t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{dir: t.TempDir()}
	if err := s.start(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start(port int) error {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return fmt.Errorf("redis-server is not installed: run scripts/test (it installs it) or apt-get install redis-server")
	}
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	s.Port, s.Addr = port, "127.0.0.1:"+strconv.Itoa(port)
	s.cmd = exec.Command(path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--protected-mode", "yes", "--loglevel", "warning")
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	s.cmd.Stderr = s.cmd.Stdout
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.done = make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
		}
		_ = s.cmd.Wait()
		close(s.done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("redis-server exited: %s", s.output())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("redis-server did not listen on %s within 10s: %s", s.Addr, s.output())
}

func (s *Server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Stop kills the server and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Pause freezes the server with SIGSTOP, as a hung host or a stalled
// process would: the kernel still accepts connections and buffers what
// clients write, but nothing is answered. The server is resumed in
// t.Cleanup, before Stop, so a test that fails while it is paused does not
// leave a frozen process behind.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("pause redis-server: %v", err)
	}
	t.Cleanup(s.Resume)
}

// Resume continues a paused server (SIGCONT); resuming a running or exited
// server does nothing.
func (s *Server) Resume() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
}

// Restart starts the server again on the same port (after Stop).
func (s *Server) Restart() error {
	s.Stop()
	return s.start(s.Port)
}
