package poll

import "github.com/pushbackhq/pushback/pkg/store"

// Keyspaces declares the keys pollers write, leases and cursors
// (LeasePrefix, CursorPrefix), under intake's part of the store.
func Keyspaces() []store.Keyspace {
	return []store.Keyspace{{Prefix: "intake/poll/", HashTagParts: 2}}
}
