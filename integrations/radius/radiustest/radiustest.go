// Package radiustest runs real RADIUS software for tests: FreeRADIUS as the
// server (standing in for the MFA proxy) and radclient as the client
// (standing in for the VPN), both from Debian's freeradius and
// freeradius-utils packages, which scripts/test installs. A test that needs
// them fails when they are missing: it never skips.
package radiustest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Need fails the test when a program is not installed.
func Need(t testing.TB, programs ...string) {
	t.Helper()
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s is not installed: this test runs real RADIUS software; scripts/test installs it "+
				"(apt-get install -y freeradius freeradius-utils)", p)
		}
	}
}

// FreePort returns a UDP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// syncBuffer is a buffer written by a process and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FreeRADIUS is a FreeRADIUS server a test started from its own
// configuration directory, in debug mode (one thread, log on stdout).
type FreeRADIUS struct {
	// Addr is where it listens for Access-Requests.
	Addr string
	out  *syncBuffer
}

// User is an account of the server's users file.
type User struct {
	Name, Password string
	// Reply is the Reply-Message of its Access-Accept.
	Reply string
}

// RejectReply is the Reply-Message of every Access-Reject of the server,
// so that a test tells its rejects from the gate's.
const RejectReply = "freeradius: login incorrect"

// StartFreeRADIUS starts FreeRADIUS on a free port of 127.0.0.1, taking
// Access-Requests from 127.0.0.1 with secret. It requires a
// Message-Authenticator in every request and signs every answer with one
// (as a server patched against Blast-RADIUS does). It is stopped when the
// test ends.
func StartFreeRADIUS(t testing.TB, secret string, users []User) *FreeRADIUS {
	t.Helper()
	Need(t, "freeradius")
	dir := t.TempDir()
	port := FreePort(t)
	var u strings.Builder
	for _, usr := range users {
		fmt.Fprintf(&u, "%s\tCleartext-Password := %s\n", quote(usr.Name), quote(usr.Password))
		if usr.Reply != "" {
			fmt.Fprintf(&u, "\tReply-Message := %s\n", quote(usr.Reply))
		}
		u.WriteString("\n")
	}
	write(t, filepath.Join(dir, "users"), u.String())
	write(t, filepath.Join(dir, "radiusd.conf"), fmt.Sprintf(radiusdConf, dir, secret, port))
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	cmd := exec.CommandContext(ctx, "freeradius", "-X", "-d", dir)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start freeradius: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	deadline := time.After(30 * time.Second)
	for !strings.Contains(out.String(), "Ready to process requests") {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("freeradius exited before it was ready (%v):\n%s", err, out.String())
		case <-deadline:
			t.Fatalf("freeradius was not ready within 30s:\n%s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return &FreeRADIUS{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), out: out}
}

// Log is what the server logged so far.
func (f *FreeRADIUS) Log() string { return f.out.String() }

// Requests counts the Access-Requests the server received.
func (f *FreeRADIUS) Requests() int { return strings.Count(f.Log(), "Received Access-Request") }

func quote(s string) string { return strconv.Quote(s) }

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// radiusdConf is a whole FreeRADIUS configuration: PAP against a users
// file, nothing else. Arguments: the directory, the client's secret, the
// port.
const radiusdConf = `
confdir = %[1]s
raddbdir = %[1]s
modconfdir = %[1]s
logdir = %[1]s
radacctdir = %[1]s
run_dir = %[1]s
db_dir = %[1]s
pidfile = %[1]s/freeradius.pid
name = freeradius
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {
	destination = stdout
	auth = yes
}
security {
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = yes
}
client gate {
	ipaddr = 127.0.0.1
	secret = %[2]q
	require_message_authenticator = yes
}
modules {
	pap {
	}
	files {
		filename = %[1]s/users
	}
}
server default {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = %[3]d
	}
	authorize {
		files
		pap
	}
	authenticate {
		Auth-Type PAP {
			pap
		}
	}
	post-auth {
		update reply {
			&Message-Authenticator := 0x00
		}
		Post-Auth-Type REJECT {
			update reply {
				&Reply-Message := "` + RejectReply + `"
				&Message-Authenticator := 0x00
			}
		}
	}
}
`

// Answer is what radclient received.
type Answer struct {
	// Code is "Access-Accept", "Access-Reject", "Access-Challenge", or ""
	// when no answer came.
	Code string
	// Attrs are the answer's attributes as radclient printed them, in
	// order: name and value (strings unquoted, octets as 0x...).
	Attrs [][2]string
	// Output is radclient's whole output.
	Output string
}

// Get returns the values of the attribute name, in order.
func (a Answer) Get(name string) []string {
	var out []string
	for _, kv := range a.Attrs {
		if kv[0] == name {
			out = append(out, kv[1])
		}
	}
	return out
}

// ReplyMessage is the answer's Reply-Message attributes joined.
func (a Answer) ReplyMessage() string { return strings.Join(a.Get("Reply-Message"), "") }

// Radclient sends one Access-Request with radclient, as a VPN would: attrs
// is radclient's input ("User-Name=alice,User-Password=..."), to which a
// Message-Authenticator is added. It waits up to timeout and does not
// retransmit.
func Radclient(t testing.TB, addr, secret, attrs string, timeout time.Duration) Answer {
	t.Helper()
	Need(t, "radclient")
	if !strings.Contains(attrs, "Message-Authenticator") {
		attrs += ",Message-Authenticator=0x00"
	}
	secs := strconv.FormatFloat(timeout.Seconds(), 'f', 1, 64)
	cmd := exec.Command("radclient", "-x", "-r", "1", "-t", secs, addr, "auth", secret)
	cmd.Stdin = strings.NewReader(attrs + "\n")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// radclient exits non-zero when the answer is not Access-Accept; the
	// answer is read from its output.
	_ = cmd.Run()
	return parseRadclient(out.String())
}

// parseRadclient reads the answer from radclient -x output.
func parseRadclient(s string) Answer {
	a := Answer{Output: s}
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		if !strings.HasPrefix(line, "Received ") {
			continue
		}
		if f := strings.Fields(line); len(f) > 1 {
			a.Code = f[1]
		}
		for _, l := range lines[i+1:] {
			if !strings.HasPrefix(l, "\t") {
				break
			}
			name, value, ok := strings.Cut(strings.TrimSpace(l), " = ")
			if !ok {
				continue
			}
			if uq, err := strconv.Unquote(value); err == nil {
				value = uq
			}
			a.Attrs = append(a.Attrs, [2]string{name, value})
		}
		break
	}
	return a
}
