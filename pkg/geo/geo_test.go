package geo_test

import (
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/pushbackhq/pushback/pkg/geo"
	"github.com/pushbackhq/pushback/pkg/geo/geotest"
)

func TestDistanceKm(t *testing.T) {
	tests := []struct {
		name                   string
		lat1, lon1, lat2, lon2 float64
		want, tol              float64
	}{
		{"same point", 40.71427, -74.00597, 40.71427, -74.00597, 0, 1e-9},
		{"New York to Auckland", 40.71427, -74.00597, -36.84853, 174.76349, 14196, 15},
		{"New York to Los Angeles", 40.71427, -74.00597, 34.05223, -118.24368, 3936, 5},
		{"Los Angeles to Anaheim", 34.05223, -118.24368, 33.8085, -117.9228, 40, 1},
		{"antimeridian", 0, 179.5, 0, -179.5, 111.2, 0.5},
		{"pole to pole", 90, 0, -90, 0, math.Pi * geo.EarthRadiusKm, 1e-6},
		{"antipodes", 0, 0, 0, 180, math.Pi * geo.EarthRadiusKm, 1e-6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := geo.DistanceKm(tt.lat1, tt.lon1, tt.lat2, tt.lon2)
			if math.Abs(got-tt.want) > tt.tol {
				t.Fatalf("DistanceKm = %.2f, want %.2f ± %.2f", got, tt.want, tt.tol)
			}
			if back := geo.DistanceKm(tt.lat2, tt.lon2, tt.lat1, tt.lon1); math.Abs(back-got) > 1e-9 {
				t.Fatalf("not symmetric: %v vs %v", got, back)
			}
		})
	}
}

func TestSeparationKm(t *testing.T) {
	tests := []struct {
		name       string
		acc1, acc2 float64
		want       float64
	}{
		{"no radii", 0, 0, 40},
		{"radii explain part", 10, 5, 25},
		{"radii explain all", 30, 30, 0},
		{"negative radius ignored", -10, 0, 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := geo.SeparationKm(34.05223, -118.24368, tt.acc1, 33.8085, -117.9228, tt.acc2)
			if math.Abs(got-tt.want) > 1 {
				t.Fatalf("SeparationKm = %.2f, want %.0f", got, tt.want)
			}
		})
	}
}

func TestKnown(t *testing.T) {
	tests := []struct {
		lat, lon float64
		want     bool
	}{
		{0, 0, false},
		{100, 0, false},
		{0, 181, false},
		{math.NaN(), 1, false},
		{0, 1, true},
		{-36.8, 174.7, true},
		{90, -180, true},
	}
	for _, tt := range tests {
		if got := geo.Known(tt.lat, tt.lon); got != tt.want {
			t.Errorf("Known(%v, %v) = %v, want %v", tt.lat, tt.lon, got, tt.want)
		}
	}
}

func TestLookup(t *testing.T) {
	city := geotest.Write(t,
		geotest.Network{CIDR: "81.2.69.0/24", Lat: 51.5142, Lon: -0.0931, AccuracyKm: 10, Country: "GB", City: "London"},
		geotest.Network{CIDR: "2a02:c7f::/32", Lat: 52.52, Lon: 13.405, AccuracyKm: 50, Country: "DE", City: "Berlin"},
		geotest.Network{CIDR: "10.9.0.0/16", Country: "US"}, // placeholder: country only
	)
	asn := geotest.Write(t,
		geotest.Network{CIDR: "81.2.69.0/24", ASN: 20712, ASOrg: "Andrews & Arnold Ltd"},
		geotest.Network{CIDR: "164.86.38.0/23", ASN: 22351, ASOrg: "INTELSAT GLOBAL SERVICE CORPORATION"},
	)
	db, err := geo.Open(city + ", " + asn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tests := []struct {
		ip    string
		found bool
		want  geo.Record
	}{
		{"81.2.69.142", true, geo.Record{Lat: 51.5142, Lon: -0.0931, AccuracyKm: 10, Country: "GB", City: "London", ASN: 20712, ASOrg: "Andrews & Arnold Ltd", HasLocation: true}},
		{"::ffff:81.2.69.1", true, geo.Record{Lat: 51.5142, Lon: -0.0931, AccuracyKm: 10, Country: "GB", City: "London", ASN: 20712, ASOrg: "Andrews & Arnold Ltd", HasLocation: true}},
		{"2a02:c7f:1::1", true, geo.Record{Lat: 52.52, Lon: 13.405, AccuracyKm: 50, Country: "DE", City: "Berlin", HasLocation: true}},
		{"164.86.38.26", true, geo.Record{ASN: 22351, ASOrg: "INTELSAT GLOBAL SERVICE CORPORATION"}},
		{"10.9.1.1", true, geo.Record{Country: "US"}},
		{"192.0.2.1", false, geo.Record{}},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			rec, found, err := db.Lookup(netip.MustParseAddr(tt.ip))
			if err != nil {
				t.Fatal(err)
			}
			if found != tt.found || rec != tt.want {
				t.Fatalf("Lookup = %+v, %v; want %+v, %v", rec, found, tt.want, tt.found)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.mmdb")
	if err := os.WriteFile(bad, []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"", " , ", filepath.Join(t.TempDir(), "missing.mmdb"), bad} {
		if _, err := geo.Open(p); err == nil {
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

// FuzzOpenBytes feeds arbitrary bytes as a database: opening and looking up
// must fail cleanly, never panic.
func FuzzOpenBytes(f *testing.F) {
	f.Add(geotest.Bytes(f, geotest.Network{CIDR: "81.2.69.0/24", Lat: 51.5, Lon: -0.09, Country: "GB", ASN: 1, ASOrg: "x"}))
	f.Add([]byte("\xab\xcd\xefMaxMind.com"))
	f.Fuzz(func(t *testing.T, b []byte) {
		db, err := geo.OpenBytes(b)
		if err != nil {
			return
		}
		defer db.Close()
		for _, ip := range []string{"81.2.69.1", "::1", "0.0.0.0"} {
			_, _, _ = db.Lookup(netip.MustParseAddr(ip))
		}
	})
}
