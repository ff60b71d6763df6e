package decision

import "github.com/pushbackhq/pushback/pkg/store"

// Keyspaces declares the keys decision writes (records.go, responder.go).
// The hash tag of a key is its prefix and the next two parts (tenant and
// user), the layout these keys have always had on Redis.
func Keyspaces() []store.Keyspace {
	return []store.Keyspace{
		{Prefix: "decision/id/", HashTagParts: 2},
		// The index of a user's decisions, listed newest first.
		{Prefix: "decision/user/", Scannable: true, HashTagParts: 2},
		// Attempt ids, read to refuse a reuse: almost never there.
		{Prefix: "decision/attempt/", HashTagParts: 2, PresumeAbsent: true},
		// A user's guard state: absent for a user with no push in the
		// guard's horizon, and a wrong guess costs no more than a read.
		{Prefix: "decision/cooldown/", HashTagParts: 2, PresumeAbsent: true},
		// Operators' clearings of a user's cooldowns (audit), newest first.
		{Prefix: "decision/clearance/", Scannable: true, HashTagParts: 2},
		// The responder's cursor and the causes it has seen.
		{Prefix: "decision/respond/", HashTagParts: 2},
	}
}
