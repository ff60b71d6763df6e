package engine

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// SprayCount is how many distinct users one source pushed to in the spray
// window (read from the per-source state, see SourceState).
type SprayCount struct {
	// IP is set for a per-IP count, ASN for a per-ASN count.
	IP  string
	ASN uint32
	// Users is the count held against the threshold: the users who have
	// not vouched for the source, less the dormant ones vouched users
	// offset.
	Users int
	// Dormant is how many of Users had no history when the source pushed
	// to them.
	Dormant int
	// Vouched is how many users succeeded from the source in the window.
	Vouched int
}

// Assess evaluates the user's risk at now from the state alone: push
// windows, streak, fraud report and the findings still in force.
func (c Config) Assess(userID string, s *UserState, now time.Time) *scoringv1.RiskAssessment {
	return c.assess(userID, s, now, nil, nil)
}

// Record applies o to s and assesses the user at o.At, with what o itself
// revealed (travel, novelty, anonymizer) and the spray counts of its source.
// A duplicate changes nothing and is assessed from the state alone; applied
// is false then. An event older than the newest activity is assessed at
// the newest activity.
func (c Config) Record(userID string, s *UserState, o Observation, spray []SprayCount) (ra *scoringv1.RiskAssessment, applied bool) {
	if c.duplicate(s, o) {
		return c.assess(userID, s, o.At, nil, nil), false
	}
	ev := c.evaluate(s, o)
	c.apply(s, o, ev)
	// A late event is assessed at the newest activity: the user's risk now.
	at := o.At
	if newest := time.UnixMilli(s.UpdatedAt); newest.After(at) {
		at = newest
	}
	return c.assess(userID, s, at, &ev, spray), true
}

// Preview assesses o as Record would, without changing s (o is not counted).
func (c Config) Preview(userID string, s *UserState, o Observation, spray []SprayCount) *scoringv1.RiskAssessment {
	ev := c.evaluate(s, o)
	return c.assess(userID, s, o.At, &ev, spray)
}

func (c Config) assess(userID string, s *UserState, now time.Time, ev *eval, spray []SprayCount) *scoringv1.RiskAssessment {
	nowMs := now.UnixMilli()
	ra := &scoringv1.RiskAssessment{UserId: userID, Time: timestamppb.New(now), Windows: make([]*scoringv1.WindowCount, 0, len(c.Windows))}
	if s.StrongAuthAt != 0 {
		ra.LastPhishingResistantTime = ms(s.StrongAuthAt)
	}
	for _, w := range c.Windows {
		ra.Windows = append(ra.Windows, c.Count(s, now, w))
	}
	add := func(sig *scoringv1.Signal) {
		if sig != nil {
			ra.Signals = append(ra.Signals, sig)
		}
	}
	add(c.burstSignal(s, nowMs, ra.Windows))
	add(c.streakSignal(s, nowMs))
	add(c.fraudSignal(s, now))
	live := func(code FindingCode, fresh func(*eval) *Finding, ttl time.Duration) *Finding {
		if ev != nil {
			if f := fresh(ev); f != nil {
				return f
			}
		}
		if f := s.finding(code); f != nil && f.At <= nowMs && nowMs-f.At < ttl.Milliseconds() {
			return f
		}
		return nil
	}
	if f := live(FindingAfterBurst, func(e *eval) *Finding { return e.afterBurst }, c.AfterBurst.Hold); f != nil {
		add(c.afterBurstSignal(f, nowMs))
	}
	if f := live(FindingTravel, func(e *eval) *Finding { return e.travel }, c.FindingTTL); f != nil {
		add(c.travelSignal(SignalImpossibleTravel, f, c.Travel.Weight))
	}
	if f := live(FindingMismatch, func(e *eval) *Finding { return e.mismatch }, c.FindingTTL); f != nil {
		add(c.travelSignal(SignalResponseMismatch, f, c.Mismatch.Weight))
	}
	if ev != nil {
		ra.Familiarity = ev.familiar
		add(c.novelty(SignalNewDevice, ev.newDevice, ev.known[0], c.Novelty.DeviceWeight, "device"))
		add(c.novelty(SignalNewCountry, ev.newCountry, ev.known[1], c.Novelty.CountryWeight, "country"))
		if ev.newASN != 0 {
			add(c.novelty(SignalNewASN, "AS"+strconv.FormatUint(uint64(ev.newASN), 10), ev.known[2], c.Novelty.ASNWeight, "network"))
		}
	}
	add(c.spraySignal(spray))
	if ev != nil && ev.anon != "" {
		add(&scoringv1.Signal{
			Code: SignalAnonymizer, Weight: 0, Confidence: 1,
			Summary:  fmt.Sprintf("client is behind a %s network; its location is not the user's", ev.anon),
			Evidence: &scoringv1.Signal_Anonymizer{Anonymizer: &scoringv1.AnonymizerEvidence{Kind: ev.anon, Asn: ev.anonASN, AsOrg: ev.anonOrg}},
		})
	}
	slices.SortStableFunc(ra.Signals, func(a, b *scoringv1.Signal) int { return cmp.Compare(b.Weight, a.Weight) })
	weights := make([]int32, len(ra.Signals))
	for i, sig := range ra.Signals {
		weights[i] = sig.Weight
	}
	ra.Score = Combine(weights...)
	return ra
}

