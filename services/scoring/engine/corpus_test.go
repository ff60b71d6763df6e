package engine

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
)

// pantherFile is the shape of testdata/panther/*.tests.json.
type pantherFile struct {
	Threshold *int          `json:"Threshold"`
	Tests     []pantherCase `json:"tests"`
}

// pantherCase is one labelled test of a Panther rule.
type pantherCase struct {
	Name          string          `json:"name"`
	ExpectedAlert bool            `json:"expected_alert"`
	Mocks         []pantherMock   `json:"mocks"`
	Log           json.RawMessage `json:"log"`
}

// travelWant is Pushback's verdict on one impossible-travel case.
type travelWant struct {
	alert    bool
	severity string
	why      string // when Pushback's verdict differs from Panther's label
}

type pantherMock struct {
	ObjectName  string `json:"objectName"`
	ReturnValue string `json:"returnValue"`
}

// ipinfo is Panther's ipinfo enrichment of one IP.
type ipinfo struct {
	City    string `json:"city"`
	Country string `json:"country"`
	Lat     string `json:"lat"`
	Lng     string `json:"lng"`
	Match   string `json:"p_match"`
	Time    string `json:"p_event_time"`
	SrcIP   string `json:"source_ip"`
	// ipinfo_privacy
	VPN     bool   `json:"vpn"`
	Relay   bool   `json:"relay"`
	Service string `json:"service"`
	// ipinfo_asn
	ASN  string `json:"asn"`
	Name string `json:"name"`
}

func loadPanther(t *testing.T, name string) pantherFile {
	t.Helper()
	b, err := os.ReadFile("testdata/panther/" + name + ".tests.json")
	if err != nil {
		t.Fatal(err)
	}
	var f pantherFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func pantherTime(t *testing.T, s string) time.Time {
	t.Helper()
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05.999999", "2006-01-02T15:04:05.999999Z07:00"} {
		if ts, err := time.Parse(layout, s); err == nil {
			return ts
		}
	}
	t.Fatalf("time %q", s)
	return time.Time{}
}

func (i ipinfo) client(t *testing.T) ClientInfo {
	lat, err1 := strconv.ParseFloat(i.Lat, 64)
	lon, err2 := strconv.ParseFloat(i.Lng, 64)
	ip := i.Match
	if ip == "" {
		ip = i.SrcIP
	}
	return ClientInfo{IP: ip, Lat: lat, Lon: lon, HasGeo: err1 == nil && err2 == nil, Country: i.Country, City: i.City}
}

// pantherLogin decodes the current event of an impossible-travel case: is it
// a successful login, when, and from where (with the privacy and ASN
// enrichment mapped the way Panther's rule reads it).
func pantherLogin(t *testing.T, raw json.RawMessage) (Observation, bool) {
	var log struct {
		LogType    string                        `json:"p_log_type"`
		EventTime  string                        `json:"p_event_time"`
		EventType  string                        `json:"eventType"`
		EventName  string                        `json:"eventName"`
		AsanaType  string                        `json:"event_type"`
		Outcome    struct{ Result string }       `json:"outcome"`
		Response   struct{ ConsoleLogin string } `json:"responseElements"`
		Notion     struct{ Type string }         `json:"event"`
		Enrichment map[string]map[string]ipinfo  `json:"p_enrichment"`
	}
	if err := json.Unmarshal(raw, &log); err != nil {
		t.Fatal(err)
	}
	var ok bool
	switch log.LogType {
	case "AWS.CloudTrail":
		ok = log.EventName == "ConsoleLogin" && log.Response.ConsoleLogin == "Success"
	case "Okta.SystemLog":
		ok = log.EventType == "user.session.start" && log.Outcome.Result == "SUCCESS"
	case "Asana.Audit":
		ok = log.AsanaType == "user_login_succeeded"
	case "Notion.AuditLogs":
		ok = log.Notion.Type == "user.login"
	}
	if !ok {
		return Observation{}, false
	}
	first := func(m map[string]ipinfo) ipinfo {
		for _, v := range m {
			return v
		}
		return ipinfo{}
	}
	ci := first(log.Enrichment["ipinfo_location"]).client(t)
	if p := first(log.Enrichment["ipinfo_privacy"]); p.Relay && p.Service == "Apple Private Relay" {
		ci.Anonymizer = AnonRelay
	} else if p.VPN && p.Service != "" {
		// Panther: a VPN flag without a service name is an office (WeWork), not a VPN.
		ci.Anonymizer = AnonVPN
	}
	if a := first(log.Enrichment["ipinfo_asn"]); a.ASN != "" {
		n, _ := strconv.ParseUint(strings.TrimPrefix(a.ASN, "AS"), 10, 32)
		ci.ASN, ci.ASOrg = uint32(n), a.Name
	}
	return Observation{ID: "current", Kind: ObsLoginSucceeded, At: pantherTime(t, log.EventTime), Client: ci}, true
}

