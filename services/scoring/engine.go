package scoring

import (
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"time"

	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
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

// Config holds the scorer's thresholds. DefaultConfig documents the choices.
type Config struct {
	// Windows are the sliding windows pushes are counted in, shortest first.
	Windows []time.Duration
	// BurstThresholds maps a window to the push count that fires PUSH_BURST.
	BurstThresholds map[time.Duration]int
	// StreakThreshold is the number of consecutive denied or unanswered
	// pushes that fires DENIAL_STREAK.
	StreakThreshold int
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
}

// DefaultConfig returns thresholds calibrated on what peers publish:
// PingID escalates at 5/10/15 denied or ignored pushes in 5 minutes, Elastic
// alerts on 5 denials in 10 minutes, Splunk on 10 failures in 5-10 minutes.
// Pushback fires earlier because it acts inline: 3 pushes in a minute or in
// 5 minutes, 5 in 10 minutes, 10 in an hour.
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
		FraudDecay:      24 * time.Hour,
		MaxPushes:       128,
		MaxSeen:         32,
		HistoryLimit:    20,
		IdleTTL:         30 * 24 * time.Hour,
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
)

// ClientInfo is the client of an observation.
type ClientInfo struct {
	IP         string
	DeviceID   string
	ASN        uint32
	Lat, Lon   float64
	AccuracyKm float64
	HasGeo     bool
	Country    string
	City       string
}

func hashID(id string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return h.Sum64()
}

// Apply folds o into s. It reports false when o is a duplicate (its ID was
// seen) and changes nothing then. Time is never read from the clock.
func (c Config) Apply(s *UserState, o Observation) bool {
	if o.ID != "" {
		h := hashID(o.ID)
		if slices.Contains(s.Seen, h) {
			return false
		}
		s.Seen = append(s.Seen, h)
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
		if s.Streak == 0 {
			s.StreakSince = at
		}
		s.Streak++
		if kind == KindTimedOut {
			s.StreakTimedOut++
		} else {
			s.StreakDenied++
		}
	case ObsPushApproved:
		c.addPush(s, Push{At: at, Kind: KindApproved})
		s.Streak, s.StreakDenied, s.StreakTimedOut, s.StreakSince = 0, 0, 0, 0
		c.trust(s, at, o.Client)
	case ObsLoginSucceeded:
		c.trust(s, at, o.Client)
		if o.PhishingResistant && at > s.StrongAuthAt {
			s.StrongAuthAt = at
		}
	case ObsFraudReported:
		if at > s.FraudAt {
			s.FraudAt = at
		}
	case ObsLoginFailed, ObsFactorEnrolled:
		// Failed logins are never trusted locations; enrolment changes no window.
	}
	return true
}

func (c Config) trust(s *UserState, at int64, ci ClientInfo) {
	if ci.HasGeo && at >= s.LastTrusted.At {
		s.LastTrusted = Location{At: at, IP: ci.IP, Lat: ci.Lat, Lon: ci.Lon, AccuracyKm: ci.AccuracyKm, Country: ci.Country, City: ci.City}
	}
	if ci.DeviceID != "" {
		s.Devices = remember(s.Devices, ci.DeviceID, c.HistoryLimit)
	}
	if ci.Country != "" {
		s.Countries = remember(s.Countries, ci.Country, c.HistoryLimit)
	}
	if ci.ASN != 0 {
		s.ASNs = remember(s.ASNs, ci.ASN, c.HistoryLimit)
	}
}

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

// Count returns the push activity of s in the window (now-w, now].
func (c Config) Count(s *UserState, now time.Time, w time.Duration) *scoringv1.WindowCount {
	nowMs := now.UnixMilli()
	from := nowMs - w.Milliseconds()
	wc := &scoringv1.WindowCount{Window: durationpb.New(w)}
	for i := len(s.Pushes) - 1; i >= 0; i-- {
		p := s.Pushes[i]
		if p.At > nowMs {
			continue
		}
		if p.At <= from {
			break
		}
		switch p.Kind {
		case KindAttempt:
			wc.Attempts++
		case KindSent:
			wc.Sent++
		case KindDenied:
			wc.Denied++
		case KindTimedOut:
			wc.TimedOut++
		case KindSuppressed:
			wc.Suppressed++
		}
	}
	// Inline, every push passes through Decide (attempts); from logs alone
	// only sent pushes are known. The larger of the two counts each push once.
	wc.Pushes = max(wc.Attempts, wc.Sent)
	return wc
}

