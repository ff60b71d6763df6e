package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/integrations/radius/radiustest"
	"github.com/pushbackhq/pushback/services/mesh"
)

func TestRadiusFlagErrors(t *testing.T) {
	const secret = "a-vpn-secret-nobody-may-see"
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"nothing", nil, nil, []string{"secret: is required", "upstream: is required", "upstream-secret: is required", "addr: is required"}},
		{"short secret", []string{"--secret=tiny", "--upstream=mfa:1812", "--upstream-secret=" + secret, "--addr=127.0.0.1:50051"}, nil,
			[]string{"secret: is shorter than 16 bytes"}},
		{"fail mode", []string{"--secret=" + secret, "--upstream=mfa:1812", "--upstream-secret=" + secret, "--addr=127.0.0.1:50051", "--fail-mode=ajar"}, nil,
			[]string{`fail-mode: "ajar" is not closed or open`}},
		{"bad duration", []string{"--upstream-timeout=soon"}, nil, []string{`invalid value "soon" for flag -upstream-timeout`}},
		{"environment", []string{"--upstream=mfa:1812", "--addr=127.0.0.1:50051"},
			map[string]string{"PUSHBACK_RADIUS_SECRET": secret, "PUSHBACK_RADIUS_UPSTREAM_SECRET": secret, "PUSHBACK_RADIUS_NUMBER_MATCH_MODE": "smoke-signals"},
			[]string{`number-match-mode: "smoke-signals" is not append or reject`}},
		{"environment value", nil, map[string]string{"PUSHBACK_RADIUS_MAX_INFLIGHT": "many"}, []string{"PUSHBACK_RADIUS_MAX_INFLIGHT: \"many\" is not a whole number"}},
		{"secret twice", []string{"--secret=" + secret, "--secret-file=/nonexistent"}, nil, []string{"secret, secret-file: give one, not both"}},
		{"argument", []string{"extra"}, nil, []string{`unexpected argument "extra"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append([]string{"radius"}, tc.args...), &out, &errb, func(k string) string { return tc.env[k] })
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr:\n%s", code, errb.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr does not say %q:\n%s", w, errb.String())
				}
			}
			if strings.Contains(errb.String(), secret) {
				t.Errorf("stderr shows a secret:\n%s", errb.String())
			}
		})
	}
	var out, errb bytes.Buffer
	if code := run([]string{"radius", "--help"}, &out, &errb, func(string) string { return "" }); code != 0 ||
		!strings.Contains(errb.String(), "-require-message-authenticator") {
		t.Fatalf("--help: exit %d\n%s", code, errb.String())
	}
}

// lockedBuffer is the command's stderr, read while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// pushback radius as an operator runs it: secrets from a file and the
// environment, a hook token and the intake token, in front of FreeRADIUS,
// with radclient as the VPN; it stops cleanly when told to.
func TestRadiusCommandGatesFreeRADIUS(t *testing.T) {
	radiustest.Need(t, "freeradius", "radclient")
	const (
		vpnSecret      = "cmd-test-vpn-secret-0123456789"
		upstreamSecret = "cmd-test-upstream-secret-012345"
		intakeToken    = "cmd-test-intake-token-0123456789"
	)
	fr := radiustest.StartFreeRADIUS(t, upstreamSecret, []radiustest.User{{Name: "alice", Password: "correct-horse", Reply: "welcome"}})
	m := startMeshWith(t, "", "", func(c *mesh.Config) { c.Auth.IntakeToken = intakeToken })
	secretFile := filepath.Join(t.TempDir(), "vpn-secret")
	if err := os.WriteFile(secretFile, []byte(vpnSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", radiustest.FreePort(t))
	env := map[string]string{"PUSHBACK_RADIUS_UPSTREAM_SECRET": upstreamSecret, "PUSHBACK_TOKEN": hookToken}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- radiusCmd(ctx, []string{"--listen=" + listen, "--secret-file=" + secretFile, "--upstream=" + fr.Addr,
			"--addr=" + m.grpcAddr, "--intake-token=" + intakeToken, "--app-map=asa-1=vpn", "--log-format=text"},
			nil, stderr, func(k string) string { return env[k] })
	}()
	var a radiustest.Answer
	for deadline := time.Now().Add(30 * time.Second); ; {
		select {
		case code := <-done:
			t.Fatalf("pushback radius exited %d:\n%s", code, stderr.String())
		default:
		}
		if strings.Contains(stderr.String(), "gate serving") {
			a = radiustest.Radclient(t, listen, vpnSecret, "User-Name=alice,User-Password=correct-horse,NAS-Identifier=asa-1,Calling-Station-Id=203.0.113.5", 30*time.Second)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gate did not start:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a.Code != "Access-Accept" || a.ReplyMessage() != "welcome" {
		t.Fatalf("answer %q:\n%s\n%s", a.Code, a.Output, stderr.String())
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(stderr.String(), "the MFA proxy answered"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no answer logged:\n%s", stderr.String())
		}
	}
	if !strings.Contains(stderr.String(), "app=vpn ") {
		t.Fatalf("the NAS was not mapped to its application:\n%s", stderr.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("pushback radius did not stop")
	}
	out := stderr.String()
	if !strings.Contains(out, "gate stopped") {
		t.Fatalf("no clean stop:\n%s", out)
	}
	for _, s := range []string{vpnSecret, upstreamSecret, intakeToken, hookToken, "correct-horse"} {
		if strings.Contains(out, s) {
			t.Fatalf("the log shows a secret:\n%s", out)
		}
	}
}
