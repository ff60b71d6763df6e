package scoring

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
// confidence and Panther's jitter box.
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
		Travel: TravelConfig{
			MaxSpeedKmh: 900, MinDistanceKm: 500, JitterKm: 50, JitterWindow: 10 * time.Minute,
			Weight: 50, RegionalConfidence: 0.5, JitterConfidence: 0.25,
		},
		Mismatch:    MismatchConfig{MinKm: 500, Weight: 50},
		Novelty:     NoveltyConfig{DeviceWeight: 10, CountryWeight: 15, ASNWeight: 5},
		Spray:       SprayConfig{Window: 10 * time.Minute, IPThreshold: 5, ASNThreshold: 20, MaxUsers: 64, Weight: 40},
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
//     ends a burst or a denial streak (the fatigue success), was given far
//     from the login, or comes while a fatigue success is fresh;
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
	case o.Kind == ObsPushApproved && c.burstBefore(s, at) == nil && c.mismatch(o, at) == nil && !c.compromised(s, at):
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
}

// evaluate looks at o against s without changing s.
func (c Config) evaluate(s *UserState, o Observation) eval {
	var ev eval
	at := o.At.UnixMilli()
	if o.Kind.hasClient() {
		ev.anon = c.Anonymizers.Kind(o.Client)
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
	if o.Kind == ObsPushApproved {
		ev.afterBurst = c.burstBefore(s, at)
		ev.mismatch = c.mismatch(o, at)
	}
	ev.trusted = (o.Kind == ObsLoginSucceeded || o.Kind == ObsPushApproved) &&
		ev.afterBurst == nil && ev.mismatch == nil && !c.compromised(s, at)
	return ev
}

// compromised reports whether a fatigue success is fresh: until FindingTTL
// after it, nothing the user does becomes a trusted location or history.
func (c Config) compromised(s *UserState, at int64) bool {
	f := s.finding(FindingAfterBurst)
	return f != nil && at >= f.At && at-f.At < c.FindingTTL.Milliseconds()
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
	case ObsAttempt:
		c.addPush(s, Push{At: at, Kind: KindAttempt})
	case ObsPushSent:
		c.addPush(s, Push{At: at, Kind: KindSent})
	case ObsPushSuppressed:
		c.addPush(s, Push{At: at, Kind: KindSuppressed})
	case ObsPushDenied, ObsPushTimedOut, ObsNumberChallengeFailed:
		kind := KindDenied
		if o.Kind == ObsPushTimedOut {
			kind = KindTimedOut
		}
		c.addPush(s, Push{At: at, Kind: kind})
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
		} else if s.finding(FindingAfterBurst) == nil || s.finding(FindingAfterBurst).At != s.LastApprovedAt {
			// Late evidence: the last approval may have ended a burst after all.
			if f := c.burstBefore(s, s.LastApprovedAt); f != nil {
				s.putFinding(*f)
			}
		}
	case ObsPushApproved:
		c.addPush(s, Push{At: at, Kind: KindApproved})
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
	case ObsLoginFailed, ObsFactorEnrolled:
		// Failed logins are never trusted locations; enrolment changes no window.
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

// burstBefore looks for a burst or a denial streak just before an approval
// at approvedAt: the fatigue success. It reads only the push list, so a
// denial that arrives after the approval (out of order) is still seen.
func (c Config) burstBefore(s *UserState, approvedAt int64) *Finding {
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
			best = &Finding{Code: FindingAfterBurst, At: approvedAt, Confidence: 1, Window: w.Milliseconds(), Threshold: int32(th), Pushes: n}
			bestOver = over
		}
	}
	// Consecutive denied or unanswered pushes right before the approval,
	// none further from the next than the streak expiry.
	streak := int32(0)
	next := approvedAt
	for i := end - 1; i >= 0; i-- {
		k := s.Pushes[i].Kind
		if k == KindApproved || c.StreakExpiry > 0 && next-s.Pushes[i].At >= c.StreakExpiry.Milliseconds() {
			break
		}
		next = s.Pushes[i].At
		if k == KindDenied || k == KindTimedOut {
			streak++
		}
	}
	if best == nil && c.StreakThreshold > 0 && int(streak) >= c.StreakThreshold {
		best = &Finding{Code: FindingAfterBurst, At: approvedAt, Confidence: 1, Threshold: int32(c.StreakThreshold)}
	}
	if best != nil {
		best.Streak = streak
	}
	return best
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
