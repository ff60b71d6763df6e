package mesh

import (
	"github.com/pushbackhq/pushback/connectors/poll"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/services/decision"
	"github.com/pushbackhq/pushback/services/intake"
	"github.com/pushbackhq/pushback/services/notify"
	"github.com/pushbackhq/pushback/services/scoring"
)

// keyspaces is the union of the keyspaces of the services cfg runs: the
// store refuses every other key, so a key no service declared is never
// written unindexed.
func keyspaces(cfg Config) []store.Keyspace {
	var ks []store.Keyspace
	for _, s := range cfg.Services {
		switch s {
		case Intake:
			ks = append(ks, intake.Keyspaces()...)
			ks = append(ks, poll.Keyspaces()...)
		case Scoring:
			ks = append(ks, scoring.Keyspaces()...)
		case Decision:
			ks = append(ks, decision.Keyspaces()...)
		case Notify:
			ks = append(ks, notify.Keyspaces()...)
		}
	}
	return ks
}