// Assess evaluates the user's risk at now.
func (c Config) Assess(userID string, s *UserState, now time.Time) *scoringv1.RiskAssessment {
	ra := &scoringv1.RiskAssessment{UserId: userID, Time: timestamppb.New(now)}
	if s.StrongAuthAt != 0 {
		ra.LastPhishingResistantTime = timestamppb.New(time.UnixMilli(s.StrongAuthAt))
	}
	for _, w := range c.Windows {
		ra.Windows = append(ra.Windows, c.Count(s, now, w))
	}
	if sig := c.burstSignal(ra.Windows); sig != nil {
		ra.Signals = append(ra.Signals, sig)
	}
	if s.Streak >= c.StreakThreshold {
		extra := int32(s.Streak - c.StreakThreshold)
		ra.Signals = append(ra.Signals, &scoringv1.Signal{
			Code:       SignalDenialStreak,
			Weight:     min(25+10*extra, 60),
			Confidence: 1,
			Summary:    fmt.Sprintf("%d pushes in a row denied or unanswered", s.Streak),
			Evidence: &scoringv1.Signal_Streak{Streak: &scoringv1.StreakEvidence{
				Length: int32(s.Streak), Since: timestamppb.New(time.UnixMilli(s.StreakSince)),
				Denied: int32(s.StreakDenied), TimedOut: int32(s.StreakTimedOut),
			}},
		})
	}
	if s.FraudAt != 0 {
		age := now.Sub(time.UnixMilli(s.FraudAt))
		if age >= 0 && age < c.FraudDecay {
			left := c.FraudDecay - age
			w := int32(80 * float64(left) / float64(c.FraudDecay))
			ra.Signals = append(ra.Signals, &scoringv1.Signal{
				Code:       SignalFraudReported,
				Weight:     max(w, 20),
				Confidence: 1,
				Summary:    fmt.Sprintf("user reported a push as fraud %s ago", age.Round(time.Second)),
				Evidence: &scoringv1.Signal_Fraud{Fraud: &scoringv1.FraudEvidence{
					ReportedAt: timestamppb.New(time.UnixMilli(s.FraudAt)), Remaining: durationpb.New(left),
				}},
			})
		}
	}
	sort.SliceStable(ra.Signals, func(i, j int) bool { return ra.Signals[i].Weight > ra.Signals[j].Weight })
	total := int32(0)
	for _, sig := range ra.Signals {
		total += sig.Weight
	}
	ra.Score = min(total, 100)
	return ra
}

// burstSignal fires PUSH_BURST on the window whose count is furthest over
// its threshold; its weight grows with every push beyond the threshold.
func (c Config) burstSignal(windows []*scoringv1.WindowCount) *scoringv1.Signal {
	var best *scoringv1.WindowCount
	bestOver, bestThreshold := -1.0, 0
	for _, wc := range windows {
		w := wc.Window.AsDuration()
		th, ok := c.BurstThresholds[w]
		if !ok || th <= 0 || int(wc.Pushes) < th {
			continue
		}
		over := float64(wc.Pushes) / float64(th)
		if over > bestOver {
			best, bestOver, bestThreshold = wc, over, th
		}
	}
	if best == nil {
		return nil
	}
	extra := best.Pushes - int32(bestThreshold)
	return &scoringv1.Signal{
		Code:       SignalPushBurst,
		Weight:     min(30+10*extra, 70),
		Confidence: 1,
		Summary:    fmt.Sprintf("%d pushes in %s (threshold %d)", best.Pushes, fmtWindow(best.Window.AsDuration()), bestThreshold),
		Evidence: &scoringv1.Signal_Burst{Burst: &scoringv1.BurstEvidence{
			Windows: windows, Threshold: int32(bestThreshold), Window: best.Window,
		}},
	}
}

// fmtWindow renders a window compactly: 1m, 5m, 1h, 90s.
func fmtWindow(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	default:
		return fmt.Sprintf("%ds", d/time.Second)
	}
}

// FormatWindow renders a window as policies name it ("5m", "1h").
func FormatWindow(d time.Duration) string { return fmtWindow(d) }
