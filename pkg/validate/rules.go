package validate

import (
	"context"
	"errors"
	"strings"
	"sync"

	"buf.build/go/protovalidate"
	eventv1 "github.com/pushbackhq/pushback/gen/pushback/event/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// The rules a request must meet are declared in its contract (the
// buf.validate options of proto/pushback/...), where a hook author reads
// them; Request checks them. The server checks every request once, in the
// interceptor that runs after the guard, so a caller without credentials
// learns nothing about its request. A handler calls Request as well: it
// costs nothing when the interceptor already checked that message, and
// keeps a handler called without the interceptor (a unit test, an
// embedding program) from trusting what it was given.

var validator = sync.OnceValues(func() (protovalidate.Validator, error) { return protovalidate.New() })

// authEvent is the message of the batches (Ingest, Observe): a batch over
// its size limit is answered TOO_LARGE, as it was before the rules moved
// to the contracts, not as a field violation.
var authEvent = (&eventv1.AuthEvent{}).ProtoReflect().Descriptor().FullName()

// idPattern is the rule of every identifier in the contracts: no C0 or C1
// control, no bidirectional formatting character (see hasControl).
const idPattern = `^[^\p{Cc}\x{061c}\x{200e}\x{200f}\x{202a}-\x{202e}\x{2066}-\x{2069}]*$`

type checkedKey struct{}

// checked remembers the last message the stream interceptor passed, for
// the handler that receives it.
type checked struct {
	mu   sync.Mutex
	last proto.Message
}

// Request returns an InvalidArgument naming every field of msg that breaks
// the rules of its contract, or nil. A message the interceptor already
// checked in this call (ctx is its context) is not checked again.
func Request(ctx context.Context, msg proto.Message) error {
	switch c := ctx.Value(checkedKey{}).(type) {
	case proto.Message:
		if c == msg {
			return nil
		}
	case *checked:
		c.mu.Lock()
		last := c.last
		c.mu.Unlock()
		if last == msg {
			return nil
		}
	}
	return Check(msg)
}

// Check returns an InvalidArgument naming every field of msg that breaks
// the rules of its contract, or nil.
func Check(msg proto.Message) error {
	v, err := validator()
	if err != nil {
		return apierr.Internal()
	}
	return statusOf(v.Validate(msg))
}

// statusOf turns protovalidate's answer into the error every bad request
// gets: InvalidArgument with a BadRequest field violation per broken rule,
// each naming the field path ("attempt.user_id", "groups[3]").
func statusOf(err error) error {
	if err == nil {
		return nil
	}
	var ve *protovalidate.ValidationError
	if !errors.As(err, &ve) {
		// A rule that does not compile or cannot be evaluated is a fault of
		// the contract, not of the caller.
		return apierr.Internal()
	}
	list := make([]apierr.FieldViolation, 0, len(ve.Violations))
	for _, v := range ve.Violations {
		field := protovalidate.FieldPathString(v.Proto.GetField())
		if v.Proto.GetRuleId() == "repeated.max_items" && v.FieldDescriptor.Message() != nil &&
			v.FieldDescriptor.Message().FullName() == authEvent {
			return apierr.TooLarge(field, v.FieldValue.List().Len(), int(v.RuleValue.Uint()))
		}
		desc := strings.TrimPrefix(v.Proto.GetMessage(), "value ")
		if v.Proto.GetRuleId() == "string.pattern" && v.RuleValue.String() == idPattern {
			desc = "contains a control or bidirectional formatting character"
		}
		list = append(list, apierr.FieldViolation{Field: field, Description: desc})
	}
	return apierr.InvalidArgument(list...)
}

// deferred reports whether the interceptor leaves msg to its handler's own
// check: a message with unknown fields may be one the codec could not
// decode, which the codec's check, later in the chain, answers for.
func deferred(msg proto.Message) bool { return len(msg.ProtoReflect().GetUnknown()) > 0 }

// SelfChecked is a service that holds the requests of some of its methods
// to their contract's rules itself, and that the interceptor leaves them
// to: intake, whose batches also arrive in-process from the pollers, and
// which counts the events it refuses.
type SelfChecked interface {
	// ChecksItself reports whether the service checks the requests of
	// the method (its full name, "/package.Service/Method").
	ChecksItself(fullMethod string) bool
}

func checksItself(srv any, fullMethod string) bool {
	sc, ok := srv.(SelfChecked)
	return ok && sc.ChecksItself(fullMethod)
}

// UnaryServerInterceptor checks every request against the rules of its
// contract. Chain it after authentication.
//
// trusted, when set, names the calls whose requests need no check: those
// a service of this process built itself from requests already checked
// (see rpc.FromTrustedPeer). Their handlers take them as checked.
func UnaryServerInterceptor(trusted func(context.Context) bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if checksItself(info.Server, info.FullMethod) {
			return handler(ctx, req)
		}
		if m, ok := req.(proto.Message); ok && !deferred(m) {
			if trusted == nil || !trusted(ctx) {
				if err := Check(m); err != nil {
					return nil, err
				}
			}
			ctx = context.WithValue(ctx, checkedKey{}, m)
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor checks every message a client sends on a stream
// against the rules of its contract. Chain it after authentication.
func StreamServerInterceptor(trusted func(context.Context) bool) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if checksItself(srv, info.FullMethod) || trusted != nil && trusted(ss.Context()) {
			return handler(srv, ss)
		}
		c := &checked{}
		return handler(srv, &checkedStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), checkedKey{}, c), checked: c})
	}
}

type checkedStream struct {
	grpc.ServerStream
	ctx     context.Context
	checked *checked
}

func (s *checkedStream) Context() context.Context { return s.ctx }

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	msg, ok := m.(proto.Message)
	if !ok || deferred(msg) {
		return nil
	}
	if err := Check(msg); err != nil {
		return err
	}
	s.checked.mu.Lock()
	s.checked.last = msg
	s.checked.mu.Unlock()
	return nil
}