func ms(v int64) *timestamppb.Timestamp { return timestamppb.New(time.UnixMilli(v)) }

// burstSignal fires PUSH_BURST on the window whose count is furthest over
// its threshold; its weight grows with every push beyond the threshold.
// Its confidence says whose pushes the window holds (see classify): the
// weight stays, since the policy answers a burst by its counts whoever
// sends it.
func (c Config) burstSignal(s *UserState, nowMs int64, windows []*scoringv1.WindowCount) *scoringv1.Signal {
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
	class, k := c.burstContext(s, nowMs-best.Window.AsDuration().Milliseconds(), nowMs)
	ev := &scoringv1.BurstEvidence{Windows: windows, Threshold: int32(bestThreshold), Window: best.Window}
	contextEvidence(ev, class, &k)
	return &scoringv1.Signal{
		Code:       SignalPushBurst,
		Weight:     min(30+10*extra, 70),
		Confidence: c.confidence(class),
		Summary:    fmt.Sprintf("%d pushes in %s (threshold %d)%s", best.Pushes, fmtWindow(best.Window.AsDuration()), bestThreshold, contextSummary(class, &k)),
		Evidence:   &scoringv1.Signal_Burst{Burst: ev},
	}
}

// contextEvidence fills the context fields of a burst's evidence.
func contextEvidence(ev *scoringv1.BurstEvidence, class BurstClass, k *contextCounts) {
	ev.Context = class.String()
	ev.FamiliarPushes = k.pushes(ContextFamiliar)
	ev.PartlyFamiliarPushes = k.pushes(ContextPartial)
	ev.UnfamiliarPushes = k.pushes(ContextUnfamiliar)
}

// contextSummary is the clause a burst's summary ends with.
func contextSummary(class BurstClass, k *contextCounts) string {
	fam, part, unf := k.pushes(ContextFamiliar), k.pushes(ContextPartial), k.pushes(ContextUnfamiliar)
	switch class {
	case BurstOwn:
		return fmt.Sprintf("; own retries: %d from the user's familiar device and network", fam)
	case BurstMixed:
		return fmt.Sprintf("; mixed: %d from the user's familiar context, %d partly familiar, %d unfamiliar", fam, part, unf)
	case BurstUnfamiliar:
		return fmt.Sprintf("; %d from an unfamiliar source", unf)
	}
	return ""
}

func (c Config) streakSignal(s *UserState, nowMs int64) *scoringv1.Signal {
	if c.StreakThreshold <= 0 || s.Streak < c.StreakThreshold {
		return nil
	}
	last := max(s.StreakLast, s.StreakSince)
	if c.StreakExpiry > 0 && nowMs-last >= c.StreakExpiry.Milliseconds() {
		return nil
	}
	extra := int32(s.Streak - c.StreakThreshold)
	// Whose pushes: those the list still holds from the streak's first
	// answer on (a push's attempt a moment earlier is left out, its answer
	// is not).
	class, k := c.burstContext(s, s.StreakSince-1, last)
	return &scoringv1.Signal{
		Code:       SignalDenialStreak,
		Weight:     min(25+10*extra, 60),
		Confidence: c.confidence(class),
		Summary:    fmt.Sprintf("%d pushes in a row denied or unanswered%s", s.Streak, contextSummary(class, &k)),
		Evidence: &scoringv1.Signal_Streak{Streak: &scoringv1.StreakEvidence{
			Length: int32(s.Streak), Since: ms(s.StreakSince),
			Denied: int32(s.StreakDenied), TimedOut: int32(s.StreakTimedOut),
		}},
	}
}

