package scoring

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"github.com/pushbackhq/pushback/pkg/httpapi"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
)

// RiskWatcher is the part of the scoring service the risk feed over HTTP
// calls.
type RiskWatcher interface {
	WatchRisk(ctx context.Context, in *scoringv1.WatchRiskRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[scoringv1.WatchRiskResponse], error)
}

// FeedPath is where the tenant-wide risk feed is served as Server-Sent
// Events.
const FeedPath = "/v1/risk-feed"

// sseHeartbeat is how often an idle stream sends a comment, so that
// proxies keep it open and a dead client is noticed.
const sseHeartbeat = 15 * time.Second

// FeedHandler serves a tenant's risk changes as Server-Sent Events:
//
//	GET /v1/risk-feed?tenant=acme&min_score=50&signals=PUSH_BURST,IMPOSSIBLE_TRAVEL
//
// Each change is an event "risk" whose id is the change id and whose data
// is the WatchRiskResponse as JSON. A client that reconnects sends the
// last id it saw as Last-Event-ID (EventSource does) or as ?after=, and
// misses nothing the feed still keeps. Bad parameters answer 400 with the
// JSON error body before the stream starts; an error after it is an event
// "error".
func FeedHandler(w RiskWatcher) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			rw.Header().Set("Allow", "GET")
			httpapi.WriteJSON(rw, http.StatusMethodNotAllowed, map[string]string{"code": "METHOD_NOT_ALLOWED", "message": "use GET"})
			return
		}
		q := r.URL.Query()
		req := &scoringv1.WatchRiskRequest{Tenant: q.Get("tenant"), After: q.Get("after")}
		if id := r.Header.Get("Last-Event-ID"); id != "" {
			req.After = id
		}
		if m := q.Get("min_score"); m != "" {
			n, err := strconv.Atoi(m)
			if err != nil {
				httpapi.BadRequest(rw, "min_score", "is not a number")
				return
			}
			req.MinScore = int32(max(min(n, 1000), -1))
		}
		for _, c := range strings.Split(q.Get("signals"), ",") {
			if c = strings.TrimSpace(c); c != "" {
				req.Signals = append(req.Signals, c)
			}
		}
		if err := ValidateTenantWatch(req); err != nil {
			httpapi.WriteError(rw, err)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stream, err := w.WatchRisk(ctx, req)
		if err != nil {
			httpapi.WriteError(rw, err)
			return
		}
		rc := http.NewResponseController(rw)
		h := rw.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		rw.WriteHeader(http.StatusOK)
		write := func(s string) bool {
			// A stream outlives the server's write timeout: each write
			// gets its own.
			_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := fmt.Fprint(rw, s); err != nil {
				return false
			}
			return rc.Flush() == nil
		}
		if !write(": pushback risk feed\n\n") {
			return
		}
		msgs := make(chan *scoringv1.WatchRiskResponse)
		errs := make(chan error, 1)
		go func() {
			for {
				m, err := stream.Recv()
				if err != nil {
					errs <- err
					return
				}
				select {
				case msgs <- m:
				case <-ctx.Done():
					return
				}
			}
		}()
		beat := time.NewTicker(sseHeartbeat)
		defer beat.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-beat.C:
				if !write(": keep-alive\n\n") {
					return
				}
			case err := <-errs:
				if ctx.Err() == nil {
					b, _ := json.Marshal(httpapi.ErrorBodyOf(err))
					write("event: error\ndata: " + string(b) + "\n\n")
				}
				return
			case m := <-msgs:
				b, err := protojson.Marshal(m)
				if err != nil {
					continue
				}
				if !write("id: " + m.GetChangeId() + "\nevent: risk\ndata: " + string(b) + "\n\n") {
					return
				}
			}
		}
	})
}
