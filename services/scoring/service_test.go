package scoring_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/geo/geotest"
	"github.com/pushbackhq/pushback/pkg/rpc"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
	"github.com/pushbackhq/pushback/services/scoring"
	"github.com/pushbackhq/pushback/services/scoring/engine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var base = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

type fixture struct {
	st     store.Store
	client scoringv1.ScoringServiceClient
	svc    *scoring.Service
}

// serve runs the service over the production gRPC server on an in-memory
// connection, on st (a fresh in-memory badger when nil).
func serve(t *testing.T, st store.Store, opts scoring.Options) fixture {
	t.Helper()
	if st == nil {
		st = storetest.Memory(t)
	}
	opts.Store = st
	if opts.Now == nil {
		opts.Now = func() time.Time { return base }
	}
	svc, err := scoring.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	srv := rpc.NewServer(rpc.ServerOptions{})
	svc.Register(srv)
	ip := rpc.NewInProcess()
	go func() { _ = srv.Serve(ip.Listener()) }()
	t.Cleanup(srv.Stop)
	conn, err := ip.Dial(rpc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return fixture{st: st, client: scoringv1.NewScoringServiceClient(conn), svc: svc}
}

func ts(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(base.Add(d)) }

func geoClient(ip string, lat, lon float64, country string, asn uint32) *eventv1.Client {
	return &eventv1.Client{Ip: ip, Asn: asn, Geo: &eventv1.Geo{Latitude: lat, Longitude: lon, Country: country}}
}

func has(ra *scoringv1.RiskAssessment, code string) *scoringv1.Signal {
	for _, s := range ra.GetSignals() {
		if s.GetCode() == code {
			return s
		}
	}
	return nil
}

func event(id, user string, typ eventv1.EventType, at time.Duration, c *eventv1.Client) *eventv1.AuthEvent {
	return &eventv1.AuthEvent{EventId: id, Tenant: "acme", UserId: user, Type: typ, Time: ts(at), Client: c}
}

func TestServiceFatigueSuccessShowsInGetRisk(t *testing.T) {
	// The events below happen in the hour and a half before this clock.
	clock := scoring.Options{Now: func() time.Time { return base.Add(time.Hour + 30*time.Minute) }}
	f := serve(t, nil, clock)
	ctx := context.Background()
	home := geoClient("198.51.100.7", 40.71, -74.0, "US", 7922)
	evil := geoClient("12.12.12.12", -36.85, 174.76, "NZ", 9500)
	evs := []*eventv1.AuthEvent{event("login", "bob", eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, 0, home)}
	for i := range 4 {
		at := time.Hour + time.Duration(i)*40*time.Second
		evs = append(evs, event(fmt.Sprint("sent", i), "bob", eventv1.EventType_EVENT_TYPE_PUSH_SENT, at, evil),
			event(fmt.Sprint("deny", i), "bob", eventv1.EventType_EVENT_TYPE_PUSH_DENIED, at+10*time.Second, evil))
	}
	approve := event("ok", "bob", eventv1.EventType_EVENT_TYPE_PUSH_APPROVED, time.Hour+3*time.Minute, evil)
	approve.Responder = home
	evs = append(evs, approve)
	resp, err := f.client.Observe(ctx, &scoringv1.ObserveRequest{Events: append(evs, evs[0])})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetApplied() != int32(len(evs)) || resp.GetSkipped() != 1 {
		t.Fatalf("applied %d skipped %d", resp.GetApplied(), resp.GetSkipped())
	}
	got, err := f.client.GetRisk(ctx, &scoringv1.GetRiskRequest{Tenant: "acme", UserId: "bob", Time: ts(time.Hour + 30*time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	ra := got.GetAssessment()
	for _, code := range []string{engine.SignalApprovalAfterBurst, engine.SignalImpossibleTravel, engine.SignalResponseMismatch} {
		if has(ra, code) == nil {
			t.Errorf("GetRisk lacks %s: %v", code, ra.GetSignals())
		}
	}
	if ra.GetSignals()[0].GetCode() != engine.SignalApprovalAfterBurst || ra.GetScore() < 90 {
		t.Fatalf("fatigue success does not stand out: score %d %v", ra.GetScore(), ra.GetSignals())
	}
	// Another tenant's user of the same name is someone else.
	other, err := f.client.GetRisk(ctx, &scoringv1.GetRiskRequest{Tenant: "other", UserId: "bob", Time: ts(time.Hour + 30*time.Minute)})
	if err != nil || len(other.GetAssessment().GetSignals()) != 0 {
		t.Fatalf("tenant leak: %v %v", other, err)
	}

	// A restart (a new service on the same store) rebuilds the same risk.
	again := serve(t, f.st, clock)
	got2, err := again.client.GetRisk(ctx, &scoringv1.GetRiskRequest{Tenant: "acme", UserId: "bob", Time: ts(time.Hour + 30*time.Minute)})
	if err != nil || fmt.Sprint(got2.GetAssessment()) != fmt.Sprint(ra) {
		t.Fatalf("state not rebuilt after restart: %v", err)
	}
	// An idle user's state expires.
	late := serve(t, f.st, scoring.Options{Now: func() time.Time { return base.Add(31 * 24 * time.Hour) }})
	got3, err := late.client.GetRisk(ctx, &scoringv1.GetRiskRequest{Tenant: "acme", UserId: "bob"})
	if err != nil || len(got3.GetAssessment().GetSignals()) != 0 {
		t.Fatalf("idle state kept: %v %v", got3, err)
	}
}

func TestServiceBurstInline(t *testing.T) {
	f := serve(t, nil, scoring.Options{})
	for i := 1; i <= 5; i++ {
		resp, err := f.client.Assess(context.Background(), &scoringv1.AssessRequest{Record: true, Attempt: &scoringv1.Attempt{
			AttemptId: fmt.Sprint("a", i), Tenant: "acme", UserId: "carol", Time: ts(time.Duration(i) * time.Minute)}})
		if err != nil {
			t.Fatal(err)
		}
		if fired := has(resp.GetAssessment(), engine.SignalPushBurst) != nil; fired != (i >= 3) {
			t.Fatalf("push %d: PUSH_BURST = %v", i, fired)
		}
	}
	// Without record the attempt is not counted.
	resp, err := f.client.Assess(context.Background(), &scoringv1.AssessRequest{Attempt: &scoringv1.Attempt{
		AttemptId: "peek", Tenant: "acme", UserId: "carol", Time: ts(5 * time.Minute)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range resp.GetAssessment().GetWindows() {
		if w.GetWindow().AsDuration() == 10*time.Minute && w.GetPushes() != 5 {
			t.Fatalf("preview counted: %d", w.GetPushes())
		}
	}
	_, err = f.client.Assess(context.Background(), &scoringv1.AssessRequest{Attempt: &scoringv1.Attempt{}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("missing user: %v", err)
	}
}

// TestServiceSpray: one attacker IP pushing to many users is seen across
// users through the store; users for whom the source is familiar (an
// office NAT) do not count.
func TestServiceSpray(t *testing.T) {
	f := serve(t, nil, scoring.Options{})
	ctx := context.Background()
	office := geoClient("198.51.100.1", 40.71, -74.0, "US", 7922)
	attacker := geoClient("45.9.9.9", 52.37, 4.89, "NL", 50000)
	var users []string
	for i := range 8 {
		u := fmt.Sprint("user", i)
		users = append(users, u)
		if _, err := f.client.Observe(ctx, &scoringv1.ObserveRequest{Events: []*eventv1.AuthEvent{
			event("login-"+u, u, eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, 0, office)}}); err != nil {
			t.Fatal(err)
		}
	}
	// Every employee pushes from the office: never a spray.
	for i, u := range users {
		resp, err := f.client.Assess(ctx, &scoringv1.AssessRequest{Record: true, Attempt: &scoringv1.Attempt{
			AttemptId: "office-" + u, Tenant: "acme", UserId: u, Time: ts(time.Hour + time.Duration(i)*time.Second), Client: office}})
		if err != nil {
			t.Fatal(err)
		}
		if has(resp.GetAssessment(), engine.SignalPushSpray) != nil {
			t.Fatalf("office push %d flagged as spray", i)
		}
	}
	for i, u := range users {
		resp, err := f.client.Assess(ctx, &scoringv1.AssessRequest{Record: true, Attempt: &scoringv1.Attempt{
			AttemptId: "evil-" + u, Tenant: "acme", UserId: u, Time: ts(2*time.Hour + time.Duration(i)*10*time.Second), Client: attacker}})
		if err != nil {
			t.Fatal(err)
		}
		sig := has(resp.GetAssessment(), engine.SignalPushSpray)
		if (sig != nil) != (i+1 >= 5) {
			t.Fatalf("attacker push to user %d: PUSH_SPRAY = %v", i+1, sig)
		}
		if sig != nil && (sig.GetSpray().GetSourceIp() != "45.9.9.9" || sig.GetSpray().GetDistinctUsers() != int32(i+1)) {
			t.Fatalf("evidence %v", sig.GetSpray())
		}
	}
}

func TestServiceGeoIPEnrichment(t *testing.T) {
	db := geotest.Write(t,
		geotest.Network{CIDR: "198.51.100.0/24", Lat: 40.71, Lon: -74.0, AccuracyKm: 20, Country: "US", City: "New York", ASN: 7922, ASOrg: "COMCAST"},
		geotest.Network{CIDR: "12.12.12.0/24", Lat: -36.85, Lon: 174.76, AccuracyKm: 50, Country: "NZ", City: "Auckland", ASN: 9500, ASOrg: "Vodafone NZ"},
		geotest.Network{CIDR: "164.86.38.0/23", Lat: 38.95, Lon: -77.23, Country: "US", ASN: 22351, ASOrg: "INTELSAT GLOBAL SERVICE CORPORATION"},
	)
	f := serve(t, nil, scoring.Options{GeoIPDB: db})
	ctx := context.Background()
	if _, err := f.client.Observe(ctx, &scoringv1.ObserveRequest{Events: []*eventv1.AuthEvent{
		event("login", "dave", eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, 0, &eventv1.Client{Ip: "198.51.100.7"})}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ip     string
		travel bool
		conf   float64
	}{
		{"12.12.12.12", true, 1},
		{"164.86.38.26", true, 0.05}, // in-flight satellite: regional jump behind an anonymizer
		{"192.0.2.1", false, 0},      // not in the database: unknown
	}
	for _, tt := range tests {
		resp, err := f.client.Assess(ctx, &scoringv1.AssessRequest{Attempt: &scoringv1.Attempt{
			Tenant: "acme", UserId: "dave", Time: ts(10 * time.Minute), Client: &eventv1.Client{Ip: tt.ip}}})
		if err != nil {
			t.Fatal(err)
		}
		sig := has(resp.GetAssessment(), engine.SignalImpossibleTravel)
		if (sig != nil) != tt.travel || (sig != nil && sig.GetConfidence() != tt.conf) {
			t.Fatalf("%s: travel %v", tt.ip, sig)
		}
		if sig != nil && sig.GetTravel().GetPrevious().GetGeo().GetCity() != "New York" {
			t.Fatalf("previous location not enriched: %v", sig.GetTravel())
		}
	}
	if _, err := scoring.Open(scoring.Options{Store: f.st, GeoIPDB: db + ".missing"}); err == nil {
		t.Fatal("a missing database must fail Open")
	}
}

func TestServiceWatchRisk(t *testing.T) {
	f := serve(t, nil, scoring.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := f.client.WatchRisk(ctx, &scoringv1.WatchRiskRequest{Tenant: "acme", UserId: "erin"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || first.GetAssessment().GetScore() != 0 {
		t.Fatalf("initial: %v %v", first, err)
	}
	// Another tenant's erin changes nothing here.
	if _, err := f.client.Observe(ctx, &scoringv1.ObserveRequest{Events: []*eventv1.AuthEvent{{
		EventId: "x", Tenant: "other", UserId: "erin", Type: eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED, Time: ts(0)}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.Observe(ctx, &scoringv1.ObserveRequest{Events: []*eventv1.AuthEvent{
		event("f", "erin", eventv1.EventType_EVENT_TYPE_FRAUD_REPORTED, 0, nil)}}); err != nil {
		t.Fatal(err)
	}
	next, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if has(next.GetAssessment(), engine.SignalFraudReported) == nil {
		t.Fatalf("update lacks FRAUD_REPORTED: %v", next)
	}
}

// A spray that arrives in one Observe batch (an IdP log export) is counted
// across the batch, though the batch is one transaction.
func TestServiceSprayWithinOneObserveBatch(t *testing.T) {
	f := serve(t, nil, scoring.Options{})
	ctx := context.Background()
	office := geoClient("198.51.100.1", 40.71, -74.0, "US", 7922)
	attacker := geoClient("45.9.9.9", 52.37, 4.89, "NL", 50000)
	var history, spray []*eventv1.AuthEvent
	for i := range 6 {
		u := fmt.Sprint("user", i)
		history = append(history, event("login-"+u, u, eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, 0, office))
		if i < 5 {
			spray = append(spray, event("push-"+u, u, eventv1.EventType_EVENT_TYPE_PUSH_SENT, time.Hour+time.Duration(i)*time.Second, attacker))
		}
	}
	observe := func(batch []*eventv1.AuthEvent) {
		t.Helper()
		resp, err := f.client.Observe(ctx, &scoringv1.ObserveRequest{Events: batch})
		if err != nil {
			t.Fatal(err)
		}
		if int(resp.GetApplied()) != len(batch) {
			t.Fatalf("applied %d of %d", resp.GetApplied(), len(batch))
		}
	}
	observe(history)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watch, err := f.client.WatchRisk(wctx, &scoringv1.WatchRiskRequest{Tenant: "acme", UserId: "user4"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil { // the current risk
		t.Fatal(err)
	}
	observe(spray)
	// The fifth push of the batch crossed the threshold, and the fifth
	// user's risk at that push says so.
	update, err := watch.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if sig := has(update.GetAssessment(), engine.SignalPushSpray); sig == nil || sig.GetSpray().GetDistinctUsers() != 5 {
		t.Fatalf("PUSH_SPRAY of the fifth user in the batch: %v", update.GetAssessment().GetSignals())
	}
	// The sixth user's push from the same source is the sixth distinct user.
	resp, err := f.client.Assess(ctx, &scoringv1.AssessRequest{Record: true, Attempt: &scoringv1.Attempt{
		AttemptId: "evil-user5", Tenant: "acme", UserId: "user5", Time: ts(time.Hour + 10*time.Second), Client: attacker}})
	if err != nil {
		t.Fatal(err)
	}
	sig := has(resp.GetAssessment(), engine.SignalPushSpray)
	if sig == nil || sig.GetSpray().GetDistinctUsers() != 6 {
		t.Fatalf("PUSH_SPRAY after a batched spray: %v", sig)
	}
}

func TestServiceTrustsTheIdPsAnonymizerFlag(t *testing.T) {
	f := serve(t, nil, scoring.Options{})
	ctx := context.Background()
	home := &eventv1.Client{Ip: "198.51.100.7", Asn: 7922, Geo: &eventv1.Geo{Latitude: 40.71, Longitude: -74.0, AccuracyKm: 20, Country: "US"}}
	for _, user := range []string{"flagged", "plain"} {
		if _, err := f.client.Observe(ctx, &scoringv1.ObserveRequest{Events: []*eventv1.AuthEvent{
			event("login-"+user, user, eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, 0, home)}}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		user, anonymizer string
		discounted       bool
	}{
		{"flagged", engine.AnonProxy, true},
		{"plain", "", false},
	}
	for _, tt := range tests {
		// Amsterdam ten minutes later, from a network no list knows.
		away := &eventv1.Client{Ip: "203.0.113.77", Asn: 64496, Anonymizer: tt.anonymizer,
			Geo: &eventv1.Geo{Latitude: 52.37, Longitude: 4.89, AccuracyKm: 20, Country: "NL"}}
		resp, err := f.client.Assess(ctx, &scoringv1.AssessRequest{Attempt: &scoringv1.Attempt{
			Tenant: "acme", UserId: tt.user, Time: ts(10 * time.Minute), Client: away}})
		if err != nil {
			t.Fatal(err)
		}
		travel := has(resp.GetAssessment(), engine.SignalImpossibleTravel)
		if travel == nil {
			t.Fatalf("%s: no travel signal for New York to Amsterdam in ten minutes", tt.user)
		}
		if got := travel.GetConfidence() < 1; got != tt.discounted {
			t.Fatalf("%s: travel confidence %v, discounted %v, want %v", tt.user, travel.GetConfidence(), got, tt.discounted)
		}
		anon := has(resp.GetAssessment(), engine.SignalAnonymizer)
		if (anon != nil) != tt.discounted || (anon != nil && anon.GetAnonymizer().GetKind() != engine.AnonProxy) {
			t.Fatalf("%s: anonymizer signal %v", tt.user, anon)
		}
	}
}

// TestServiceEventFromTheFutureDoesNotBlindAUser: an event dated far ahead
// (a bogus record, a broken IdP clock) is taken at the clock plus the
// allowed skew, so the user's real pushes still count.
func TestServiceEventFromTheFutureDoesNotBlindAUser(t *testing.T) {
	f := serve(t, nil, scoring.Options{})
	ctx := context.Background()
	bogus := event("bogus", "erin", eventv1.EventType_EVENT_TYPE_LOGIN_FAILED, 0, nil)
	bogus.Time = timestamppb.New(time.Date(2199, 1, 1, 0, 0, 0, 0, time.UTC))
	if _, err := f.client.Observe(ctx, &scoringv1.ObserveRequest{Events: []*eventv1.AuthEvent{bogus}}); err != nil {
		t.Fatal(err)
	}
	var last *scoringv1.RiskAssessment
	for i := range 6 {
		resp, err := f.client.Assess(ctx, &scoringv1.AssessRequest{Record: true, Attempt: &scoringv1.Attempt{
			AttemptId: fmt.Sprint("e", i), Tenant: "acme", UserId: "erin", Time: ts(time.Duration(i) * 10 * time.Second)}})
		if err != nil {
			t.Fatal(err)
		}
		last = resp.GetAssessment()
	}
	if has(last, engine.SignalPushBurst) == nil {
		t.Fatalf("six pushes in a minute after a future-dated event: %v (score %d)", last.GetSignals(), last.GetScore())
	}
	if at := last.GetTime().AsTime(); at.Year() > base.Year()+1 {
		t.Fatalf("the assessment is dated %v", at)
	}
}

// TestPushSprayAgainstDormantAccounts plays a sprayer who picked accounts
// nobody has used in a long time (or ever): the owners are not there to
// deny, and scoring knows no network of theirs to compare the attacker's
// with. Twelve such accounts pushed from one IP must raise PUSH_SPRAY from
// the threshold on, with the distinct users in the evidence and the
// dormant accounts among them; inline, and from the IdP's log.
func TestPushSprayAgainstDormantAccounts(t *testing.T) {
	// The events below happen in the two hours before this clock.
	f := serve(t, nil, scoring.Options{Now: func() time.Time { return base.Add(2 * time.Hour) }})
	ctx := context.Background()
	attacker := geoClient("45.9.9.9", 52.37, 4.89, "NL", 50000)
	for i := range 12 {
		u := fmt.Sprint("dormant", i)
		resp, err := f.client.Assess(ctx, &scoringv1.AssessRequest{Record: true, Attempt: &scoringv1.Attempt{
			AttemptId: "spray-" + u, Tenant: "acme", UserId: u, Time: ts(time.Duration(i) * 20 * time.Second), Client: attacker}})
		if err != nil {
			t.Fatal(err)
		}
		sig := has(resp.GetAssessment(), engine.SignalPushSpray)
		if (sig != nil) != (i+1 >= 5) {
			t.Fatalf("push to dormant account %d: PUSH_SPRAY = %v", i+1, sig)
		}
		if sig != nil && (sig.GetSpray().GetSourceIp() != "45.9.9.9" || sig.GetSpray().GetDistinctUsers() != int32(i+1) ||
			sig.GetSpray().GetDormantUsers() != int32(i+1) || sig.GetSpray().GetVouchedUsers() != 0 ||
			!strings.Contains(sig.GetSummary(), fmt.Sprintf("%d of them with no history", i+1))) {
			t.Fatalf("evidence %v: %q", sig.GetSpray(), sig.GetSummary())
		}
	}
	// From the IdP's log, out of order as logs come: the pushes were sent,
	// and nobody answered them.
	var sent []*eventv1.AuthEvent
	for i := range 12 {
		u, at := fmt.Sprint("leaver", i), time.Hour+time.Duration(i)*20*time.Second
		sent = append(sent, event("sent-"+u, u, eventv1.EventType_EVENT_TYPE_PUSH_SENT, at, attacker),
			event("expired-"+u, u, eventv1.EventType_EVENT_TYPE_PUSH_TIMED_OUT, at+5*time.Minute, attacker))
	}
	if _, err := f.client.Observe(ctx, &scoringv1.ObserveRequest{Events: sent}); err != nil {
		t.Fatal(err)
	}
	next, err := f.client.Assess(ctx, &scoringv1.AssessRequest{Attempt: &scoringv1.Attempt{
		Tenant: "acme", UserId: "leaver0", Time: ts(time.Hour + 4*time.Minute), Client: attacker}})
	if err != nil {
		t.Fatal(err)
	}
	if sig := has(next.GetAssessment(), engine.SignalPushSpray); sig.GetSpray().GetDistinctUsers() != 12 || sig.GetSpray().GetDormantUsers() != 12 {
		t.Fatalf("after a logged spray of dormant accounts: %v", next.GetAssessment().GetSignals())
	}
}

// TestServiceSharedOfficeOfNewHiresStaysQuiet: a class of new hires signs
// in for the first time through the office NAT, inline (each push asked
// about, then approved on the hire's phone) and as the IdP logs it (in
// two exports, each one Observe batch). IT walks the first table
// through it one by one; then the six at the second table press sign-in
// at once, so six dormant accounts wait on their pushes together, over
// the threshold. The first table's approvals vouch for the office and
// offset them: no PUSH_SPRAY.
func TestServiceSharedOfficeOfNewHiresStaysQuiet(t *testing.T) {
	office := geoClient("198.51.100.1", 40.75, -73.99, "US", 64512)
	phone := geoClient("100.64.7.9", 40.8, -73.9, "US", 21928)
	var pushAt, approveAt []time.Duration
	for i := range 5 {
		pushAt = append(pushAt, time.Hour+time.Duration(i)*20*time.Second)
		approveAt = append(approveAt, pushAt[i]+30*time.Second)
	}
	for i := range 6 {
		pushAt = append(pushAt, time.Hour+3*time.Minute+time.Duration(i)*5*time.Second)
		approveAt = append(approveAt, pushAt[5+i]+time.Duration(40+4*i)*time.Second)
	}
	hires := len(pushAt)
	push := func(i int) time.Duration { return pushAt[i] }
	approve := func(i int) time.Duration { return approveAt[i] }
	clock := scoring.Options{Now: func() time.Time { return base.Add(2 * time.Hour) }}

	t.Run("inline", func(t *testing.T) {
		f := serve(t, nil, clock)
		ctx := context.Background()
		next := 0 // next hire whose approval is due
		for i := range hires {
			for ; next < i && approve(next) <= push(i); next++ {
				u := fmt.Sprint("hire", next)
				ok := event("ok-"+u, u, eventv1.EventType_EVENT_TYPE_PUSH_APPROVED, approve(next), office)
				ok.Responder = phone
				if _, err := f.client.Observe(ctx, &scoringv1.ObserveRequest{Events: []*eventv1.AuthEvent{ok}}); err != nil {
					t.Fatal(err)
				}
			}
			u := fmt.Sprint("hire", i)
			resp, err := f.client.Assess(ctx, &scoringv1.AssessRequest{Record: true, Attempt: &scoringv1.Attempt{
				AttemptId: "first-" + u, Tenant: "acme", UserId: u, Time: ts(push(i)), Client: office}})
			if err != nil {
				t.Fatal(err)
			}
			if sig := has(resp.GetAssessment(), engine.SignalPushSpray); sig != nil {
				t.Fatalf("hire %d: %s", i, sig.GetSummary())
			}
		}
	})

	t.Run("IdP log batches", func(t *testing.T) {
		f := serve(t, nil, clock)
		ctx := context.Background()
		// The first export holds the first table's morning and the second
		// table's pushes; the next one their approvals.
		cut := time.Hour + 3*time.Minute + 30*time.Second
		var first, second []*eventv1.AuthEvent
		for i := range hires {
			u := fmt.Sprint("hire", i)
			ok := event("ok-"+u, u, eventv1.EventType_EVENT_TYPE_PUSH_APPROVED, approve(i), office)
			ok.Responder = phone
			first = append(first, event("sent-"+u, u, eventv1.EventType_EVENT_TYPE_PUSH_SENT, push(i), office))
			if approve(i) < cut {
				first = append(first, ok)
			} else {
				second = append(second, ok)
			}
		}
		byTime := func(a, b *eventv1.AuthEvent) int { return a.GetTime().AsTime().Compare(b.GetTime().AsTime()) }
		slices.SortStableFunc(first, byTime)
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		// The second table's hires have one event in the first export: the
		// update each receives is the risk at its push.
		var watches []scoringv1.ScoringService_WatchRiskClient
		for i := 5; i < hires; i++ {
			w, err := f.client.WatchRisk(wctx, &scoringv1.WatchRiskRequest{Tenant: "acme", UserId: fmt.Sprint("hire", i)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Recv(); err != nil {
				t.Fatal(err)
			}
			watches = append(watches, w)
		}
		observe := func(batch []*eventv1.AuthEvent) {
			t.Helper()
			resp, err := f.client.Observe(ctx, &scoringv1.ObserveRequest{Events: batch})
			if err != nil || int(resp.GetApplied()) != len(batch) {
				t.Fatalf("applied %d of %d: %v", resp.GetApplied(), len(batch), err)
			}
		}
		observe(first)
		for i, w := range watches {
			up, err := w.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if sig := has(up.GetAssessment(), engine.SignalPushSpray); sig != nil {
				t.Fatalf("hire %d: %s", 5+i, sig.GetSummary())
			}
		}
		observe(second)
		// The spray state the exports left is the office's: vouched.
		late, err := f.client.Assess(ctx, &scoringv1.AssessRequest{Attempt: &scoringv1.Attempt{
			Tenant: "acme", UserId: "hire-late", Time: ts(approve(hires-1) + time.Second), Client: office}})
		if err != nil {
			t.Fatal(err)
		}
		if sig := has(late.GetAssessment(), engine.SignalPushSpray); sig != nil {
			t.Fatalf("a late hire after the class: %s", sig.GetSummary())
		}
	})
}

// TestSprayCountsEveryConcurrentPushAndSurvivesRestart plays a sprayer who
// pushes to many users at once, so that their marks on the source commit
// while others read it: with the sources kept in memory (a store only this
// process writes) no mark may be lost, a process started on the same
// store must count the marks already there, and both must count as a
// service reading the store every time does.
func TestSprayCountsEveryConcurrentPushAndSurvivesRestart(t *testing.T) {
	attacker := geoClient("45.9.9.9", 52.37, 4.89, "NL", 50000)
	home := geoClient("198.51.100.1", 40.71, -74.0, "US", 7922)
	const burst = 12
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprint("shared=", shared), func(t *testing.T) {
			st := storetest.Memory(t)
			opts := scoring.Options{SharedStore: shared, Now: func() time.Time { return base.Add(3 * time.Hour) }}
			f := serve(t, st, opts)
			ctx := context.Background()
			for i := range burst + 2 {
				u := fmt.Sprint("user", i)
				if _, err := f.client.Observe(ctx, &scoringv1.ObserveRequest{Events: []*eventv1.AuthEvent{
					event("login-"+u, u, eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, 0, home)}}); err != nil {
					t.Fatal(err)
				}
			}
			push := func(f fixture, i int) *scoringv1.Signal {
				u := fmt.Sprint("user", i)
				resp, err := f.client.Assess(ctx, &scoringv1.AssessRequest{Record: true, Attempt: &scoringv1.Attempt{
					AttemptId: "evil-" + u, Tenant: "acme", UserId: u, Time: ts(2*time.Hour + time.Duration(i)*time.Second), Client: attacker}})
				if err != nil {
					t.Error(err)
					return nil
				}
				return has(resp.GetAssessment(), engine.SignalPushSpray)
			}
			var wg sync.WaitGroup
			for i := range burst {
				wg.Add(1)
				go func() { defer wg.Done(); push(f, i) }()
			}
			wg.Wait()
			if sig := push(f, burst); sig.GetSpray().GetDistinctUsers() != burst+1 {
				t.Fatalf("after %d concurrent pushes the next counts %d users, want %d", burst, sig.GetSpray().GetDistinctUsers(), burst+1)
			}
			// A new process on the same store (a restart) counts them all.
			g := serve(t, st, opts)
			if sig := push(g, burst+1); sig.GetSpray().GetDistinctUsers() != burst+2 {
				t.Fatalf("after a restart the next push counts %d users, want %d", sig.GetSpray().GetDistinctUsers(), burst+2)
			}
		})
	}
}
