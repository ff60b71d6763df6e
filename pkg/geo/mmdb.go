package geo

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Record is what a GeoIP lookup knows about an IP. Zero fields are unknown.
type Record struct {
	Lat, Lon   float64
	AccuracyKm float64
	Country    string
	Region     string
	City       string
	ASN        uint32
	ASOrg      string
	// HasLocation is set when Lat/Lon are a known place (see Known).
	HasLocation bool
}

// mmdbRecord is the union of the GeoIP2/GeoLite2 City and ASN record shapes.
type mmdbRecord struct {
	City struct {
		Names map[string]string `maxminddb:"names"`
	} `maxminddb:"city"`
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Subdivisions []struct {
		ISOCode string            `maxminddb:"iso_code"`
		Names   map[string]string `maxminddb:"names"`
	} `maxminddb:"subdivisions"`
	Location struct {
		Latitude       *float64 `maxminddb:"latitude"`
		Longitude      *float64 `maxminddb:"longitude"`
		AccuracyRadius uint16   `maxminddb:"accuracy_radius"`
	} `maxminddb:"location"`
	ASN   uint32 `maxminddb:"autonomous_system_number"`
	ASOrg string `maxminddb:"autonomous_system_organization"`
}

// DB answers lookups from one or more MaxMind-format databases (for example
// a City database and an ASN database); later databases fill what earlier
// ones left empty. It is safe for concurrent use.
type DB struct {
	readers []*maxminddb.Reader
}

// Open opens the databases at paths, separated by commas.
func Open(paths string) (*DB, error) {
	db := &DB{}
	for p := range strings.SplitSeq(paths, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		r, err := maxminddb.Open(p)
		if err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("geoip database %q: %w", p, err)
		}
		db.readers = append(db.readers, r)
	}
	if len(db.readers) == 0 {
		return nil, errors.New("geoip database: no path given")
	}
	return db, nil
}

// OpenBytes opens one database held in memory.
func OpenBytes(b []byte) (*DB, error) {
	r, err := maxminddb.OpenBytes(b)
	if err != nil {
		return nil, fmt.Errorf("geoip database: %w", err)
	}
	return &DB{readers: []*maxminddb.Reader{r}}, nil
}

// Lookup returns what the databases know about ip. found is false when no
// database has a record for it; a corrupt record is an error.
func (db *DB) Lookup(ip netip.Addr) (rec Record, found bool, err error) {
	ip = ip.Unmap()
	for _, r := range db.readers {
		res := r.Lookup(ip)
		if err := res.Err(); err != nil {
			return Record{}, false, err
		}
		if !res.Found() {
			continue
		}
		var m mmdbRecord
		if err := res.Decode(&m); err != nil {
			return Record{}, false, err
		}
		found = true
		merge(&rec, &m)
	}
	return rec, found, nil
}

func merge(rec *Record, m *mmdbRecord) {
	if !rec.HasLocation && m.Location.Latitude != nil && m.Location.Longitude != nil && Known(*m.Location.Latitude, *m.Location.Longitude) {
		rec.Lat, rec.Lon, rec.HasLocation = *m.Location.Latitude, *m.Location.Longitude, true
		rec.AccuracyKm = float64(m.Location.AccuracyRadius)
	}
	if rec.Country == "" {
		rec.Country = m.Country.ISOCode
	}
	if rec.City == "" {
		rec.City = m.City.Names["en"]
	}
	if rec.Region == "" && len(m.Subdivisions) > 0 {
		rec.Region = m.Subdivisions[0].ISOCode
		if n := m.Subdivisions[0].Names["en"]; n != "" {
			rec.Region = n
		}
	}
	if rec.ASN == 0 {
		rec.ASN, rec.ASOrg = m.ASN, m.ASOrg
	}
}

// Close releases the databases.
func (db *DB) Close() error {
	var errs []error
	for _, r := range db.readers {
		errs = append(errs, r.Close())
	}
	db.readers = nil
	return errors.Join(errs...)
}
