package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	"github.com/pushbackhq/pushback/integrations/radius"
	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"github.com/pushbackhq/pushback/pkg/settings"
	"google.golang.org/grpc"
)

const radiusUsage = `Usage: pushback radius [flags]

Runs the RADIUS gate between a VPN and its push MFA proxy (for example the
Duo Authentication Proxy). The VPN sends its Access-Requests to the gate;
the gate asks the decision service (Decide) before each push and either
forwards the request to the MFA proxy or answers the VPN itself:
Access-Reject when the push must not be sent, Access-Challenge for the
authenticator app's passcode when number matching is required. What
happened to each push is reported to intake. See docs/radius.md.

Every flag can also be set by PUSHBACK_RADIUS_<NAME> (--upstream-secret is
PUSHBACK_RADIUS_UPSTREAM_SECRET); flags win. Secrets are best given in a
file (--secret-file, --upstream-secret-file, --intake-token-file) or the
environment.

Flags:
`

const radiusEnvPrefix = "PUSHBACK_RADIUS_"

func radiusCmd(ctx context.Context, args []string, _, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("radius", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, radiusUsage); fs.PrintDefaults() }
	cfg := radius.DefaultConfig()
	envErr := bindSettings(fs, cfg.Settings(), getenv)
	// Decide is a hook's call (docs/security.md); a hook may sign it.
	cf := addClientFlags(fs, getenv, "a hook token (--auth-tokens of the mesh)", true)
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "json", "json or text")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pushback radius: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "pushback radius: %v\n", err)
		return 2
	}
	if envErr != nil {
		return fail(envErr)
	}
	if err := cfg.Complete(); err != nil {
		return fail(err)
	}
	if err := cfg.Validate(); err != nil {
		return fail(err)
	}
	switch *logLevel {
	case "debug", "info", "warn", "error":
	default:
		return fail(fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", *logLevel))
	}
	if *logFormat != "json" && *logFormat != "text" {
		return fail(fmt.Errorf("--log-format: %q is not json or text", *logFormat))
	}
	creds, tlsCreds, err := cf.resolve()
	if err != nil {
		return fail(err)
	}
	log := newLogger(stderr, *logLevel, *logFormat)

	// One connection per service: a credential only ever goes to the
	// service it is for.
	dconn, err := rpc.Dial(cfg.DecisionAddr, rpc.ClientOptions{Unary: []grpc.UnaryClientInterceptor{creds.UnaryClientInterceptor()}, Creds: tlsCreds})
	if err != nil {
		return fail(fmt.Errorf("--addr: %w", err))
	}
	defer dconn.Close()
	opts := radius.Options{Decider: decisionv1.NewDecisionServiceClient(dconn), Logger: log}
	if cfg.ReportOutcomes {
		intake := auth.Credentials{Token: cfg.IntakeToken}
		iconn, err := rpc.Dial(cfg.IntakeTarget(), rpc.ClientOptions{Unary: []grpc.UnaryClientInterceptor{intake.UnaryClientInterceptor()}, Creds: tlsCreds})
		if err != nil {
			return fail(fmt.Errorf("--intake-addr: %w", err))
		}
		defer iconn.Close()
		opts.Ingester = intakev1.NewIntakeServiceClient(iconn)
	}
	if cfg.ReportOutcomes && cfg.IntakeToken == "" {
		log.Warn("radius: no --intake-token: a mesh with an intake token refuses the outcomes reported (set it, or --report-outcomes=false)")
	}
	if cfg.FailMode == radius.FailOpen {
		log.Warn("radius: --fail-mode=open: when the decision service cannot be asked, logins go to the MFA proxy unchecked")
	}
	if !cfg.RequireMessageAuthenticator {
		log.Warn("radius: --require-message-authenticator=false: Access-Requests without a Message-Authenticator are accepted (Blast-RADIUS, CVE-2024-3596)")
	}
	if !cfg.UpstreamRequireMessageAuthenticator {
		log.Warn("radius: --upstream-require-message-authenticator=false: answers of the MFA proxy without a Message-Authenticator are accepted (Blast-RADIUS, CVE-2024-3596)")
	}
	gate, err := radius.New(cfg, opts)
	if err != nil {
		return fail(err)
	}
	if err := gate.ListenAndServe(ctx); err != nil {
		log.Error("radius: the gate stopped with an error", slog.Any("error", err))
		return 1
	}
	return 0
}

// IsBoolFlag lets an on/off setting stand alone: --name means --name=true.
func (f settingFlag) IsBoolFlag() bool { return f.st.OnOff }

// envName is the environment variable of a gate setting.
func envName(name string) string {
	return radiusEnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// bindSettings declares each setting as a flag (its default, never a
// secret's, in the usage text) and sets it from its environment variable;
// flags parsed later win. Errors name the variable, never its value.
func bindSettings(fs *flag.FlagSet, list []settings.Setting, getenv func(string) string) error {
	for _, st := range list {
		fs.Var(settingFlag{st}, st.Name, st.Usage+" (env "+envName(st.Name)+")")
	}
	for _, st := range list {
		if v := getenv(envName(st.Name)); v != "" {
			if err := st.Set(v); err != nil {
				return fmt.Errorf("%s: %w", envName(st.Name), err)
			}
		}
	}
	return nil
}
