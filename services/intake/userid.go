package intake

import (
	"fmt"

	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"google.golang.org/protobuf/proto"
)

// canonicalUsers puts every event's user id in its tenant's canonical form,
// so that every spelling of a user lands on one user's events and scoring
// state, and keeps the spelling received in raw_user_id (a raw_user_id
// already set, by an earlier hop or an export read back, is kept). Events
// that change are copied: the caller's batch is not modified, and a batch
// already canonical is returned as it is. Events must have passed Validate.
func (s *Service) canonicalUsers(events []*eventv1.AuthEvent) ([]*eventv1.AuthEvent, error) {
	var out []*eventv1.AuthEvent
	var v apierr.Violations
	for i, e := range events {
		c := s.opts.UserIDs.Canonical(e.GetTenant(), e.GetUserId())
		if c == e.GetUserId() {
			continue
		}
		if c = s.opts.UserIDs.Check(&v, fmt.Sprintf("events[%d].user_id", i), e.GetTenant(), e.GetUserId()); c == "" {
			continue
		}
		if out == nil {
			out = append(make([]*eventv1.AuthEvent, 0, len(events)), events...)
		}
		e = proto.CloneOf(e)
		if e.RawUserId == "" {
			e.RawUserId = e.UserId
		}
		e.UserId = c
		out[i] = e
	}
	if err := v.Err(); err != nil {
		return events, err
	}
	if out == nil {
		return events, nil
	}
	return out, nil
}
