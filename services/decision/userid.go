package decision

import (
	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"google.golang.org/protobuf/proto"
)

// canonicalUser returns req with its user id in the tenant's canonical
// form (a copy when that differs, req itself otherwise), or an
// InvalidArgument when the canonical form is not a valid id.
func (s *Service) canonicalUser(req *decisionv1.DecideRequest) (*decisionv1.DecideRequest, error) {
	var v apierr.Violations
	c := s.opts.UserIDs.Check(&v, "user_id", req.GetTenant(), req.GetUserId())
	if err := v.Err(); err != nil {
		return nil, err
	}
	if c == req.GetUserId() {
		return req, nil
	}
	req = proto.CloneOf(req)
	req.UserId = c
	return req, nil
}

// userOf returns the canonical form of a user id an operator or a reader
// named (ListDecisions, ClearCooldown), so that any spelling finds the
// user. user has passed the contract's rules; one whose canonical form is
// not an id records a violation of field.
func (s *Service) userOf(v *apierr.Violations, field, tenant, user string) string {
	return s.opts.UserIDs.Check(v, field, tenant, user)
}

// rawIfChanged is what a record keeps of the spelling sent: nothing when
// it already was the canonical form.
func rawIfChanged(raw, canonical string) string {
	if raw == canonical {
		return ""
	}
	return raw
}
