package intake

import "github.com/pushbackhq/pushback/pkg/store"

// Keyspaces declares the keys intake writes (the layout is described in
// service.go). The hash tag of a key is its prefix and the next two parts
// (tenant and user), the layout these keys have always had on Redis.
// Pollers that feed intake declare their own (connectors/poll).
func Keyspaces() []store.Keyspace {
	return []store.Keyspace{
		// De-duplication keys, read for every event: a duplicate is rare.
		{Prefix: "intake/seen/", HashTagParts: 2, PresumeAbsent: true},
		// A user's events, listed in time order.
		{Prefix: "intake/event/", Scannable: true, HashTagParts: 2},
		// Batches not yet forwarded, drained in order after a restart.
		{Prefix: pendingPrefix, Scannable: true, HashTagParts: 2},
		{Prefix: legacyMarkPrefix, Scannable: true, HashTagParts: 2},
	}
}
