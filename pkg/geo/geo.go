// Package geo holds the geography Pushback's services share: great-circle
// distance between two coordinates and GeoIP enrichment from a
// MaxMind-format (.mmdb) database.
package geo

import "math"

// EarthRadiusKm is the mean Earth radius (IUGG) used for distances.
const EarthRadiusKm = 6371.0088

// DistanceKm returns the great-circle (haversine) distance between two
// points given in degrees.
func DistanceKm(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	φ1, φ2 := lat1*rad, lat2*rad
	dφ, dλ := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dφ/2)*math.Sin(dφ/2) + math.Cos(φ1)*math.Cos(φ2)*math.Sin(dλ/2)*math.Sin(dλ/2)
	return 2 * EarthRadiusKm * math.Asin(math.Sqrt(min(1, a)))
}

// Known reports whether a coordinate is a real place: inside the valid
// ranges and not the (0,0) placeholder that GeoIP sources emit for
// "unknown". An unknown place is never evidence of anything.
func Known(lat, lon float64) bool {
	if math.IsNaN(lat) || math.IsNaN(lon) || lat < -90 || lat > 90 || lon < -180 || lon > 180 {
		return false
	}
	return lat != 0 || lon != 0
}

// SeparationKm is the distance between two places that their accuracy radii
// cannot explain: the great-circle distance minus both radii, never below 0.
func SeparationKm(lat1, lon1, acc1, lat2, lon2, acc2 float64) float64 {
	return max(0, DistanceKm(lat1, lon1, lat2, lon2)-max(0, acc1)-max(0, acc2))
}
