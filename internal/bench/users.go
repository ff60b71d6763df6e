package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	scoringv1 "github.com/pushbackhq/pushback/gen/pushback/scoring/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// UsersResult is the memory of a mesh that holds the state of many users.
type UsersResult struct {
	Users         int           `json:"users"`
	Elapsed       time.Duration `json:"elapsed_ns"`
	BaselineRSS   int64         `json:"baseline_rss_bytes"`
	RSS           int64         `json:"rss_bytes"`
	PeakRSS       int64         `json:"peak_rss_bytes"`
	GoHeap        uint64        `json:"go_heap_bytes"`
	DiskBytes     int64         `json:"disk_bytes"`
	BytesPerUser  float64       `json:"rss_bytes_per_user"`
	MarginalBytes float64       `json:"marginal_rss_bytes_per_user"`
}

// RSS reads this process's resident and peak resident set sizes (Linux).
func RSS() (rss, peak int64) {
	f := procStatus("VmRSS:", "VmHWM:")
	return f["VmRSS:"], f["VmHWM:"]
}

// ResidentParts reads how much of this process's resident set is its own
// memory (anonymous) and how much maps files (Linux).
func ResidentParts() (anon, file int64) {
	f := procStatus("RssAnon:", "RssFile:")
	return f["RssAnon:"], f["RssFile:"]
}

// procStatus reads the named kB fields of /proc/self/status, in bytes.
func procStatus(names ...string) map[string]int64 {
	out := make(map[string]int64, len(names))
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !slices.Contains(names, f[0]) {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		out[f[0]] = kb << 10
	}
	return out
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// Users gives n users a realistic history through ScoringService/Observe
// (a login and a few pushes each, from their own device, IP and country)
// and reports the memory of this process, which must run the mesh
// (pushback bench --spawn=one).
func Users(ctx context.Context, conns []*grpc.ClientConn, n, concurrency int, dataDir string, progress func(done int)) (UsersResult, error) {
	runtime.GC()
	debug.FreeOSMemory()
	base, _ := RSS()
	start := time.Now()
	const batch = 500
	var next, done atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	now := time.Now().Add(-30 * time.Minute)
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := scoringv1.NewScoringServiceClient(conns[w%len(conns)])
			for {
				from := int(next.Add(batch/4)) - batch/4
				if from >= n || ctx.Err() != nil {
					return
				}
				to := min(from+batch/4, n)
				req := &scoringv1.ObserveRequest{}
				for u := from; u < to; u++ {
					ci := BenignClient(u)
					id := BenignUser(u)
					for i, t := range []eventv1.EventType{eventv1.EventType_EVENT_TYPE_LOGIN_SUCCEEDED, eventv1.EventType_EVENT_TYPE_PUSH_SENT, eventv1.EventType_EVENT_TYPE_PUSH_APPROVED, eventv1.EventType_EVENT_TYPE_PUSH_SENT} {
						req.Events = append(req.Events, &eventv1.AuthEvent{EventId: fmt.Sprint(id, "-", i), UserId: id, Type: t,
							Time: timestamppb.New(now.Add(time.Duration(i) * time.Minute)), AppId: "vpn", Factor: eventv1.Factor_FACTOR_PUSH, Client: ci})
					}
				}
				if _, err := client.Observe(ctx, req); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				if d := done.Add(int64(to - from)); progress != nil {
					progress(int(d))
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return UsersResult{}, firstErr
	}
	elapsed := time.Since(start)
	runtime.GC()
	debug.FreeOSMemory()
	rss, peak := RSS()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res := UsersResult{Users: n, Elapsed: elapsed, BaselineRSS: base, RSS: rss, PeakRSS: peak, GoHeap: ms.HeapAlloc, DiskBytes: dirSize(dataDir)}
	if n > 0 {
		res.BytesPerUser = float64(rss) / float64(n)
		res.MarginalBytes = float64(rss-base) / float64(n)
	}
	return res, nil
}

// BenignUser is the id of benign user u, the same in every mode.
func BenignUser(u int) string { return fmt.Sprint("user-", u) }

// BenignClient is where benign user u signs in from: their own device, IP
// and place, on one of 50 networks. Users gives them a history from it, and
// Decide's benign attempts come from it, as a real user's do.
func BenignClient(u int) *eventv1.Client {
	return &eventv1.Client{Ip: fmt.Sprintf("10.%d.%d.%d", u>>16&255, u>>8&255, u&255), DeviceId: fmt.Sprint("dev-", u), Asn: uint32(64500 + u%50),
		Geo: &eventv1.Geo{Latitude: 40 + float64(u%100)/10, Longitude: -74 + float64(u%70)/10, AccuracyKm: 20, Country: "US"}}
}
