package console

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/httpapi"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed templates/console.css
var stylesheet []byte

// pages are the console's templates, each page parsed with the layout.
// html/template escapes every value by its context: user ids, reasons and
// evidence come from attackers and render as text.
type pages map[string]*template.Template

var pageNames = []string{"login", "home", "user", "error"}

func parsePages() (pages, error) {
	funcs := template.FuncMap{"ts": formatTime, "outcome": outcomeName}
	out := pages{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: page %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

func (p pages) execute(w io.Writer, name string, data any) error {
	t, ok := p[name]
	if !ok {
		return fmt.Errorf("no page %q", name)
	}
	return t.Execute(w, data)
}

// base is what every signed-in page shows: who is signed in, and the CSRF
// token its forms carry.
type base struct {
	Operator string
	CSRF     string
}

type loginData struct {
	CSRF     string
	Problem  string
	NoTokens bool
	// Operator is empty: the layout shows no sign-out form.
	Operator string
}

type homeData struct {
	base
}

type userData struct {
	base
	// Typed is the id as the help desk typed it; UserID the canonical form.
	Typed, UserID, Tenant string
	Cooldown              *decisionv1.GetCooldownResponse
	Decisions             []decisionView
	Incidents             []*notifyv1.Incident
	IncidentsProblem      string
	// Cleared is set after a clearing redirected here.
	Cleared bool
}

type errorData struct {
	Status     int
	Title      string
	Message    string
	Violations []httpapi.FieldViolation
	Operator   string
}

// decisionView is one decision as the page shows it.
type decisionView struct {
	ID, Outcome, App, IP, Device, Country, Factor, RawUserID string
	At                                                       *timestamppb.Timestamp
	Score                                                    int32
	Cooldown                                                 time.Duration
	Signals                                                  []signalView
	Reasons, Rules                                           []string
	BoundBy                                                  string
}

type signalView struct {
	Code, Summary, Evidence string
	Weight                  int32
}

func viewDecision(rec *decisionv1.DecisionRecord) decisionView {
	req, resp := rec.GetRequest(), rec.GetResponse()
	v := decisionView{ID: rec.GetDecisionId(), At: rec.GetDecidedAt(), Outcome: outcomeName(resp.GetOutcome()),
		App: req.GetAppId(), IP: req.GetClient().GetIp(), Device: req.GetClient().GetDeviceId(), Country: req.GetClient().GetGeo().GetCountry(),
		Factor: strings.TrimPrefix(req.GetFactor().String(), "FACTOR_"), RawUserID: rec.GetRawUserId(),
		Score: resp.GetRisk().GetScore(), Cooldown: resp.GetCooldown().AsDuration(), Reasons: resp.GetReasons(),
		Rules: resp.GetMatchedRules(), BoundBy: resp.GetCooldownContext().GetBoundBy()}
	for _, s := range resp.GetRisk().GetSignals() {
		v.Signals = append(v.Signals, signalView{Code: s.GetCode(), Weight: s.GetWeight(), Summary: s.GetSummary(), Evidence: evidence(s)})
	}
	return v
}

// evidence is a signal's evidence as compact JSON: the counts, places and
// devices behind it, as `pushback explain --json` shows them.
func evidence(s *scoringv1.Signal) string {
	e := proto.Clone(s).(*scoringv1.Signal)
	e.Code, e.Weight, e.Summary, e.Confidence = "", 0, "", 0
	b, err := protojson.MarshalOptions{}.Marshal(e)
	if err != nil || string(b) == "{}" {
		return ""
	}
	return string(b)
}

func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format("2006-01-02 15:04:05 UTC")
}

func outcomeName(o decisionv1.Outcome) string {
	return strings.TrimPrefix(o.String(), "OUTCOME_")
}
