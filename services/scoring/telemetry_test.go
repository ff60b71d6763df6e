package scoring

import (
	"strings"
	"testing"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/telemetry"
	"github.com/pushbackhq/pushback/services/scoring/engine"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestEvidenceAttributesHashIdentities(t *testing.T) {
	const ip, prevIP, device = "203.0.113.9", "198.51.100.4", "device-7f3a"
	r := telemetry.NewRedactor([]byte("0123456789abcdef"), false)
	in := newInstruments(nil, r)
	tests := []struct {
		sig  *scoringv1.Signal
		want map[string]string
	}{
		{&scoringv1.Signal{Code: engine.SignalPushSpray, Weight: 30, Evidence: &scoringv1.Signal_Spray{Spray: &scoringv1.SprayEvidence{
			SourceIp: ip, DistinctUsers: 12, DormantUsers: 7, Threshold: 10, Window: durationpb.New(600e9)}}},
			map[string]string{"pushback.evidence.source_ip_hash": r.IP(ip), "pushback.evidence.distinct_users": "12", "pushback.evidence.dormant_users": "7", "pushback.evidence.window": "10m0s"}},
		{&scoringv1.Signal{Code: engine.SignalImpossibleTravel, Weight: 40, Evidence: &scoringv1.Signal_Travel{Travel: &scoringv1.TravelEvidence{
			Previous: &scoringv1.Location{Ip: prevIP, Geo: &eventv1.Geo{Country: "US", City: "Boston"}},
			Current:  &scoringv1.Location{Ip: ip, Geo: &eventv1.Geo{Country: "NL", City: "Amsterdam"}},
			SpeedKmh: 5000, DistanceKm: 5500, ThresholdKmh: 900}}},
			map[string]string{"pushback.evidence.current_ip_hash": r.IP(ip), "pushback.evidence.previous_ip_hash": r.IP(prevIP),
				"pushback.evidence.speed_kmh": "5000", "pushback.evidence.previous_country": "US", "pushback.evidence.current_country": "NL"}},
		{&scoringv1.Signal{Code: engine.SignalNewDevice, Weight: 10, Evidence: &scoringv1.Signal_Novelty{Novelty: &scoringv1.NoveltyEvidence{Value: device, Known: 2}}},
			map[string]string{"pushback.evidence.value": r.Device(device), "pushback.evidence.known": "2"}},
		{&scoringv1.Signal{Code: engine.SignalNewCountry, Weight: 10, Evidence: &scoringv1.Signal_Novelty{Novelty: &scoringv1.NoveltyEvidence{Value: "NL", Known: 1}}},
			map[string]string{"pushback.evidence.value": "NL"}},
		{&scoringv1.Signal{Code: engine.SignalAnonymizer, Evidence: &scoringv1.Signal_Anonymizer{Anonymizer: &scoringv1.AnonymizerEvidence{Kind: "vpn", Asn: 9009, AsOrg: strings.Repeat("é", 50)}}},
			map[string]string{"pushback.evidence.kind": "vpn", "pushback.evidence.asn": "9009", "pushback.evidence.as_org": strings.Repeat("é", 32)}},
	}
	for _, tc := range tests {
		got := map[string]string{}
		for _, kv := range in.evidence(tc.sig) {
			got[string(kv.Key)] = kv.Value.String()
			for _, secret := range []string{ip, prevIP, device, "Boston", "Amsterdam"} {
				if strings.Contains(kv.Value.String(), secret) {
					t.Errorf("%s: %s carries %q", tc.sig.GetCode(), kv.Key, secret)
				}
			}
		}
		if got["pushback.signal.code"] != tc.sig.GetCode() {
			t.Errorf("%s: code attribute %q", tc.sig.GetCode(), got["pushback.signal.code"])
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", tc.sig.GetCode(), k, got[k], v)
			}
		}
	}
}

func TestTruncateKeepsRunes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{{"abc", 5, "abc"}, {"abcdef", 3, "abc"}, {"éé", 3, "é"}, {"", 0, ""}} {
		if got := truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
