package notify

import "github.com/pushbackhq/pushback/pkg/store"

// Keyspaces declares the keys notify writes (the layout is described in
// service.go). The hash tag of a key is its prefix and the next two parts,
// the layout these keys have always had on Redis.
func Keyspaces() []store.Keyspace {
	return []store.Keyspace{
		// Deliveries, listed by id.
		{Prefix: "notify/delivery/", Scannable: true, HashTagParts: 2},
		// The outbox's due entries, taken in time order (queue.go).
		{Prefix: duePrefix, Scannable: true, HashTagParts: 2},
		// Idempotency keys of Send: a retried call is rare.
		{Prefix: "notify/key/", HashTagParts: 2, PresumeAbsent: true},
		{Prefix: "notify/incident/", HashTagParts: 2},
		// Incident records, listed newest first (incidents.go).
		{Prefix: incidentRecordPrefix, Scannable: true, HashTagParts: 2},
		{Prefix: "notify/rate/", HashTagParts: 2},
		{Prefix: "notify/brake/", HashTagParts: 2},
		// Held responses of a tenant, listed for review (respond.go).
		{Prefix: "notify/held/", Scannable: true, HashTagParts: 2},
	}
}
