package mesh

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/component"
	"github.com/pushbackhq/pushback/pkg/userid"
	"github.com/pushbackhq/pushback/services/console"
	"github.com/pushbackhq/pushback/services/decision"
	"github.com/pushbackhq/pushback/services/intake"
	"github.com/pushbackhq/pushback/services/notify"
	"github.com/pushbackhq/pushback/services/scoring"
	"go.yaml.in/yaml/v3"
)

// Service names.
const (
	Intake   = component.Intake
	Scoring  = component.Scoring
	Decision = component.Decision
	Notify   = component.Notify
)

// AllServices is the default: every service in one process.
var AllServices = []string{Intake, Scoring, Decision, Notify}

// Config is everything `pushback serve` needs. Defaults live in Default;
// a strict YAML file, PUSHBACK_* environment variables and flags override
// them, in that order.
type Config struct {
	Services        []string
	GRPCAddr        string
	HTTPAddr        string
	DataDir         string
	IntakeAddr      string
	ScoringAddr     string
	DecisionAddr    string
	NotifyAddr      string
	ShutdownTimeout time.Duration
	SyncWrites      bool
	StoreKind       string
	RedisAddrs      []string
	RedisPassword   string
	RedisPrefix     string
	TLSCert         string
	TLSKey          string
	TLSCA           string
	LogLevel        string
	LogFormat       string
	// Auth holds the credentials of the callers outside the mesh, by role
	// (see docs/security.md); TLSCert, TLSKey and TLSCA identify services.
	Auth auth.Config

	// Telemetry identities (see docs/operators.md): user ids and IPs in
	// spans and logs are HMAC hashes under TelemetryHashKey (a random key
	// per process when empty); TelemetryRawIDs records them in clear.
	TelemetryHashKey string
	TelemetryRawIDs  bool

	// Scoring is the scoring service's own configuration.
	Scoring scoring.ServiceConfig
	// Intake is intake's own configuration, its pollers' pace included.
	Intake intake.Config
	// Decision is the decision service's own configuration: its policy
	// files, budget, clock rule and admission control.
	Decision decision.Config
	// UserIDs is the rule that canonicalises user ids (see docs/decision.md).
	UserIDs userid.Config
	// Notify is the notification service's own configuration: its
	// channels, report links and brake.
	Notify notify.Config
	// Console is the help-desk console's own configuration.
	Console console.Config
	// Connectors are the identity providers' connectors: notify acts
	// through them (docs/respond.md), intake polls their logs.
	Connectors Connectors
}

// Default returns the defaults a newcomer gets.
func Default() Config {
	return Config{
		Services:        slices.Clone(AllServices),
		GRPCAddr:        "127.0.0.1:50051",
		HTTPAddr:        "127.0.0.1:8080",
		DataDir:         "./data",
		StoreKind:       "badger",
		ShutdownTimeout: 8 * time.Second,
		LogLevel:        "info",
		LogFormat:       "json",
		Decision:        decision.DefaultConfig(),
		Auth:            auth.Default(),
		UserIDs:         userid.DefaultConfig(),
		Notify:          notify.DefaultConfig(),
		Connectors:      DefaultConnectors(),
		Intake:          intake.DefaultConfig(),
		Console:         console.DefaultConfig(),
	}
}

func boolean(p func(c *Config) *bool) (func(*Config) string, func(*Config, string) error) {
	return func(c *Config) string { return strconv.FormatBool(*p(c)) }, func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not a boolean", v)
		}
		*p(c) = b
		return nil
	}
}

// setting binds one configuration value to its flag, env and YAML names.
type setting struct {
	name   string // flag and YAML key
	usage  string
	secret bool
	// onOff settings are booleans: --name alone means --name=true.
	onOff bool
	get   func(c *Config) string
	set   func(c *Config, v string) error
}

// onOff marks a boolean setting.
func onOff(st setting) setting { st.onOff = true; return st }

// flagValue is a setting's flag: its text, which the setting checks later.
type flagValue struct {
	p     *string
	onOff bool
}

func (f *flagValue) String() string {
	if f.p == nil {
		return ""
	}
	return *f.p
}

func (f *flagValue) Set(v string) error { *f.p = v; return nil }

func (f *flagValue) IsBoolFlag() bool { return f.onOff }

func str(p func(c *Config) *string) (func(*Config) string, func(*Config, string) error) {
	return func(c *Config) string { return *p(c) }, func(c *Config, v string) error { *p(c) = v; return nil }
}

func dur(p func(c *Config) *time.Duration) (func(*Config) string, func(*Config, string) error) {
	return func(c *Config) string { return p(c).String() }, func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a duration (e.g. 50ms, 10s)", v)
		}
		*p(c) = d
		return nil
	}
}

