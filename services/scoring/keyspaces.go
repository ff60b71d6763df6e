package scoring

import "github.com/pushbackhq/pushback/pkg/store"

// Keyspaces declares the keys scoring writes. The hash tag of a key is its
// prefix and the next two parts (tenant and user, tenant and source kind),
// the layout these keys have always had on Redis.
func Keyspaces() []store.Keyspace {
	return []store.Keyspace{
		// scoring/user/{tenant}/{user}: a user's state.
		{Prefix: "scoring/user/", HashTagParts: 2},
		// scoring/source/{tenant}/{ip|asn}/{source}[/{user hash}]: a
		// source's state and its marks, scanned to count the users it
		// pushed to. A user's own mark is read on a push from a source the
		// user is not familiar with, which seldom has one yet.
		{Prefix: "scoring/source/", Scannable: true, HashTagParts: 2, PresumeAbsent: true},
		// The risk-change feed, read in id order (changes.go).
		{Prefix: changePrefix, Scannable: true, HashTagParts: 2},
	}
}
