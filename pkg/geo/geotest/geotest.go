// Package geotest writes small MaxMind-format databases for tests.
package geotest

import (
	"bytes"
	"net"
	"os"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Network is one network of a test database and what it resolves to.
// Zero fields are left out of the record.
type Network struct {
	CIDR       string
	Lat, Lon   float64
	AccuracyKm uint16
	Country    string
	City       string
	ASN        uint32
	ASOrg      string
}

// Bytes builds a database holding nets (City and ASN fields in one record).
func Bytes(t testing.TB, nets ...Network) []byte {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "Pushback-Test", RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nets {
		_, ipnet, err := net.ParseCIDR(n.CIDR)
		if err != nil {
			t.Fatal(err)
		}
		rec := mmdbtype.Map{}
		if n.Lat != 0 || n.Lon != 0 {
			loc := mmdbtype.Map{"latitude": mmdbtype.Float64(n.Lat), "longitude": mmdbtype.Float64(n.Lon)}
			if n.AccuracyKm != 0 {
				loc["accuracy_radius"] = mmdbtype.Uint16(n.AccuracyKm)
			}
			rec["location"] = loc
		}
		if n.Country != "" {
			rec["country"] = mmdbtype.Map{"iso_code": mmdbtype.String(n.Country)}
		}
		if n.City != "" {
			rec["city"] = mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(n.City)}}
		}
		if n.ASN != 0 {
			rec["autonomous_system_number"] = mmdbtype.Uint32(n.ASN)
			rec["autonomous_system_organization"] = mmdbtype.String(n.ASOrg)
		}
		if err := tree.Insert(ipnet, rec); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Write builds a database holding nets into a file under t.TempDir and
// returns its path.
func Write(t testing.TB, nets ...Network) string {
	t.Helper()
	b := Bytes(t, nets...)
	f, err := os.CreateTemp(t.TempDir(), "*.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}
