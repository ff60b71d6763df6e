package console_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/services/mesh"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// screenshots is where the browser test leaves its PNGs: the test's own
// directory is removed when it ends, and the pages are its output.
var screenshots = flag.String("screenshots", "", "directory for the console's screenshots (env PUSHBACK_CONSOLE_SCREENSHOTS; default pushback-console-screenshots in the system's temporary directory)")

func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := *screenshots
	if dir == "" {
		dir = os.Getenv("PUSHBACK_CONSOLE_SCREENSHOTS")
	}
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "pushback-console-screenshots")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runMesh runs a whole mesh in this process, with the production wiring,
// on ephemeral ports; it stops when the test ends.
func runMesh(t *testing.T, cfg mesh.Config) (grpcAddr, httpAddr string) {
	t.Helper()
	cfg.DataDir = t.TempDir()
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	// This test is about the console, not the decide budget: a loaded
	// machine must not turn its decisions into failure modes.
	cfg.Decision.Budget = 5 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- mesh.Run(ctx, cfg, mesh.Options{Getenv: func(string) string { return "" }, Ready: func(g, h string) { ready <- [2]string{g, h} }})
	}()
	select {
	case a := <-ready:
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("mesh: %v", err)
			}
		})
		return a[0], a[1]
	case err := <-done:
		cancel()
		t.Fatalf("mesh did not start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("mesh did not start within 60s")
	}
	return "", ""
}

// browser starts Debian's chromium, headless, with a fresh profile. The
// test does not skip without it: scripts/test installs the package.
func browser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the console's browser test needs Chromium: install Debian's chromium package (apt-get install chromium; scripts/test does): %v", err)
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
		chromedp.Flag("disable-gpu", true),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to run as root inside its sandbox.
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("chromium (%s) did not start: %v", path, err)
	}
	return bctx
}