func allSettings() []setting {
	mk := func(name, usage string, secret bool, g func(*Config) string, s func(*Config, string) error) setting {
		return setting{name: name, usage: usage, secret: secret, get: g, set: s}
	}
	var out []setting
	add := func(st setting) { out = append(out, st) }
	g, s := str(func(c *Config) *string { return &c.GRPCAddr })
	add(mk("grpc-addr", "gRPC listen address", false, g, s))
	g, s = str(func(c *Config) *string { return &c.HTTPAddr })
	add(mk("http-addr", "HTTP listen address (empty disables HTTP)", false, g, s))
	g, s = str(func(c *Config) *string { return &c.DataDir })
	add(mk("data-dir", "directory of the embedded badger store", false, g, s))
	g, s = str(func(c *Config) *string { return &c.IntakeAddr })
	add(mk("intake-addr", "address of a remote intake service", false, g, s))
	g, s = str(func(c *Config) *string { return &c.ScoringAddr })
	add(mk("scoring-addr", "address of a remote scoring service", false, g, s))
	g, s = str(func(c *Config) *string { return &c.DecisionAddr })
	add(mk("decision-addr", "address of a remote decision service", false, g, s))
	g, s = str(func(c *Config) *string { return &c.NotifyAddr })
	add(mk("notify-addr", "address of a remote notification service", false, g, s))
	g, s = dur(func(c *Config) *time.Duration { return &c.ShutdownTimeout })
	add(mk("shutdown-timeout", "graceful shutdown deadline", false, g, s))
	add(mk("services", "comma-separated services to run: intake,scoring,decision,notify", false,
		func(c *Config) string { return strings.Join(c.Services, ",") },
		func(c *Config, v string) error {
			c.Services = nil
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p != "" && !slices.Contains(c.Services, p) {
					c.Services = append(c.Services, p)
				}
			}
			return nil
		}))
	g, s = boolean(func(c *Config) *bool { return &c.SyncWrites })
	add(onOff(mk("sync-writes", "fsync every store commit", false, g, s)))
	g, s = str(func(c *Config) *string { return &c.StoreKind })
	add(mk("store", "state store: badger (embedded, one node) or redis (shared by replicas)", false, g, s))
	add(mk("redis-addr", "Redis address (one primary; Redis Cluster is not supported)", false,
		func(c *Config) string { return strings.Join(c.RedisAddrs, ",") },
		func(c *Config, v string) error {
			c.RedisAddrs = nil
			for _, a := range strings.Split(v, ",") {
				if a = strings.TrimSpace(a); a != "" {
					c.RedisAddrs = append(c.RedisAddrs, a)
				}
			}
			return nil
		}))
	g, s = str(func(c *Config) *string { return &c.RedisPassword })
	add(mk("redis-password", "Redis password", true, g, s))
	g, s = str(func(c *Config) *string { return &c.RedisPrefix })
	add(mk("redis-key-prefix", "prefix of every Redis key (several deployments on one server)", false, g, s))
	g, s = str(func(c *Config) *string { return &c.TLSCert })
	add(mk("tls-cert", "certificate (PEM) for mutual TLS between services; serves and dials with it", false, g, s))
	g, s = str(func(c *Config) *string { return &c.TLSKey })
	add(mk("tls-key", "private key (PEM) of --tls-cert", false, g, s))
	g, s = str(func(c *Config) *string { return &c.TLSCA })
	add(mk("tls-ca", "CA (PEM) every peer certificate must be signed by", false, g, s))
	g, s = str(func(c *Config) *string { return &c.LogLevel })
	add(mk("log-level", "debug, info, warn or error", false, g, s))
	g, s = str(func(c *Config) *string { return &c.LogFormat })
	add(mk("log-format", "json or text", false, g, s))
	g, s = str(func(c *Config) *string { return &c.TelemetryHashKey })
	add(mk("telemetry-hash-key", "HMAC key of the user and IP hashes in spans and logs (at least 16 bytes; share it across processes to correlate; random per process when empty)", true, g, s))
	g, s = boolean(func(c *Config) *bool { return &c.TelemetryRawIDs })
	add(onOff(mk("telemetry-raw-ids", "record raw user ids and IPs in spans and logs instead of hashes (off by default)", false, g, s)))
	out = append(out, ownedSettings()...)
	return out
}