// TestPantherImpossibleTravel replays every pair of Panther's impossible
// travel rule: the previous login, then the current one. Panther's severity
// becomes a confidence level: HIGH >= 0.75, LOW 0.2-0.75 (GeoIP jitter),
// INFO < 0.2 (VPN, private relay, satellite).
func TestPantherImpossibleTravel(t *testing.T) {
	f := loadPanther(t, "impossible_travel_login")
	wants := map[string]travelWant{
		"CloudTrail not ConsoleLogin":                                          {},
		"CloudTrail ConsoleLogin no history":                                   {},
		"CloudTrail ConsoleLogin with history":                                 {alert: true, severity: "HIGH"},
		"Okta Not sign-in":                                                     {},
		"Okta sign-in with history and impossible travel":                      {alert: true, severity: "HIGH"},
		"Okta sign-in with history and impossible travel, Apple Private Relay": {alert: true, severity: "INFO"},
		"Okta sign-in with history and impossible travel, VPN with service":    {alert: true, severity: "INFO"},
		"Okta sign-in with history and impossible travel, VPN with no service": {alert: true, severity: "HIGH"},
		"Short Distances and Short Timedeltas":                                 {alert: true, severity: "LOW"},
		"Asana ImpossibleTravel":                                               {alert: true, severity: "HIGH"},
		"Notion Impossible Travel": {why: "the previous login is at the (0,0) placeholder and the current latitude " +
			"is 100: both unknown, so there is no travel to measure (Panther alerts on them)"},
		"First hit from VPN should not fail":                                    {},
		"Okta sign-in with history and impossible travel, no VPN, Intelsat ASN": {alert: true, severity: "INFO"},
	}
	c := DefaultConfig()
	// Okta logs user.session.start when the password is verified: the pairs
	// hold whether the current login arrives as a completed login or as
	// that (the history is of completed logins either way).
	for _, kind := range []ObservationKind{ObsLoginSucceeded, ObsPrimaryAuth} {
		for _, tc := range f.Tests {
			t.Run(fmt.Sprint(tc.Name, "/kind-", kind), func(t *testing.T) {
				w, ok := wants[tc.Name]
				if !ok {
					t.Fatalf("fixture %q has no expectation", tc.Name)
				}
				pantherTravelCase(t, c, kind, tc, w)
			})
		}
	}
}

// pantherTravelCase replays one labelled pair with logins of kind.
func pantherTravelCase(t *testing.T, c Config, kind ObservationKind, tc pantherCase, w travelWant) {
	if w.why == "" && w.alert != tc.ExpectedAlert {
		t.Fatalf("expectation disagrees with the label %v", tc.ExpectedAlert)
	}
	s := &UserState{}
	for _, m := range tc.Mocks {
		if m.ObjectName != "get_string_set" || m.ReturnValue == "" {
			continue
		}
		var prev []ipinfo
		if err := json.Unmarshal([]byte(m.ReturnValue), &prev); err != nil {
			t.Fatal(err)
		}
		for i, p := range prev {
			c.Apply(s, Observation{ID: fmt.Sprint("prev", i), Kind: ObsLoginSucceeded, At: pantherTime(t, p.Time), Client: p.client(t)})
		}
	}
	o, isLogin := pantherLogin(t, tc.Log)
	o.Kind = kind
	var sig *scoringv1.Signal
	if isLogin {
		ra, _ := c.Record("user", s, o, nil)
		sig = signal(ra, SignalImpossibleTravel)
	}
	if (sig != nil) != w.alert {
		t.Fatalf("alert = %v, want %v (%s)", sig != nil, w.alert, w.why)
	}
	if sig == nil {
		return
	}
	conf := sig.GetConfidence()
	var got string
	switch {
	case conf >= 0.75:
		got = "HIGH"
	case conf >= 0.2:
		got = "LOW"
	default:
		got = "INFO"
	}
	if got != w.severity {
		t.Fatalf("severity %s (confidence %v), want %s: %s", got, conf, w.severity, sig.GetSummary())
	}
}

// TestPantherFraudAndFatigue decodes the few Duo and Auth0 shapes it needs
// (the intake adapters are the real decoders) and checks the labelled cases:
// a fraud report gives FRAUD_REPORTED, Auth0's push fatigue (Panther
// threshold: 5 pushes) gives PUSH_BURST, the negative cases give nothing.
func TestPantherFraudAndFatigue(t *testing.T) {
	c := DefaultConfig()
	decode := func(t *testing.T, raw json.RawMessage) (ObservationKind, bool) {
		var log struct {
			Result      string `json:"result"`
			Action      string `json:"action"`
			Description string `json:"description"`
			Type        string `json:"type"`
			Data        struct {
				Type string `json:"type"`
			} `json:"data"`
		}
		if err := json.Unmarshal(raw, &log); err != nil {
			t.Fatal(err)
		}
		switch {
		case log.Result == "fraud":
			return ObsFraudReported, true
		case log.Result == "success":
			return ObsPushApproved, true
		case log.Result == "denied":
			return ObsPushDenied, true
		case log.Action == "admin_2fa_error" && strings.Contains(log.Description, "reported as fraudulent"):
			return ObsFraudReported, true
		case log.Data.Type == "gd_send_pn" || log.Type == "gd_send_pn":
			return ObsPushSent, true
		}
		return 0, false
	}
	for _, file := range []struct {
		name string
		code string
	}{
		{"duo_user_action_fraudulent", SignalFraudReported},
		{"duo_admin_marked_push_fraudulent", SignalFraudReported},
		{"auth0_push_notification_fatigue", SignalPushBurst},
	} {
		f := loadPanther(t, file.name)
		repeat := 1
		if f.Threshold != nil {
			repeat = *f.Threshold
		}
		for _, tc := range f.Tests {
			t.Run(file.name+"/"+tc.Name, func(t *testing.T) {
				s := &UserState{}
				ra := c.Assess("user", s, t0)
				if kind, ok := decode(t, tc.Log); ok {
					for i := range repeat {
						ra, _ = c.Record("user", s, Observation{ID: fmt.Sprint(i), Kind: kind, At: t0.Add(time.Duration(i) * time.Minute)}, nil)
					}
				}
				if got := signal(ra, file.code) != nil; got != tc.ExpectedAlert {
					t.Fatalf("%s = %v, want %v (%v)", file.code, got, tc.ExpectedAlert, ra.GetSignals())
				}
				if !tc.ExpectedAlert && len(ra.GetSignals()) != 0 {
					t.Fatalf("negative case raised %v", ra.GetSignals())
				}
			})
		}
	}
}
