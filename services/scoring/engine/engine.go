// Package engine is scoring's pure core: per-user state and its codec,
// the observations folded into it, the per-source spray counts, and the
// assessment of a user's risk with every signal's evidence. Time is passed
// in; it reads no clock and holds no store. The scoring service persists
// around it, and replay runs it over recorded events.
package engine

import (
	"hash/fnv"
	"math"
	"slices"
	"sort"
	"time"

	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/geo"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Public signal codes (part of the contract).
const (
	SignalPushBurst          = "PUSH_BURST"
	SignalDenialStreak       = "DENIAL_STREAK"
	SignalFraudReported      = "FRAUD_REPORTED"
	SignalApprovalAfterBurst = "APPROVAL_AFTER_BURST"
	SignalImpossibleTravel   = "IMPOSSIBLE_TRAVEL"
	SignalResponseMismatch   = "RESPONSE_LOCATION_MISMATCH"
	SignalNewDevice          = "NEW_DEVICE"
	SignalNewCountry         = "NEW_COUNTRY"
	SignalNewASN             = "NEW_ASN"
	SignalPushSpray          = "PUSH_SPRAY"
	SignalAnonymizer         = "ANONYMIZER"
)

// Config holds the scorer's thresholds. DefaultConfig documents the choices;
// docs/scoring.md explains them. A zero threshold disables its signal.
type Config struct {
	// Windows are the sliding windows pushes are counted in, shortest first.
	Windows []time.Duration
	// BurstThresholds maps a window to the push count that fires PUSH_BURST.
	BurstThresholds map[time.Duration]int
	// StreakThreshold is the number of consecutive denied or unanswered
	// pushes that fires DENIAL_STREAK.
	StreakThreshold int
	// StreakExpiry is how long after its last push a streak still counts.
	StreakExpiry time.Duration
	// FraudDecay is how long a fraud report weighs; its weight falls
	// linearly to zero over this time.
	FraudDecay time.Duration
	// MaxPushes caps the push activities kept per user (counts saturate there).
	MaxPushes int
	// MaxSeen caps the attempt and event ids remembered for de-duplication.
	MaxSeen int
	// HistoryLimit caps the devices, countries and ASNs remembered per user.
	HistoryLimit int
	// IdleTTL is how long the state of a user with no activity is kept.
	IdleTTL time.Duration
	// FindingTTL is how long IMPOSSIBLE_TRAVEL and RESPONSE_LOCATION_MISMATCH
	// stay in the user's risk after the event that raised them.
	FindingTTL time.Duration

	AfterBurst  AfterBurstConfig
	Context     ContextConfig
	Travel      TravelConfig
	Mismatch    MismatchConfig
	Novelty     NoveltyConfig
	Spray       SprayConfig
	Anonymizers Anonymizers
}

// AfterBurstConfig tunes APPROVAL_AFTER_BURST.
type AfterBurstConfig struct {
	// Weight is the signal's weight when the approval is fresh.
	Weight int32
	// Floor is the weight it decays to by the end of Hold.
	Floor int32
	// Hold is how long the signal stays in the user's risk.
	Hold time.Duration
}

// ContextConfig sets the confidence of PUSH_BURST, DENIAL_STREAK and
// APPROVAL_AFTER_BURST by whose pushes they are made of (see BurstClass).
// A zero confidence is 1: the signal does not tell the classes apart.
type ContextConfig struct {
	// OwnConfidence: every push came from the user's familiar context and,
	// for an approval, a known device of the user approved it where the
	// login was. The user's own retries.
	OwnConfidence float64
	// MixedConfidence: between the two (pushes only partly familiar, no
	// word on the approving device, or someone else's pushes around an
	// approval the user gave to their own sign-in).
	MixedConfidence float64
}

// TravelConfig tunes IMPOSSIBLE_TRAVEL.
type TravelConfig struct {
	// MaxSpeedKmh is the fastest plausible travel speed.
	MaxSpeedKmh float64
	// MinDistanceKm: a faster jump shorter than this (after the accuracy
	// radii) is regional (mobile-carrier gateways) and gets RegionalConfidence.
	MinDistanceKm float64
	// JitterKm and JitterWindow: a jump shorter than JitterKm within
	// JitterWindow is GeoIP jitter and gets JitterConfidence.
	JitterKm     float64
	JitterWindow time.Duration
	// Weight is the signal's weight at confidence 1.
	Weight             int32
	RegionalConfidence float64
	JitterConfidence   float64
}

// MismatchConfig tunes RESPONSE_LOCATION_MISMATCH.
type MismatchConfig struct {
	// MinKm is the separation (after the accuracy radii) between the login
	// and the approving device that fires the signal.
	MinKm  float64
	Weight int32
}

// NoveltyConfig weighs NEW_DEVICE, NEW_COUNTRY and NEW_ASN.
type NoveltyConfig struct {
	DeviceWeight, CountryWeight, ASNWeight int32
	// FewKnown and FewKnownConfidence: a value new to a history of fewer
	// than FewKnown values has FewKnownConfidence (a second phone or
	// network is what every user shows in their first days); 1 otherwise.
	FewKnown           int
	FewKnownConfidence float64
}

// SprayConfig tunes PUSH_SPRAY.
type SprayConfig struct {
	Window time.Duration
	// IPThreshold and ASNThreshold are the distinct users one source IP or
	// one ASN must push to within Window.
	IPThreshold, ASNThreshold int
	// MaxUsers caps the users remembered per source.
	MaxUsers int
	Weight   int32
	// DormantConfidence is the confidence of a count that reaches its
	// threshold only with users who have no history (a class of new hires
	// looks the same until their approvals come); 1 when users with
	// history alone reach it.
	DormantConfidence float64
}

// DefaultConfig returns thresholds calibrated on what peers publish:
// PingID escalates at 5/10/15 denied or ignored pushes in 5 minutes, Elastic
// alerts on 5 denials in 10 minutes, Splunk on 10 failures in 5-10 minutes.
// Pushback fires earlier because it acts inline: 3 pushes in a minute or in
// 5 minutes, 5 in 10 minutes, 10 in an hour. Travel: Okta flags 805 km/h,
// Elastic >= 800 km/h over >= 500 km, Panther > 900 km/h with < 50 km in
// < 10 minutes as jitter; Pushback takes Panther's 900 km/h (airliner
// cruise, so a real flight, which also spends time at airports, never
// reaches it gate to gate), Elastic's 500 km as the floor of full
// confidence and Panther's jitter box. Bursts are weighed by whose pushes
// they hold: the user's own retries at confidence 0.3 (an approval that
// ends them weighs 27, under the default policy's elevated-score of 60
// even with the burst it ended), mixed ones at 0.6, an attacker's at 1
// (docs/scoring.md, "Whose pushes").
func DefaultConfig() Config {
	return Config{
		Windows: []time.Duration{time.Minute, 5 * time.Minute, 10 * time.Minute, time.Hour},
		BurstThresholds: map[time.Duration]int{
			time.Minute:      3,
			5 * time.Minute:  3,
			10 * time.Minute: 5,
			time.Hour:        10,
		},
		StreakThreshold: 3,
		StreakExpiry:    time.Hour,
		FraudDecay:      24 * time.Hour,
		MaxPushes:       128,
		MaxSeen:         32,
		HistoryLimit:    20,
		IdleTTL:         30 * 24 * time.Hour,
		FindingTTL:      time.Hour,
		AfterBurst:      AfterBurstConfig{Weight: 90, Floor: 30, Hold: 24 * time.Hour},
		Context:         ContextConfig{OwnConfidence: 0.3, MixedConfidence: 0.6},
		Travel: TravelConfig{
			MaxSpeedKmh: 900, MinDistanceKm: 500, JitterKm: 50, JitterWindow: 10 * time.Minute,
			Weight: 50, RegionalConfidence: 0.5, JitterConfidence: 0.25,
		},
		Mismatch:    MismatchConfig{MinKm: 500, Weight: 50},
		Novelty:     NoveltyConfig{DeviceWeight: 10, CountryWeight: 15, ASNWeight: 5, FewKnown: 3, FewKnownConfidence: 0.6},
		Spray:       SprayConfig{Window: 10 * time.Minute, IPThreshold: 5, ASNThreshold: 20, MaxUsers: 64, Weight: 40, DormantConfidence: 0.6},
		Anonymizers: DefaultAnonymizers(),
	}
}

// Observation is one thing that happened to a user, in domain terms.
type Observation struct {
	// ID de-duplicates the observation (attempt id or event id); may be empty.
	ID   string
	Kind ObservationKind
	At   time.Time
	// Where the login came from (may be zero).
	Client ClientInfo
	// Responder is where the device that answered a push was (approvals).
	Responder ClientInfo
	// PhishingResistant is set when the factor was WebAuthn or a smart card.
	PhishingResistant bool
}

// ObservationKind is what an observation is.
type ObservationKind uint8

// Observation kinds.
const (
	ObsAttempt ObservationKind = iota + 1
	ObsPushSent
	ObsPushApproved
	ObsPushDenied
	ObsPushTimedOut
	ObsPushSuppressed
	ObsFraudReported
	ObsLoginSucceeded
	ObsLoginFailed
	ObsNumberChallengeFailed
	ObsFactorEnrolled
	// ObsPrimaryAuth is a verified password with the second factor still to
	// come: it is checked for travel and novelty, but vouches for nothing.
	ObsPrimaryAuth
)

// isPush reports whether the observation announces a push (spray counts these).
func (k ObservationKind) isPush() bool { return k == ObsAttempt || k == ObsPushSent }

// SprayRole is the part an observation plays in the spray count of its
// client's IP and ASN (see SourceState).
type SprayRole uint8

// Spray roles.
const (
	// SprayIgnored: the observation leaves the source's count alone.
	SprayIgnored SprayRole = iota
	// SprayCounted: a push to a user from a network the user is not known
	// to use; the user counts toward the source.
	SprayCounted
	// SprayDormant: a push to a user with no trusted history at all. The
	// user counts, and the evidence says so: accounts nobody uses are what
	// a sprayer looks for, since no owner is there to deny.
	SprayDormant
	// SprayVouches: a success only the user could have produced; the user
	// stops counting toward the source, and offsets one dormant user.
	SprayVouches
)

// SprayRole says how o, about to be applied to s, changes the spray count
// of its client's source. It reads s as it is before o; a duplicate (which
// Record ignores) must not be noted either.
//
// What vouches is chosen so that someone who holds only passwords cannot
// produce it, whatever accounts they spray:
//   - a push approved on the user's enrolled device, unless the approval
//     ends a burst or a denial streak that is not the user's own retries
//     (the fatigue success), was given far from the login, or comes while
//     a fatigue success is fresh;
//   - a phishing-resistant login (WebAuthn, smart card), which no password
//     and no relayed code can produce.
//
// Any other login does not vouch: the observation cannot tell a password
// alone from a one-time code, an attacker with the password can log in to
// an application that asks for nothing more from the very source they
// spray from, and a code relayed through a phishing proxy would vouch for
// the proxy.
func (c Config) SprayRole(s *UserState, o Observation) SprayRole {
	at := o.At.UnixMilli()
	switch {
	case o.Kind.isPush() && c.Dormant(s):
		return SprayDormant
	case o.Kind.isPush() && !c.Familiar(s, o.Client):
		return SprayCounted
	case o.Kind == ObsPushApproved && !c.fatigued(s, o) && c.mismatch(o, at) == nil && !c.compromised(s, at):
		return SprayVouches
	case o.Kind == ObsLoginSucceeded && o.PhishingResistant:
		return SprayVouches
	}
	return SprayIgnored
}

// hasClient reports whether the observation's client is where the user (or
// an attacker) was, so travel and novelty apply to it.
func (k ObservationKind) hasClient() bool {
	switch k {
	case ObsAttempt, ObsPushSent, ObsPushApproved, ObsLoginSucceeded, ObsLoginFailed, ObsPrimaryAuth:
		return true
	}
	return false
}

// ClientInfo is the client of an observation.
type ClientInfo struct {
	IP         string
	DeviceID   string
	ASN        uint32
	ASOrg      string
	Lat, Lon   float64
	AccuracyKm float64
	HasGeo     bool
	Country    string
	City       string
	// Anonymizer is a kind the source already knows (an IdP's privacy
	// flag); the configured lists are consulted too.
	Anonymizer string
}

// located reports whether the client has a real place (missing geo, (0,0)
// and out-of-range coordinates are unknown).
func (ci ClientInfo) located() bool { return ci.HasGeo && geo.Known(ci.Lat, ci.Lon) }

// location is where the client was, at the precision the state keeps
// (1e-5 degrees, 0.1 km), so a state reloaded after a restart assesses
// exactly as the one in memory did.
func (ci ClientInfo) location(at int64) Location {
	return Location{At: at, IP: ci.IP, Lat: q(ci.Lat, 1e5), Lon: q(ci.Lon, 1e5), AccuracyKm: q(max(ci.AccuracyKm, 0), 10), Country: ci.Country, City: ci.City}
}

// q rounds v to 1/scale.
func q(v, scale float64) float64 { return math.Round(v*scale) / scale }

func hashID(id string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return h.Sum64()
}

// eval is what one observation reveals before it changes the state.
type eval struct {
	travel, mismatch, afterBurst *Finding
	newDevice, newCountry        string
	newASN                       uint32
	known                        [3]int // history sizes: devices, countries, ASNs
	anon                         string
	anonASN                      uint32
	anonOrg                      string
	trusted                      bool // the observation may become a trusted location
	// familiar compares the client with the history (attempts only).
	familiar *scoringv1.Familiarity
	// ctx compares the client with the user's familiar context (see
	// PushContext); approver the device that approved (approvals only).
	ctx      PushContext
	approver Approver
}

// evaluate looks at o against s without changing s.
func (c Config) evaluate(s *UserState, o Observation) eval {
	var ev eval
	at := o.At.UnixMilli()
	if o.Kind.hasClient() {
		ev.anon = c.Anonymizers.Kind(o.Client)
		ev.ctx = c.pushContext(s, o.Client, ev.anon)
		if ev.anon != "" {
			ev.anonASN, ev.anonOrg = o.Client.ASN, o.Client.ASOrg
		}
		ev.travel = c.travel(s.LastTrusted, o.Client, at, ev.anon)
		ev.known = [3]int{len(s.Devices), len(s.Countries), len(s.ASNs)}
		ev.familiar = familiarity(s, o.Client)
		if id := o.Client.DeviceID; id != "" && len(s.Devices) > 0 && !slices.Contains(s.Devices, hashID(id)) {
			ev.newDevice = id
		}
		if ev.anon == "" {
			if cc := o.Client.Country; cc != "" && len(s.Countries) > 0 && !slices.Contains(s.Countries, cc) {
				ev.newCountry = cc
			}
			if a := o.Client.ASN; a != 0 && len(s.ASNs) > 0 && !slices.Contains(s.ASNs, a) {
				ev.newASN = a
			}
		}
	}
	if !o.Kind.hasClient() && o.Kind != ObsPushApproved {
		// Answers and enrolments: the client they carry (the login's) is
		// compared all the same, so a burst knows whose pushes it holds.
		ev.ctx = c.pushContext(s, o.Client, c.Anonymizers.Kind(o.Client))
	}
	if o.Kind == ObsPushApproved {
		ev.mismatch = c.mismatch(o, at)
		ev.approver = c.approver(s, o, ev.mismatch)
		ev.afterBurst = c.burstBefore(s, Push{At: at, Kind: KindApproved, Context: ev.ctx, Approver: ev.approver})
	}
	ev.trusted = (o.Kind == ObsLoginSucceeded || o.Kind == ObsPushApproved) &&
		!ev.afterBurst.fatigue() && ev.mismatch == nil && !c.compromised(s, at)
	return ev
}

// fatigue reports whether f (an APPROVAL_AFTER_BURST finding, may be nil)
// is a fatigue success: any burst but the user's own retries.
func (f *Finding) fatigue() bool { return f != nil && f.Class != BurstOwn }

// fatigued reports whether the approval o, about to be applied to s, ends
// a burst that is not the user's own retries.
func (c Config) fatigued(s *UserState, o Observation) bool {
	at := o.At.UnixMilli()
	mm := c.mismatch(o, at)
	p := Push{At: at, Kind: KindApproved, Context: c.pushContext(s, o.Client, c.Anonymizers.Kind(o.Client)), Approver: c.approver(s, o, mm)}
	return c.burstBefore(s, p).fatigue()
}

// compromised reports whether a fatigue success is fresh: until FindingTTL
// after it, nothing the user does becomes a trusted location or history.
// The user's own retries are no fatigue success.
func (c Config) compromised(s *UserState, at int64) bool {
	f := s.finding(FindingAfterBurst)
	return f.fatigue() && at >= f.At && at-f.At < c.FindingTTL.Milliseconds()
}

// pushContext compares the client of a push with what s remembers: see
// PushContext. anon is the client's anonymizer kind, behind which a
// country says nothing.
func (c Config) pushContext(s *UserState, ci ClientInfo, anon string) PushContext {
	network := ci.IP != "" || ci.ASN != 0
	if !network && ci.DeviceID == "" {
		return ContextUnknown
	}
	if anon == "" && ci.Country != "" && len(s.Countries) > 0 && !slices.Contains(s.Countries, ci.Country) {
		return ContextUnfamiliar
	}
	knownDevice := ci.DeviceID != "" && slices.Contains(s.Devices, hashID(ci.DeviceID))
	knownIP := ci.IP != "" && s.LastTrusted.At != 0 && ci.IP == s.LastTrusted.IP
	knownASN := ci.ASN != 0 && slices.Contains(s.ASNs, ci.ASN)
	switch {
	case knownDevice && (knownIP || knownASN):
		return ContextFamiliar
	case ci.DeviceID == "" && knownIP, knownDevice && !network:
		return ContextPartial
	}
	return ContextUnfamiliar
}

// approver compares the device that approved o with the user's history and
// with the login: see Approver. mm is o's RESPONSE_LOCATION_MISMATCH.
func (c Config) approver(s *UserState, o Observation, mm *Finding) Approver {
	r, l := o.Responder, o.Client
	if r.DeviceID == "" && r.IP == "" && r.ASN == 0 && r.Country == "" && !r.located() {
		return ApproverUnknown
	}
	anon := c.Anonymizers.Kind(r) != ""
	switch {
	case mm != nil && mm.Discount != DiscountAnonymizer:
		return ApproverDisagrees
	case r.DeviceID != "" && !slices.Contains(s.Devices, hashID(r.DeviceID)):
		return ApproverDisagrees
	case !anon && r.Country != "" && r.Country != l.Country && !slices.Contains(s.Countries, r.Country):
		return ApproverDisagrees
	case r.DeviceID == "":
		return ApproverUnknown
	}
	// A known device: it agrees when it was where the login was.
	placed := mm == nil && r.located() && l.located()
	sameCountry := !anon && r.Country != "" && r.Country == l.Country
	sameNetwork := r.IP != "" && r.IP == l.IP || r.ASN != 0 && r.ASN == l.ASN
	if placed || sameCountry || sameNetwork {
		return ApproverAgrees
	}
	return ApproverUnknown
}

// Apply folds o into s. It reports false when o is a duplicate (its ID was
// seen) and changes nothing then. Time is never read from the clock.
func (c Config) Apply(s *UserState, o Observation) bool {
	if c.duplicate(s, o) {
		return false
	}
	c.apply(s, o, c.evaluate(s, o))
	return true
}

func (c Config) duplicate(s *UserState, o Observation) bool {
	return o.ID != "" && slices.Contains(s.Seen, hashID(o.ID))
}

func (c Config) apply(s *UserState, o Observation, ev eval) {
	if o.ID != "" {
		s.Seen = append(s.Seen, hashID(o.ID))
		if len(s.Seen) > c.MaxSeen {
			s.Seen = slices.Delete(s.Seen, 0, len(s.Seen)-c.MaxSeen)
		}
	}
	at := o.At.UnixMilli()
	if at > s.UpdatedAt {
		s.UpdatedAt = at
	}
	switch o.Kind {
	case ObsAttempt, ObsPushSent, ObsPushSuppressed:
		kind := KindAttempt
		switch o.Kind {
		case ObsPushSent:
			kind = KindSent
		case ObsPushSuppressed:
			kind = KindSuppressed
		}
		c.addPush(s, Push{At: at, Kind: kind, Context: ev.ctx})
		if at < s.LastApprovedAt {
			// Late evidence: a push from before the last approval.
			c.reexamine(s)
		}
	case ObsPushDenied, ObsPushTimedOut, ObsNumberChallengeFailed:
		kind := KindDenied
		if o.Kind == ObsPushTimedOut {
			kind = KindTimedOut
		}
		c.addPush(s, Push{At: at, Kind: kind, Context: ev.ctx})
		// A denial older than the last approval belongs to an earlier streak.
		if at > s.LastApprovedAt {
			if c.StreakExpiry > 0 && s.Streak > 0 && at-s.StreakLast >= c.StreakExpiry.Milliseconds() {
				// The streak had ended: an unanswered push on Monday and
				// another on Friday are not a streak.
				s.Streak, s.StreakDenied, s.StreakTimedOut = 0, 0, 0
			}
			if s.Streak == 0 || at < s.StreakSince {
				s.StreakSince = at
			}
			s.StreakLast = max(s.StreakLast, at)
			s.Streak++
			if kind == KindTimedOut {
				s.StreakTimedOut++
			} else {
				s.StreakDenied++
			}
		} else {
			// Late evidence: the last approval may have ended a burst after all.
			c.reexamine(s)
		}
	case ObsPushApproved:
		c.addPush(s, Push{At: at, Kind: KindApproved, Context: ev.ctx, Approver: ev.approver})
		if at >= s.LastApprovedAt {
			s.LastApprovedAt = at
		}
		// An approval older than the streak does not end it.
		if s.Streak == 0 || at >= s.StreakSince {
			s.Streak, s.StreakDenied, s.StreakTimedOut, s.StreakSince, s.StreakLast = 0, 0, 0, 0, 0
		}
	case ObsLoginSucceeded:
		if o.PhishingResistant && at > s.StrongAuthAt {
			s.StrongAuthAt = at
		}
	case ObsFraudReported:
		if at > s.FraudAt {
			s.FraudAt = at
		}
	case ObsFactorEnrolled:
		// Enrolment changes no window. A device enrolled from the user's
		// familiar context (a known device on a known network) is the
		// user's: its approvals agree. One enrolled from anywhere else is
		// not, whoever it was.
		if id := o.Responder.DeviceID; id != "" && ev.ctx == ContextFamiliar && !c.compromised(s, at) {
			s.Devices = remember(s.Devices, hashID(id), c.HistoryLimit)
		}
	case ObsLoginFailed:
		// Failed logins are never trusted locations.
	case ObsPrimaryAuth:
		// Measured against the trusted history (travel, novelty), never
		// added to it: a password alone must not make an attacker's place
		// the reference or their network familiar (which would also keep
		// their pushes out of spray counting).
	}
	for _, f := range []*Finding{ev.travel, ev.mismatch, ev.afterBurst} {
		if f != nil {
			s.putFinding(*f)
		}
	}
	if ev.trusted {
		c.trust(s, at, o.Client, ev.anon)
		if id := o.Responder.DeviceID; id != "" && o.Kind == ObsPushApproved {
			// The device that approved is the user's too.
			s.Devices = remember(s.Devices, hashID(id), c.HistoryLimit)
		}
	}
}

// reexamine looks again at the last approval after a push from before it
// arrived: it may have ended a burst after all, or one with someone else's
// pushes in it. A finding is only ever raised, never lowered.
func (c Config) reexamine(s *UserState) {
	if s.LastApprovedAt == 0 {
		return
	}
	approval := Push{At: s.LastApprovedAt, Kind: KindApproved}
	i := sort.Search(len(s.Pushes), func(i int) bool { return s.Pushes[i].At >= s.LastApprovedAt })
	for ; i < len(s.Pushes) && s.Pushes[i].At == s.LastApprovedAt; i++ {
		if s.Pushes[i].Kind == KindApproved {
			approval = s.Pushes[i]
			break
		}
	}
	f := c.burstBefore(s, approval)
	if f == nil {
		return
	}
	if old := s.finding(FindingAfterBurst); old == nil || old.At != f.At || f.Confidence > old.Confidence {
		s.putFinding(*f)
	}
}

// trust remembers a successful login or approval. Behind an anonymizer the
// location and country say nothing about the user, so only the device and
// the network count.
func (c Config) trust(s *UserState, at int64, ci ClientInfo, anon string) {
	if ci.DeviceID != "" {
		s.Devices = remember(s.Devices, hashID(ci.DeviceID), c.HistoryLimit)
	}
	if ci.ASN != 0 {
		s.ASNs = remember(s.ASNs, ci.ASN, c.HistoryLimit)
	}
	if anon != "" {
		// The network is one the user uses (a corporate VPN is familiar,
		// not a spray), but its location and country are not the user's.
		return
	}
	if ci.located() && at >= s.LastTrusted.At {
		s.LastTrusted = ci.location(at)
	}
	if ci.Country != "" {
		s.Countries = remember(s.Countries, ci.Country, c.HistoryLimit)
	}
}

// familiarity compares ci with what s remembers. A device, an IP or a
// network counts as known only when it is in the history: a user without
// history knows nothing (unlike Familiar, which spares such users spray
// counting).
func familiarity(s *UserState, ci ClientInfo) *scoringv1.Familiarity {
	return &scoringv1.Familiarity{
		History:      len(s.Devices)+len(s.ASNs)+len(s.Countries) > 0 || s.LastTrusted.At != 0,
		KnownDevice:  ci.DeviceID != "" && slices.Contains(s.Devices, hashID(ci.DeviceID)),
		KnownIp:      ci.IP != "" && s.LastTrusted.At != 0 && ci.IP == s.LastTrusted.IP,
		KnownAsn:     ci.ASN != 0 && slices.Contains(s.ASNs, ci.ASN),
		KnownCountry: ci.Country != "" && slices.Contains(s.Countries, ci.Country),
	}
}

// Familiar reports whether the client is a network the user is known to
// use: the last trusted IP or one of the remembered ASNs. A user without
// history knows no network (see Dormant).
func (c Config) Familiar(s *UserState, ci ClientInfo) bool {
	if ci.IP != "" && ci.IP == s.LastTrusted.IP {
		return true
	}
	return ci.ASN != 0 && slices.Contains(s.ASNs, ci.ASN)
}

// Dormant reports whether the user has no trusted history: no network,
// no trusted location. That is a new account, one idle for longer than
// IdleTTL, or one that never completed a trusted sign-in.
func (c Config) Dormant(s *UserState) bool { return len(s.ASNs) == 0 && s.LastTrusted.At == 0 }

// addPush inserts p in time order (events may arrive out of order), drops
// activity older than the largest window and caps the list.
func (c Config) addPush(s *UserState, p Push) {
	i := sort.Search(len(s.Pushes), func(i int) bool { return s.Pushes[i].At > p.At })
	s.Pushes = slices.Insert(s.Pushes, i, p)
	c.prune(s, s.UpdatedAt)
}

func (c Config) prune(s *UserState, nowMs int64) {
	oldest := nowMs - c.Windows[len(c.Windows)-1].Milliseconds()
	drop := sort.Search(len(s.Pushes), func(i int) bool { return s.Pushes[i].At > oldest })
	if over := len(s.Pushes) - drop - c.MaxPushes; over > 0 {
		drop += over
	}
	if drop > 0 {
		s.Pushes = slices.Delete(s.Pushes, 0, drop)
	}
}

// Expired reports whether the state belongs to a user idle for longer than
// IdleTTL at now; such a state is dropped and the user starts afresh.
func (c Config) Expired(s *UserState, now time.Time) bool {
	return c.IdleTTL > 0 && s.UpdatedAt != 0 && now.UnixMilli()-s.UpdatedAt > c.IdleTTL.Milliseconds()
}

// Count returns the push activity of s in the window (now-w, now].
func (c Config) Count(s *UserState, now time.Time, w time.Duration) *scoringv1.WindowCount {
	wc := &scoringv1.WindowCount{Window: durationpb.New(w)}
	c.count(s, now.UnixMilli(), w.Milliseconds(), wc)
	return wc
}

func (c Config) count(s *UserState, nowMs, wMs int64, wc *scoringv1.WindowCount) {
	from := nowMs - wMs
	i := sort.Search(len(s.Pushes), func(i int) bool { return s.Pushes[i].At > nowMs })
	for i--; i >= 0; i-- {
		p := s.Pushes[i]
		if p.At <= from {
			break
		}
		switch p.Kind {
		case KindAttempt:
			wc.Attempts++
		case KindSent:
			wc.Sent++
		case KindApproved:
			wc.Approved++
		case KindDenied:
			wc.Denied++
		case KindTimedOut:
			wc.TimedOut++
		case KindSuppressed:
			wc.Suppressed++
		}
	}
	// Inline, every push passes through Decide (attempts); from logs, a push
	// shows as sent and again as answered. The largest of the three counts
	// each push once whichever of them the sources report.
	wc.Pushes = max(wc.Attempts, wc.Sent, wc.Approved+wc.Denied+wc.TimedOut)
}

// burstBefore looks for a burst or a denial streak just before the
// approval: the fatigue success. It reads only the push list, so a denial
// that arrives after the approval (out of order) is still seen, and the
// streak the state counts (which outlives the list's hour). The finding
// says whose pushes the burst was made of (see classify).
func (c Config) burstBefore(s *UserState, approval Push) *Finding {
	approvedAt := approval.At
	if approvedAt == 0 || c.AfterBurst.Weight <= 0 {
		return nil
	}
	before := approvedAt - 1
	// Pushes up to the user's previous approval were answered: a user who
	// approves three wanted pushes in a few minutes was not worn down. The
	// burst an approval ends starts after the previous approval.
	end := sort.Search(len(s.Pushes), func(i int) bool { return s.Pushes[i].At > before })
	prev := int64(0)
	for j := end - 1; j >= 0; j-- {
		if s.Pushes[j].Kind == KindApproved {
			prev = s.Pushes[j].At
			break
		}
	}
	var best *Finding
	bestOver := 0.0
	from := before // the burst's pushes are those after from
	for _, w := range c.Windows {
		th := c.BurstThresholds[w]
		if th <= 0 {
			continue
		}
		wMs := w.Milliseconds()
		if prev > 0 {
			wMs = min(wMs, before-prev)
		}
		var wc scoringv1.WindowCount
		c.count(s, before, wMs, &wc)
		// The approval's own push counts toward the burst.
		n := max(wc.Attempts, wc.Sent, wc.Denied+wc.TimedOut+1)
		if over := float64(n) / float64(th); int(n) >= th && over > bestOver {
			best = &Finding{Code: FindingAfterBurst, At: approvedAt, Window: w.Milliseconds(), Threshold: int32(th), Pushes: n}
			bestOver, from = over, before-wMs
		}
	}
	// Consecutive denied or unanswered pushes right before the approval,
	// none further from the next than the streak expiry.
	streak := int32(0)
	next := approvedAt
	first := end
	for i := end - 1; i >= 0; i-- {
		k := s.Pushes[i].Kind
		if k == KindApproved || c.StreakExpiry > 0 && next-s.Pushes[i].At >= c.StreakExpiry.Milliseconds() {
			break
		}
		next, first = s.Pushes[i].At, i
		if k == KindDenied || k == KindTimedOut {
			streak++
		}
	}
	// The streak the state counts holds pushes the list has let go: a paced
	// attack, a push every half hour, keeps its streak but never has three
	// pushes in the list's hour. It counts when it ended before this
	// approval and recently enough.
	if s.Streak > 0 && s.StreakLast < approvedAt && (c.StreakExpiry <= 0 || approvedAt-s.StreakLast < c.StreakExpiry.Milliseconds()) {
		streak = max(streak, int32(s.Streak))
	}
	if best == nil && c.StreakThreshold > 0 && int(streak) >= c.StreakThreshold {
		best = &Finding{Code: FindingAfterBurst, At: approvedAt, Threshold: int32(c.StreakThreshold)}
	}
	if best == nil {
		return nil
	}
	best.Streak = streak
	// Whose pushes: every push the window or the streak holds.
	var k contextCounts
	lo := min(first, sort.Search(len(s.Pushes), func(i int) bool { return s.Pushes[i].At > from }))
	for _, p := range s.Pushes[lo:end] {
		k.add(p)
	}
	k.ans[approval.Context&3]++
	best.Class = classify(&k, &approval)
	best.Familiar, best.Partial, best.Unfamiliar = k.pushes(ContextFamiliar), k.pushes(ContextPartial), k.pushes(ContextUnfamiliar)
	best.Approver = approval.Approver
	best.Confidence = c.confidence(best.Class)
	return best
}

// contextCounts counts push activity by context, as a window counts it.
type contextCounts struct {
	att, sent, ans [4]int32
}

func (k *contextCounts) add(p Push) {
	switch p.Kind {
	case KindAttempt:
		k.att[p.Context&3]++
	case KindSent:
		k.sent[p.Context&3]++
	case KindApproved, KindDenied, KindTimedOut:
		k.ans[p.Context&3]++
	}
}

// pushes counts each push once whichever of its activities carry the
// context, as WindowCount.pushes does.
func (k *contextCounts) pushes(ctx PushContext) int32 {
	return max(k.att[ctx], k.sent[ctx], k.ans[ctx])
}

// classify says whose pushes a burst was made of. approval is the push
// approved at its end (nil for a burst or streak still going on); its own
// context is counted in k.
//
//   - An approving device that disagrees (an unknown device, far from the
//     login, another country) makes it unfamiliar whatever the pushes.
//   - Any push from an unfamiliar context makes it unfamiliar, unless the
//     approved push came from the familiar context and a known device
//     approved it where the login was: the user approved their own sign-in
//     among someone else's pushes (mixed).
//   - No push with a client at all: nothing tells (no context).
//   - Every push familiar and, for an approval, the approving device
//     agrees: the user's own retries.
//   - Otherwise (pushes only partly familiar, no word on the approving
//     device): mixed.
func classify(k *contextCounts, approval *Push) BurstClass {
	unf := k.pushes(ContextUnfamiliar)
	fam, part := k.pushes(ContextFamiliar), k.pushes(ContextPartial)
	switch {
	case approval != nil && approval.Approver == ApproverDisagrees:
		return BurstUnfamiliar
	case unf > 0:
		if approval != nil && approval.Context == ContextFamiliar && approval.Approver == ApproverAgrees {
			return BurstMixed
		}
		return BurstUnfamiliar
	case fam+part == 0:
		return BurstNoContext
	case part == 0 && (approval == nil || approval.Approver == ApproverAgrees):
		return BurstOwn
	}
	return BurstMixed
}

// confidence is the confidence of a burst of class b.
func (c Config) confidence(b BurstClass) float64 {
	v := 0.0
	switch b {
	case BurstOwn:
		v = c.Context.OwnConfidence
	case BurstMixed:
		v = c.Context.MixedConfidence
	}
	if v <= 0 || v > 1 {
		return 1
	}
	return v
}

// burstContext classifies the pushes in (from, to] (a burst or a streak
// that no approval ended). As in burstBefore, pushes the user answered
// with an approval before the newest push are left out: a traveller's
// approved sign-in on arrival is not part of the retries at home that
// follow it.
func (c Config) burstContext(s *UserState, from, to int64) (BurstClass, contextCounts) {
	lo := sort.Search(len(s.Pushes), func(i int) bool { return s.Pushes[i].At > from })
	hi := sort.Search(len(s.Pushes), func(i int) bool { return s.Pushes[i].At > to })
	last := hi - 1
	for last >= lo && s.Pushes[last].Kind == KindApproved {
		last--
	}
	for i := last - 1; i >= lo; i-- {
		if s.Pushes[i].Kind == KindApproved {
			lo = i + 1
			break
		}
	}
	var k contextCounts
	for _, p := range s.Pushes[lo:hi] {
		k.add(p)
	}
	return classify(&k, nil), k
}

// travel measures the speed from the last trusted location to cur.
func (c Config) travel(prev Location, cur ClientInfo, at int64, anon string) *Finding {
	t := c.Travel
	if t.MaxSpeedKmh <= 0 || t.Weight <= 0 || !prev.Known() || !cur.located() {
		return nil
	}
	if prev.IP != "" && prev.IP == cur.IP {
		return nil
	}
	raw := geo.DistanceKm(prev.Lat, prev.Lon, cur.Lat, cur.Lon)
	sep := max(0, raw-max(0, prev.AccuracyKm)-max(0, cur.AccuracyKm))
	if sep == 0 {
		return nil
	}
	// Travel is symmetric in time: an event that arrives late is measured
	// against the trusted location all the same. A second is the floor so
	// two places at once are infinitely fast, not a division by zero.
	elapsed := max(abs(at-prev.At), 1000)
	speed := sep / (float64(elapsed) / float64(time.Hour.Milliseconds()))
	if speed <= t.MaxSpeedKmh {
		return nil
	}
	f := &Finding{Code: FindingTravel, At: at, Confidence: 1, From: prev, To: cur.location(at), RawKm: q(raw, 10), Km: q(sep, 10)}
	switch {
	case sep < t.JitterKm && elapsed < t.JitterWindow.Milliseconds():
		f.Confidence, f.Discount = t.JitterConfidence, DiscountJitter
	case sep < t.MinDistanceKm:
		f.Confidence, f.Discount = t.RegionalConfidence, DiscountRegional
	}
	if anon != "" {
		f.Confidence *= c.Anonymizers.TravelConfidence
		f.Discount = DiscountAnonymizer
	}
	f.Confidence = q(f.Confidence, 100)
	return f
}

// mismatch compares where the login came from with where the approving
// device was.
func (c Config) mismatch(o Observation, at int64) *Finding {
	m := c.Mismatch
	if m.MinKm <= 0 || m.Weight <= 0 || !o.Client.located() || !o.Responder.located() {
		return nil
	}
	if o.Client.IP != "" && o.Client.IP == o.Responder.IP {
		return nil
	}
	raw := geo.DistanceKm(o.Client.Lat, o.Client.Lon, o.Responder.Lat, o.Responder.Lon)
	sep := max(0, raw-max(0, o.Client.AccuracyKm)-max(0, o.Responder.AccuracyKm))
	if sep < m.MinKm {
		return nil
	}
	f := &Finding{Code: FindingMismatch, At: at, Confidence: 1, From: o.Client.location(at), To: o.Responder.location(at), RawKm: q(raw, 10), Km: q(sep, 10)}
	if c.Anonymizers.Kind(o.Client) != "" || c.Anonymizers.Kind(o.Responder) != "" {
		f.Confidence = q(f.Confidence*c.Anonymizers.TravelConfidence, 100)
		f.Discount = DiscountAnonymizer
	}
	return f
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// Combine turns signal weights into a 0-100 score as independent evidence
// (a noisy OR): score = 100 * (1 - prod(1 - w/100)). One signal scores its
// own weight, every further signal adds a share of what is left, the order
// does not matter and the score never exceeds 100.
func Combine(weights ...int32) int32 {
	rest := 1.0
	for _, w := range weights {
		rest *= 1 - float64(min(max(w, 0), 100))/100
	}
	return int32(math.Round(100 * (1 - rest)))
}