func (c Config) fraudSignal(s *UserState, now time.Time) *scoringv1.Signal {
	if s.FraudAt == 0 || c.FraudDecay <= 0 {
		return nil
	}
	age := now.Sub(time.UnixMilli(s.FraudAt))
	if age < 0 || age >= c.FraudDecay {
		return nil
	}
	left := c.FraudDecay - age
	w := int32(80 * float64(left) / float64(c.FraudDecay))
	return &scoringv1.Signal{
		Code:       SignalFraudReported,
		Weight:     max(w, 20),
		Confidence: 1,
		Summary:    fmt.Sprintf("user reported a push as fraud %s ago", age.Round(time.Second)),
		Evidence: &scoringv1.Signal_Fraud{Fraud: &scoringv1.FraudEvidence{
			ReportedAt: ms(s.FraudAt), Remaining: durationpb.New(left),
		}},
	}
}

// afterBurstSignal weighs a fatigue success: full weight when fresh, falling
// linearly to the floor by the end of the hold, both times the finding's
// confidence (the user's own retries weigh 0.3 of an attacker's burst).
func (c Config) afterBurstSignal(f *Finding, nowMs int64) *scoringv1.Signal {
	a := c.AfterBurst
	left := a.Hold.Milliseconds() - (nowMs - f.At)
	w := a.Weight
	if a.Hold > 0 {
		w = max(int32(float64(a.Weight)*float64(left)/float64(a.Hold.Milliseconds())), a.Floor)
	}
	conf := min(max(f.Confidence, 0), 1)
	ev := &scoringv1.BurstEvidence{Threshold: f.Threshold, Streak: f.Streak, ApprovedAt: ms(f.At)}
	var summary string
	if f.Window != 0 {
		win := time.Duration(f.Window) * time.Millisecond
		ev.Window = durationpb.New(win)
		ev.Windows = []*scoringv1.WindowCount{{Window: ev.Window, Pushes: f.Pushes}}
		summary = fmt.Sprintf("push approved after %d pushes in %s (threshold %d)", f.Pushes, fmtWindow(win), f.Threshold)
	} else {
		summary = fmt.Sprintf("push approved after %d denied or unanswered in a row", f.Streak)
	}
	ev.Context = f.Class.String()
	ev.FamiliarPushes, ev.PartlyFamiliarPushes, ev.UnfamiliarPushes = f.Familiar, f.Partial, f.Unfamiliar
	ev.ApproverFamiliar = f.Approver == ApproverAgrees
	switch f.Class {
	case BurstOwn:
		summary += fmt.Sprintf("; own retries: all %d from the user's familiar device and network, approved on a known device where the login was", f.Familiar)
	case BurstMixed:
		summary += fmt.Sprintf("; mixed: %d from the user's familiar context, %d partly familiar, %d unfamiliar; approving device %s", f.Familiar, f.Partial, f.Unfamiliar, approverText(f.Approver))
	case BurstUnfamiliar:
		summary += fmt.Sprintf("; unfamiliar source: %d of the pushes; approving device %s", f.Unfamiliar, approverText(f.Approver))
	}
	return &scoringv1.Signal{
		Code: SignalApprovalAfterBurst, Weight: int32(math.Round(float64(w) * conf)), Confidence: conf, Summary: summary,
		Evidence: &scoringv1.Signal_Burst{Burst: ev},
	}
}

func approverText(a Approver) string {
	switch a {
	case ApproverAgrees:
		return "known, where the login was"
	case ApproverDisagrees:
		return "unknown or elsewhere"
	}
	return "not reported"
}

