package engine

import "strings"

// Anonymizer kinds.
const (
	AnonVPN       = "vpn"
	AnonTor       = "tor"
	AnonHosting   = "hosting"
	AnonRelay     = "relay"
	AnonSatellite = "satellite"
	// AnonProxy is an unspecified proxy an identity provider flagged (Okta's
	// securityContext.isProxy).
	AnonProxy = "proxy"
)

// Anonymizers recognises networks that hide where a user really is. Their
// locations say where the network egresses, not where the user sits, so
// they lower the confidence of travel signals instead of raising risk.
type Anonymizers struct {
	// ASNs maps an autonomous system number to its kind.
	ASNs map[uint32]string
	// OrgKeywords are matched, lower case, as substrings of the AS organisation.
	OrgKeywords []OrgKeyword
	// TravelConfidence multiplies the confidence of a travel signal when
	// either side is an anonymizer.
	TravelConfidence float64
}

// OrgKeyword maps a substring of an AS organisation name to a kind.
type OrgKeyword struct {
	Word string
	Kind string
}

// DefaultAnonymizers lists networks whose egress locations are not their
// users' locations. The ASN list is deliberately short and well known; the
// keywords catch the long tail of VPN and hosting providers by name. Both
// are configuration: operators add their own (for example a Tor exit
// operator they see) without a release.
func DefaultAnonymizers() Anonymizers {
	return Anonymizers{
		ASNs: map[uint32]string{
			// In-flight and remote satellite: every passenger egresses at a
			// ground station, often on another continent (Panther's rule
			// special-cases Intelsat for this reason).
			22351: AnonSatellite, // Intelsat
			14593: AnonSatellite, // SpaceX Starlink
			7155:  AnonSatellite, // Viasat
			// Apple iCloud Private Relay egress.
			36183: AnonRelay, // Akamai Private Relay
			// Cloud and hosting networks: a human rarely logs in from them,
			// VPN services and proxies usually do.
			16509:  AnonHosting, // Amazon
			14618:  AnonHosting, // Amazon
			8075:   AnonHosting, // Microsoft
			396982: AnonHosting, // Google Cloud
			14061:  AnonHosting, // DigitalOcean
			16276:  AnonHosting, // OVH
			24940:  AnonHosting, // Hetzner
			63949:  AnonHosting, // Linode (Akamai)
			20473:  AnonHosting, // Vultr (Choopa)
			9009:   AnonVPN,     // M247, home of many commercial VPN exits
			60068:  AnonVPN,     // Datacamp (CDN77), idem
			212238: AnonVPN,     // Datacamp, idem
		},
		OrgKeywords: []OrgKeyword{
			{"private relay", AnonRelay},
			{"icloud", AnonRelay},
			{"tor exit", AnonTor},
			{"torservers", AnonTor},
			{"vpn", AnonVPN},
			{"proxy", AnonVPN},
			{"mullvad", AnonVPN},
			{"private internet access", AnonVPN},
			{"surfshark", AnonVPN},
			{"proton ag", AnonVPN},
			{"intelsat", AnonSatellite},
			{"starlink", AnonSatellite},
			{"viasat", AnonSatellite},
			{"inmarsat", AnonSatellite},
			{"panasonic avionics", AnonSatellite},
			{"inflight", AnonSatellite},
			{"in-flight", AnonSatellite},
			{"hosting", AnonHosting},
			{"data center", AnonHosting},
			{"datacenter", AnonHosting},
		},
		TravelConfidence: 0.1,
	}
}

// Kind returns the anonymizer kind of a client, or "" when it is none. A
// specific kind the event already carries (an IdP's own privacy flag)
// wins over the lists; the lists win over the unspecific "proxy".
func (a Anonymizers) Kind(ci ClientInfo) string {
	// A specific kind the source knows wins; its unspecific "proxy" gives
	// way to what the lists know of the same network.
	if ci.Anonymizer != "" && ci.Anonymizer != AnonProxy {
		return ci.Anonymizer
	}
	if k := a.listed(ci); k != "" {
		return k
	}
	return ci.Anonymizer
}

// listed is the kind the configured lists give the client's network.
func (a Anonymizers) listed(ci ClientInfo) string {
	if k, ok := a.ASNs[ci.ASN]; ok && ci.ASN != 0 {
		return k
	}
	if ci.ASOrg == "" || len(a.OrgKeywords) == 0 {
		return ""
	}
	org := strings.ToLower(ci.ASOrg)
	for _, kw := range a.OrgKeywords {
		if kw.Word != "" && strings.Contains(org, kw.Word) {
			return kw.Kind
		}
	}
	return ""
}
