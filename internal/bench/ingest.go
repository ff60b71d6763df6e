package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	intakev1 "github.com/pushbackhq/pushback/gen/pushback/intake/v1"
	"github.com/pushbackhq/pushback/pkg/store"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// IngestResult is the throughput of one ingest target in events per second.
type IngestResult struct {
	Target       string        `json:"target"`
	Events       int64         `json:"events"`
	Elapsed      time.Duration `json:"elapsed_ns"`
	EventsPerSec float64       `json:"events_per_sec"`
	Errors       int64         `json:"errors"`
}

// makeEvents returns batch events of one worker's n-th batch: pushes to
// the benign users, each from their own device, IP and network
// (BenignClient), as an IdP's log carries them. (Until this measurement
// every event came from one IP: a push spray to every user, which measured
// the spray path and the risk feed, not ingest.)
func makeEvents(run string, worker, n, batch, users int) []*eventv1.AuthEvent {
	out := make([]*eventv1.AuthEvent, batch)
	now := time.Now()
	for i := range out {
		u := (worker*7919 + n*batch + i) % users
		out[i] = &eventv1.AuthEvent{
			EventId: fmt.Sprintf("%s-%d-%d-%d", run, worker, n, i),
			UserId:  fmt.Sprint("user-", u),
			Type:    eventv1.EventType_EVENT_TYPE_PUSH_SENT,
			Time:    timestamppb.New(now),
			AppId:   "vpn",
			Factor:  eventv1.Factor_FACTOR_PUSH,
			Client:  BenignClient(u),
			Source:  &eventv1.Source{Idp: "bench"},
		}
	}
	return out
}

// IngestStream streams batches through IntakeService/IngestStream, one
// stream per worker, for the duration.
func IngestStream(ctx context.Context, conns []*grpc.ClientConn, o Options, batch int) IngestResult {
	run := fmt.Sprintf("i%x", time.Now().UnixNano())
	var events, errs atomic.Int64
	mctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	// Each stream carries a few batches and is then closed for its total,
	// so the client never runs far ahead of what intake has stored.
	const batchesPerStream = 8
	for w := 0; w < o.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := intakev1.NewIntakeServiceClient(conns[w%len(conns)])
			for n := 0; mctx.Err() == nil; {
				stream, err := client.IngestStream(context.WithoutCancel(ctx))
				if err != nil {
					errs.Add(1)
					return
				}
				for i := 0; i < batchesPerStream && mctx.Err() == nil; i, n = i+1, n+1 {
					if err := stream.Send(&intakev1.IngestStreamRequest{Events: makeEvents(run, w, n, batch, o.Users)}); err != nil {
						errs.Add(1)
						return
					}
				}
				resp, err := stream.CloseAndRecv()
				if err != nil {
					errs.Add(1)
					return
				}
				events.Add(resp.GetAccepted())
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	return IngestResult{Target: "ingest-stream", Events: events.Load(), Elapsed: el, Errors: errs.Load(), EventsPerSec: float64(events.Load()) / el.Seconds()}
}

// RawBadger writes the same events straight into a badger database in
// batched transactions: the ceiling intake's durable write is compared to.
func RawBadger(ctx context.Context, dir string, o Options, batch int) (IngestResult, error) {
	st, err := store.OpenBadger(store.BadgerOptions{Dir: dir})
	if err != nil {
		return IngestResult{}, err
	}
	defer st.Close()
	db := st.DB()
	run := fmt.Sprintf("r%x", time.Now().UnixNano())
	var events, errs atomic.Int64
	mctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < o.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; mctx.Err() == nil; n++ {
				evs := makeEvents(run, w, n, batch, o.Users)
				err := db.Update(func(txn *badger.Txn) error {
					for _, e := range evs {
						b, err := proto.Marshal(e)
						if err != nil {
							return err
						}
						if err := txn.Set([]byte("bench/"+e.GetUserId()+"/"+e.GetEventId()), b); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					errs.Add(1)
					continue
				}
				events.Add(int64(len(evs)))
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	return IngestResult{Target: "raw-badger", Events: events.Load(), Elapsed: el, Errors: errs.Load(), EventsPerSec: float64(events.Load()) / el.Seconds()}, nil
}