// travelSignal renders IMPOSSIBLE_TRAVEL and RESPONSE_LOCATION_MISMATCH; the
// weight is the configured weight times the confidence.
func (c Config) travelSignal(code string, f *Finding, weight int32) *scoringv1.Signal {
	elapsed := time.Duration(abs(f.To.At-f.From.At)) * time.Millisecond
	ev := &scoringv1.TravelEvidence{
		Previous: locationPB(f.From), Current: locationPB(f.To),
		DistanceKm: round1(f.Km), RawDistanceKm: round1(f.RawKm),
		Elapsed: durationpb.New(elapsed), Discount: f.Discount.String(),
	}
	var summary string
	if code == SignalImpossibleTravel {
		hours := max(float64(elapsed.Milliseconds()), 1000) / float64(time.Hour.Milliseconds())
		ev.SpeedKmh = round1(f.Km / hours)
		ev.ThresholdKmh = c.Travel.MaxSpeedKmh
		summary = fmt.Sprintf("%.0f km from %s in %s: %.0f km/h (threshold %.0f)", f.Km, place(f.From), elapsed.Round(time.Second), ev.SpeedKmh, ev.ThresholdKmh)
	} else {
		summary = fmt.Sprintf("push approved %.0f km from the login (%s vs %s)", f.Km, place(f.To), place(f.From))
	}
	switch f.Discount {
	case DiscountJitter:
		summary += "; short jump, probably GeoIP jitter"
	case DiscountRegional:
		summary += "; regional jump, possibly a mobile carrier gateway"
	case DiscountAnonymizer:
		summary += "; behind an anonymizer, location unreliable"
	}
	return &scoringv1.Signal{
		Code: code, Weight: int32(math.Round(float64(weight) * f.Confidence)), Confidence: f.Confidence,
		Summary: summary, Evidence: &scoringv1.Signal_Travel{Travel: ev},
	}
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

func place(l Location) string {
	switch {
	case l.City != "" && l.Country != "":
		return l.City + " (" + l.Country + ")"
	case l.City != "":
		return l.City
	case l.Country != "":
		return l.Country
	case l.IP != "":
		return l.IP
	}
	return fmt.Sprintf("%.2f,%.2f", l.Lat, l.Lon)
}

func locationPB(l Location) *scoringv1.Location {
	return &scoringv1.Location{Time: ms(l.At), Ip: l.IP, Geo: &eventv1.Geo{
		Latitude: l.Lat, Longitude: l.Lon, AccuracyKm: l.AccuracyKm, Country: l.Country, City: l.City,
	}}
}

// novelty renders NEW_DEVICE, NEW_COUNTRY and NEW_ASN. Its confidence is
// lower against a short history: a second phone or network is what every
// user shows in their first days.
func (c Config) novelty(code, value string, known int, weight int32, what string) *scoringv1.Signal {
	if value == "" || weight <= 0 {
		return nil
	}
	conf := 1.0
	if n := c.Novelty; known < n.FewKnown && n.FewKnownConfidence > 0 && n.FewKnownConfidence < 1 {
		conf = n.FewKnownConfidence
	}
	return &scoringv1.Signal{
		Code: code, Weight: weight, Confidence: conf,
		Summary:  fmt.Sprintf("%s %s not among the user's last %d", what, value, known),
		Evidence: &scoringv1.Signal_Novelty{Novelty: &scoringv1.NoveltyEvidence{Value: value, Known: int32(known)}},
	}
}

// spraySignal fires PUSH_SPRAY for the source furthest over its threshold.
func (c Config) spraySignal(counts []SprayCount) *scoringv1.Signal {
	sp := c.Spray
	var best *SprayCount
	bestOver, bestTh := 0.0, 0
	for i, sc := range counts {
		th := sp.IPThreshold
		if sc.IP == "" {
			th = sp.ASNThreshold
		}
		if th <= 0 || sc.Users < th {
			continue
		}
		if over := float64(sc.Users) / float64(th); over > bestOver {
			best, bestOver, bestTh = &counts[i], over, th
		}
	}
	if best == nil || sp.Weight <= 0 {
		return nil
	}
	src := best.IP
	if src == "" {
		src = "AS" + strconv.FormatUint(uint64(best.ASN), 10)
	}
	summary := fmt.Sprintf("%s pushed to %d distinct users in %s (threshold %d)", src, best.Users, fmtWindow(sp.Window), bestTh)
	if best.Dormant > 0 {
		summary += fmt.Sprintf(", %d of them with no history", best.Dormant)
	}
	if best.Vouched > 0 {
		summary += fmt.Sprintf("; %d other users succeeded from it", best.Vouched)
	}
	// Users with history are people nobody asked; accounts without one
	// are what a sprayer looks for, and what a class of new hires looks
	// like until their approvals come.
	conf := 1.0
	if best.Users-best.Dormant < bestTh && sp.DormantConfidence > 0 && sp.DormantConfidence < 1 {
		conf = sp.DormantConfidence
	}
	return &scoringv1.Signal{
		Code: SignalPushSpray, Weight: min(sp.Weight+int32(5*(best.Users-bestTh)), 70), Confidence: conf,
		Summary: summary,
		Evidence: &scoringv1.Signal_Spray{Spray: &scoringv1.SprayEvidence{
			SourceIp: best.IP, Asn: best.ASN, DistinctUsers: int32(best.Users), DormantUsers: int32(best.Dormant), VouchedUsers: int32(best.Vouched),
			Window: durationpb.New(sp.Window), Threshold: int32(bestTh),
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