// envName is the environment variable of a setting: PUSHBACK_GRPC_ADDR.
func envName(name string) string {
	return "PUSHBACK_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Load builds the configuration from defaults, the file named by --config
// (or PUSHBACK_CONFIG), the environment and the flags in args.
func Load(args []string, getenv func(string) string) (Config, error) {
	cfg := Default()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	configFile := fs.String("config", getenv("PUSHBACK_CONFIG"), "strict YAML configuration file")
	values := map[string]*string{}
	for _, st := range allSettings() {
		v := new(string)
		*v = st.get(&cfg)
		values[st.name] = v
		fs.Var(&flagValue{p: v, onOff: st.onOff}, st.name, st.usage+" (env "+envName(st.name)+")")
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *configFile != "" {
		if err := loadFile(&cfg, *configFile); err != nil {
			return cfg, err
		}
	}
	for _, st := range allSettings() {
		if v, ok := lookupEnv(getenv, envName(st.name)); ok {
			if err := st.set(&cfg, v); err != nil {
				return cfg, fmt.Errorf("%s: %w", envName(st.name), err)
			}
		}
	}
	var ferr error
	fs.Visit(func(f *flag.Flag) {
		for _, st := range allSettings() {
			if st.name == f.Name && ferr == nil {
				if err := st.set(&cfg, f.Value.String()); err != nil {
					ferr = fmt.Errorf("--%s: %w", st.name, err)
				}
			}
		}
	})
	if ferr != nil {
		return cfg, ferr
	}
	return cfg, cfg.Validate()
}

func lookupEnv(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

func loadFile(cfg *Config, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var m map[string]yaml.Node
	if err := yaml.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	byName := map[string]setting{}
	for _, st := range allSettings() {
		byName[st.name] = st
	}
	for key, node := range m {
		st, ok := byName[key]
		if !ok {
			return fmt.Errorf("config %s: line %d: unknown setting %q", path, node.Line, key)
		}
		v := node.Value
		if node.Kind == yaml.SequenceNode {
			var parts []string
			for _, n := range node.Content {
				parts = append(parts, n.Value)
			}
			v = strings.Join(parts, ",")
		}
		if err := st.set(cfg, v); err != nil {
			return fmt.Errorf("config %s: line %d: %s: %w", path, node.Line, key, err)
		}
	}
	return nil
}

// Validate reports every inconsistency of the configuration.
func (c Config) Validate() error {
	var errs []error
	if len(c.Services) == 0 {
		errs = append(errs, errors.New("services: at least one service must run"))
	}
	for _, s := range c.Services {
		if !slices.Contains(AllServices, s) {
			errs = append(errs, fmt.Errorf("services: unknown service %q (want intake, scoring, decision, notify)", s))
		}
	}
	if c.GRPCAddr == "" {
		errs = append(errs, errors.New("grpc-addr: is required"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir: is required"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("shutdown-timeout: must be positive"))
	}
	need := func(svc, peer, addr string) {
		if c.Runs(svc) && !c.Runs(peer) && addr == "" {
			errs = append(errs, fmt.Errorf("%s-addr: %s runs without %s, so the address of a remote %s is required", peer, svc, peer, peer))
		}
	}
	errs = append(errs, c.validateAuth()...)
	need(Decision, Scoring, c.ScoringAddr)
	need(Decision, Notify, c.NotifyAddr)
	need(Intake, Scoring, c.ScoringAddr)
	errs = append(errs, c.validateOwned()...)
	if c.TelemetryHashKey != "" && len(c.TelemetryHashKey) < 16 {
		errs = append(errs, errors.New("telemetry-hash-key: must be at least 16 bytes"))
	}
	if set := btoi(c.TLSCert != "") + btoi(c.TLSKey != "") + btoi(c.TLSCA != ""); set != 0 && set != 3 {
		errs = append(errs, errors.New("tls-cert, tls-key, tls-ca: mutual TLS needs all three"))
	}
	switch c.StoreKind {
	case "badger":
	case "redis":
		switch {
		case len(c.RedisAddrs) == 0:
			errs = append(errs, errors.New("redis-addr: is required with --store=redis"))
		case len(c.RedisAddrs) > 1:
			// A transaction watches keys of several hash slots (a decision
			// and its indexes, a delivery and its due key), which Redis
			// Cluster cannot run.
			errs = append(errs, errors.New("redis-addr: give one address (a standalone or replicated Redis primary); Redis Cluster is not supported"))
		}
	default:
		errs = append(errs, fmt.Errorf("store: %q is not badger or redis", c.StoreKind))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level: %q is not one of debug, info, warn, error", c.LogLevel))
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("log-format: %q is not json or text", c.LogFormat))
	}
	return errors.Join(errs...)
}

// peerAddr is the address of a remote svc ("" when none is given).
func (c Config) peerAddr(svc string) string {
	switch svc {
	case Intake:
		return c.IntakeAddr
	case Scoring:
		return c.ScoringAddr
	case Decision:
		return c.DecisionAddr
	case Notify:
		return c.NotifyAddr
	}
	return ""
}

// Runs reports whether svc runs in this process.
func (c Config) Runs(svc string) bool { return slices.Contains(c.Services, svc) }

// Usage describes every setting with its flag and environment variable.
func Usage() string {
	var b strings.Builder
	b.WriteString("  --config FILE   strict YAML configuration file (env PUSHBACK_CONFIG)\n")
	def := Default()
	for _, st := range allSettings() {
		d := st.get(&def)
		if st.secret {
			d = ""
		}
		fmt.Fprintf(&b, "  --%-22s %s (env %s", st.name, st.usage, envName(st.name))
		if d != "" {
			fmt.Fprintf(&b, ", default %s", d)
		}
		b.WriteString(")\n")
	}
	return b.String()
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// MutualTLS reports whether services talk over mutual TLS.
func (c Config) MutualTLS() bool { return c.TLSCert != "" }