// TestConsoleInChromium plays the help desk's call end to end in a real
// browser against a real mesh: an attacker's push burst puts a user in a
// cooldown; the operator signs in with their token, finds the user by an
// id spelled differently, sees the decisions with their signals and
// reasons and the active cooldown (the attacker's device name, a markup
// payload, shown as text), and clears it with a reason. Decision then no
// longer judges the user's attempts by that cooldown, and its audit record
// names the operator, their credential and the reason. Each page is saved
// as a PNG.
func TestConsoleInChromium(t *testing.T) {
	const (
		hookToken     = "hook-token-0123456789abcdef"
		operatorToken = "operator-token-0123456789abcdef"
		rawUser       = "Alice.Smith@Example.COM"
		typedUser     = "  ALICE.SMITH@example.com "
		user          = "alice.smith@example.com"
		attackerIP    = "203.0.113.66"
		// The attacker names their device; the console must show the name
		// as text.
		attackerDevice = `<img src=x onerror="document.title='pwned'">phone`
		operatorName   = "Ana (help desk)"
		reason         = "Verified the caller by call-back; ticket HD-4711 <i>urgent</i>"
	)
	cfg := mesh.Default()
	cfg.Auth.HookTokens = []string{hookToken}
	cfg.Auth.OperatorTokens = []string{operatorToken}
	grpcAddr, httpAddr := runMesh(t, cfg)

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	dc := decisionv1.NewDecisionServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	hook := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+hookToken)
	operator := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+operatorToken)

	push := func(attempt string) *decisionv1.DecideResponse {
		t.Helper()
		r, err := dc.Decide(hook, &decisionv1.DecideRequest{UserId: rawUser, AppId: "vpn", Factor: eventv1.Factor_FACTOR_PUSH, AttemptId: attempt,
			Client: &eventv1.Client{Ip: attackerIP, DeviceId: attackerDevice, UserAgent: "Mozilla/5.0"}})
		if err != nil {
			t.Fatalf("Decide %s: %v", attempt, err)
		}
		return r
	}
	// The burst: the 5th push in 10 minutes is denied and starts a
	// cooldown; the 6th, from the same source, is denied by it.
	var last *decisionv1.DecideResponse
	for i := range 5 {
		last = push(fmt.Sprint("burst-", i))
	}
	if last.GetOutcome() != decisionv1.Outcome_OUTCOME_DENY || last.GetCooldown().AsDuration() == 0 {
		t.Fatalf("the burst's 5th push: %v cooldown %v (%v), want DENY with a cooldown", last.GetOutcome(), last.GetCooldown().AsDuration(), last.GetReasons())
	}
	if r := push("burst-5"); !slices.Contains(r.GetMatchedRules(), "cooldown") || r.GetCooldownContext().GetBoundBy() != "ip" {
		t.Fatalf("during the cooldown: rules %v, context %v; want the cooldown, bound by ip", r.GetMatchedRules(), r.GetCooldownContext())
	}

	b := browser(t, ctx)
	dir := screenshotDir(t)
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(b, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		p := filepath.Join(dir, "console-"+name+".png")
		if err := os.WriteFile(p, png, 0o640); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s: %s (%d bytes)", name, p, len(png))
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(b, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(b, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(b, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
		if err != nil {
			t.Fatalf("count %s: %v", sel, err)
		}
		return n
	}
	base := "http://" + httpAddr + "/console/"

	do("open the console", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	shot("1-sign-in")
	// A wrong token is refused on the page.
	do("sign in with a wrong token",
		chromedp.SendKeys(chromedp.CSS("#operator"), operatorName),
		chromedp.SendKeys(chromedp.CSS("#token"), hookToken),
		chromedp.Click(chromedp.CSS("#sign-in")),
		chromedp.WaitVisible(chromedp.CSS("#problem")))
	if got := text("#problem"); !strings.Contains(got, "not an operator token") {
		t.Fatalf("after a wrong token the page says %q", got)
	}
	do("sign in",
		chromedp.SendKeys(chromedp.CSS("#operator"), operatorName),
		chromedp.SendKeys(chromedp.CSS("#token"), operatorToken),
		chromedp.Click(chromedp.CSS("#sign-in")),
		chromedp.WaitVisible(chromedp.CSS("#search-form")))
	if got := text("#signed-in"); !strings.Contains(got, operatorName) {
		t.Fatalf("signed in as %q", got)
	}
	shot("2-find-a-user")

	do("find the user",
		chromedp.SendKeys(chromedp.CSS("#user_id"), typedUser),
		chromedp.Click(chromedp.CSS("#find")),
		chromedp.WaitVisible(chromedp.CSS("#cooldown-state")))
	if got := text("#user-id"); got != user {
		t.Fatalf("the page shows user %q for %q, want %q", got, typedUser, user)
	}
	if got := text("#cooldown-state"); !strings.HasPrefix(got, "Active until") {
		t.Fatalf("cooldown: %q, want it active", got)
	}
	if n := count("tr.decision"); n != 6 {
		t.Fatalf("%d decisions on the page, want 6", n)
	}
	decisions := text("#decisions")
	for _, want := range []string{"DENY", "PUSH_BURST", "5 or more push attempts in 10 minutes look like push bombing", "burst-deny", attackerDevice, attackerIP} {
		if !strings.Contains(decisions, want) {
			t.Fatalf("the decisions do not show %q:\n%s", want, decisions)
		}
	}
	// The denials raised an incident at notify.
	if n := count("tr.incident"); n < 1 || !strings.Contains(text("#incidents"), "PUSH_BURST") {
		t.Fatalf("%d incidents on the page, want the burst's:\n%s", n, text("#incidents"))
	}
	if !strings.Contains(text("#cooldown"), attackerIP) {
		t.Fatalf("the cooldown does not show the bound source %s", attackerIP)
	}
	// The attacker's markup is text: no element was made of it, nothing ran.
	if n := count("main img"); n != 0 {
		t.Fatalf("the attacker's device name made %d img elements", n)
	}
	shot("3-user-in-cooldown")

	do("clear the cooldown",
		chromedp.SendKeys(chromedp.CSS("#reason"), reason),
		chromedp.Click(chromedp.CSS("#clear")),
		chromedp.WaitVisible(chromedp.CSS("#cleared")))
	if got := text("#cooldown-state"); got != "No active cooldown." {
		t.Fatalf("after clearing: %q", got)
	}
	if got := text("tr.clearance td.operator"); got != operatorName {
		t.Fatalf("the audit trail names %q, want %q", got, operatorName)
	}
	if got := text("tr.clearance td.reason"); got != reason {
		t.Fatalf("the audit trail's reason %q, want %q", got, reason)
	}
	if n := count("td.reason i"); n != 0 {
		t.Fatal("the reason's markup made elements")
	}
	shot("4-cooldown-cleared")

	// Bad input is a 400 page naming the field.
	do("search without a user id", chromedp.Navigate(base+"user?user_id=%20"), chromedp.WaitVisible(chromedp.CSS("#error-title")))
	if got := text(".violation .field"); got != "user_id" {
		t.Fatalf("the error page names %q, want user_id", got)
	}
	shot("5-bad-input")
	if title, err := chromedp.Run(b, chromedp.Title()); err != nil || title == "pwned" {
		t.Fatalf("page title %q, %v: the attacker's markup ran", title, err)
	}
	do("sign out", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS("#logout")), chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-form")))

	// Decision agrees: the cooldown is gone, and its audit record says
	// who cleared it, with which credential, why and when.
	cd, err := dc.GetCooldown(operator, &decisionv1.GetCooldownRequest{UserId: rawUser})
	if err != nil {
		t.Fatal(err)
	}
	if cd.GetActive() || len(cd.GetClearances()) != 1 {
		t.Fatalf("GetCooldown after clearing: %v", cd)
	}
	rec := cd.GetClearances()[0]
	if rec.GetOperator() != operatorName || rec.GetReason() != reason || rec.GetCredential() != auth.Fingerprint(operatorToken) ||
		!rec.GetWasActive() || rec.GetUserId() != user || time.Since(rec.GetClearedAt().AsTime()) > 10*time.Minute {
		t.Fatalf("audit record %v", rec)
	}
	// The next attempt is not judged by the cleared cooldown (the burst
	// rules still count the pushes in their windows).
	if r := push("after-clearing"); slices.Contains(r.GetMatchedRules(), "cooldown") || r.GetCooldownContext() != nil {
		t.Fatalf("after clearing: rules %v, cooldown context %v; the cleared cooldown still judged the attempt", r.GetMatchedRules(), r.GetCooldownContext())
	} else {
		t.Logf("the attacker's next push after clearing: %v, rules %v", r.GetOutcome(), r.GetMatchedRules())
	}
	// Reading a cooldown is an operator's act, as clearing it is.
	if _, err := dc.GetCooldown(hook, &decisionv1.GetCooldownRequest{UserId: rawUser}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a hook reading the cooldown: %v, want PermissionDenied", err)
	}
}
