package decision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"

	decisionv1 "github.com/pushbackhq/pushback/gen/pushback/decision/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/auth"
	"github.com/pushbackhq/pushback/pkg/ids"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/validate"
	"github.com/pushbackhq/pushback/services/decision/guard"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Key layout (all under "decision/"):
//
//	decision/id/{id}                             DecisionRecord
//	decision/user/{tenant}/{user}/{ms:020d}/{id} id (index by user and time)
//	decision/attempt/{tenant}/{user}/{attempt}   id (idempotency)
//	decision/cooldown/{tenant}/{user}            guard.State (attempts, cooldown)
//	decision/clearance/{tenant}/{user}/{id}       CooldownClearance (audit; ids.New)
func decisionKey(id string) []byte { return []byte("decision/id/" + id) }

func userPrefix(tenant, user string) []byte {
	return store.JoinKey("decision/user", store.KeyPart(tenant), store.KeyPart(user), "")
}

func userIndexKey(tenant, user string, at time.Time, id string) []byte {
	ms := at.UnixMilli()
	if ms < 0 {
		return fmt.Appendf(userPrefix(tenant, user), "%020d/%s", ms, id)
	}
	var buf [20]byte
	return store.JoinKey("decision/user", store.KeyPart(tenant), store.KeyPart(user), string(store.AppendUint(buf[:0], uint64(ms), 10, 20)), id)
}

func attemptKey(req *decisionv1.DecideRequest) []byte {
	return store.JoinKey("decision/attempt", store.KeyPart(req.GetTenant()), store.KeyPart(req.GetUserId()), req.GetAttemptId())
}

// clearancePrefix starts the keys of the audit records of a user's
// cooldowns cleared by operators.
func clearancePrefix(tenant, user string) []byte {
	return fmt.Appendf(nil, "decision/clearance/%s/%s/", store.KeyPart(tenant), store.KeyPart(user))
}

// clearanceKey orders a user's clearings by time: an id that sorts by its
// millisecond and keeps two clearings of one millisecond apart.
func clearanceKey(tenant, user string, at time.Time) []byte {
	return append(clearancePrefix(tenant, user), ids.New(at)...)
}

func cooldownKey(tenant, user string) []byte {
	return store.JoinKey("decision/cooldown", store.KeyPart(tenant), store.KeyPart(user))
}

func (s *Service) load(ctx context.Context, id string) (*decisionv1.DecisionRecord, error) {
	b, err := s.opts.Store.Get(ctx, decisionKey(id))
	if err != nil {
		return nil, err
	}
	rec := &decisionv1.DecisionRecord{}
	if err := proto.Unmarshal(b, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// GetDecision implements the RPC.
func (s *Service) GetDecision(ctx context.Context, req *decisionv1.GetDecisionRequest) (*decisionv1.GetDecisionResponse, error) {
	if err := validate.Request(ctx, req); err != nil {
		return nil, err
	}
	rec, err := s.load(ctx, req.GetDecisionId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("decision", req.GetDecisionId())
	}
	if err != nil {
		s.log.ErrorContext(ctx, "load decision", slog.Any("error", err))
		return nil, apierr.StoreUnavailable()
	}
	return &decisionv1.GetDecisionResponse{Decision: rec}, nil
}

// Page sizes of ListDecisions.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// ListDecisions implements the RPC: newest first, by user and time range.
// The page token is the opaque index key of the last decision returned.
func (s *Service) ListDecisions(ctx context.Context, req *decisionv1.ListDecisionsRequest) (*decisionv1.ListDecisionsResponse, error) {
	if err := validate.Request(ctx, req); err != nil {
		return nil, err
	}
	var v apierr.Violations
	prefix := userPrefix(req.GetTenant(), s.userOf(&v, "user_id", req.GetTenant(), req.GetUserId()))
	var after []byte
	if tok := req.GetPageToken(); tok != "" {
		b, ok := store.ParseCursor(tok, prefix)
		if !ok {
			v.Add("page_token", "is not a token from an earlier response for this user")
		}
		after = b
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = DefaultPageSize
	}
	if after == nil && req.GetEndTime() != nil {
		// Start just below the end bound (exclusive).
		after = fmt.Appendf(append([]byte(nil), prefix...), "%020d", req.GetEndTime().AsTime().UnixMilli())
	}
	var startMs int64 = -1
	if req.GetStartTime() != nil {
		startMs = req.GetStartTime().AsTime().UnixMilli()
	}
	items, err := s.opts.Store.Scan(ctx, store.ScanOptions{Prefix: prefix, After: after, Limit: size + 1, Reverse: true})
	if err != nil {
		s.log.ErrorContext(ctx, "list decisions", slog.Any("error", err))
		return nil, apierr.StoreUnavailable()
	}
	resp := &decisionv1.ListDecisionsResponse{}
	for i, it := range items {
		var ms int64
		if _, err := fmt.Sscanf(string(it.Key[len(prefix):]), "%020d/", &ms); err == nil && ms < startMs {
			break
		}
		if i == size {
			resp.NextPageToken = store.Cursor(items[i-1].Key)
			break
		}
		rec, err := s.load(ctx, string(it.Value))
		if errors.Is(err, store.ErrNotFound) {
			continue // expired between the index read and the record read
		}
		if err != nil {
			s.log.ErrorContext(ctx, "load decision", slog.Any("error", err))
			return nil, apierr.StoreUnavailable()
		}
		resp.Decisions = append(resp.Decisions, rec)
	}
	return resp, nil
}

// ClearCooldown implements the RPC. The clearing and its audit record
// (who, why, when) are written in one transaction: a cooldown never ends
// without the record of who ended it.
func (s *Service) ClearCooldown(ctx context.Context, req *decisionv1.ClearCooldownRequest) (*decisionv1.ClearCooldownResponse, error) {
	if err := validate.Request(ctx, req); err != nil {
		return nil, err
	}
	var v apierr.Violations
	if strings.TrimSpace(req.GetReason()) == "" {
		v.Add("reason", "is required: say why the cooldown ends (it is kept in the audit log)")
	} else if !auditText(req.GetReason()) {
		v.Add("reason", "holds control characters (line breaks and tabs are allowed)")
	}
	if strings.ContainsAny(req.GetOperator(), "\u2028\u2029") {
		// The contract's pattern refuses control characters; these break
		// lines too.
		v.Add("operator", "holds a line or paragraph separator")
	}
	user := s.userOf(&v, "user_id", req.GetTenant(), req.GetUserId())
	if err := v.Err(); err != nil {
		return nil, err
	}
	rec := &decisionv1.CooldownClearance{Tenant: req.GetTenant(), UserId: user, Reason: req.GetReason(),
		Operator: strings.TrimSpace(req.GetOperator()), Credential: auth.CallerFingerprint(ctx)}
	if err := s.clearCooldown(ctx, rec); err != nil {
		s.log.ErrorContext(ctx, "clear cooldown", slog.Any("error", err))
		return nil, apierr.StoreUnavailable()
	}
	if rec.GetWasActive() {
		s.count.CooldownsCleared.Add(1)
	}
	s.log.InfoContext(ctx, "cooldown cleared by operator", slog.String("tenant", req.GetTenant()),
		slog.String("user_hash", s.opts.Redactor.User(user)), slog.Bool("was_active", rec.GetWasActive()), slog.String("reason", req.GetReason()),
		slog.String("operator", rec.GetOperator()), slog.String("credential", rec.GetCredential()))
	return &decisionv1.ClearCooldownResponse{Cleared: rec.GetWasActive(), Clearance: rec}, nil
}

// clearCooldown ends rec's user's cooldown and stores rec, completed with
// the time and whether a cooldown was active.
func (s *Service) clearCooldown(ctx context.Context, rec *decisionv1.CooldownClearance) error {
	at := s.now()
	now := at.UnixMilli()
	rec.ClearedAt = timestamppb.New(at)
	k := cooldownKey(rec.GetTenant(), rec.GetUserId())
	var st guard.State
	err := s.opts.Store.Update(ctx, func(tx store.Txn) error {
		b, err := tx.Get(k)
		if errors.Is(err, store.ErrNotFound) {
			st = guard.State{}
		} else if err != nil {
			return err
		} else {
			st = decodeGuard(b)
		}
		// This process may know of a cooldown the store does not hold yet.
		s.guards.update(string(k), now, func(mem *guard.State) { st.Merge(*mem, now) })
		rec.WasActive = st.Active(now)
		// The clearing is kept, not the key deleted: a copy of the state
		// elsewhere (another replica's memory) merges into it, and must not
		// bring the cooldown back.
		st.Clear(now + 1)
		if err := tx.Set(k, st.Marshal(), guard.Horizon+time.Duration(max(st.Cooldown.Until-now, 0))*time.Millisecond); err != nil {
			return err
		}
		b, err = proto.Marshal(rec)
		if err != nil {
			return err
		}
		return tx.Set(clearanceKey(rec.GetTenant(), rec.GetUserId(), at), b, s.opts.Retention)
	})
	if err == nil {
		s.guards.update(string(k), now, func(mem *guard.State) { mem.Clear(now + 1) })
	}
	return err
}

// MaxClearances is how many of a user's clearings GetCooldown returns.
const MaxClearances = 20

// GetCooldown implements the RPC: the cooldown as this process and the
// store know it, merged as Decide would merge them, without recording an
// attempt.
func (s *Service) GetCooldown(ctx context.Context, req *decisionv1.GetCooldownRequest) (*decisionv1.GetCooldownResponse, error) {
	if err := validate.Request(ctx, req); err != nil {
		return nil, err
	}
	var v apierr.Violations
	user := s.userOf(&v, "user_id", req.GetTenant(), req.GetUserId())
	if err := v.Err(); err != nil {
		return nil, err
	}
	now := s.now().UnixMilli()
	k := cooldownKey(req.GetTenant(), user)
	var st guard.State
	b, err := s.opts.Store.Get(ctx, k)
	switch {
	case err == nil:
		st = decodeGuard(b)
	case !errors.Is(err, store.ErrNotFound):
		s.log.ErrorContext(ctx, "read cooldown", slog.Any("error", err))
		return nil, apierr.StoreUnavailable()
	}
	s.guards.peek(string(k), func(mem *guard.State) { st.Merge(*mem, now) })
	resp := &decisionv1.GetCooldownResponse{UserId: user}
	if st.Active(now) {
		resp.Active = true
		resp.Until = timestamppb.New(time.UnixMilli(st.Cooldown.Until))
		resp.Since = timestamppb.New(time.UnixMilli(st.Cooldown.Since))
		resp.Level = int32(min(st.Cooldown.Level, 1<<30))
		resp.BoundIps, resp.BoundAsns, resp.BoundDevices = st.Bound()
	}
	items, err := s.opts.Store.Scan(ctx, store.ScanOptions{Prefix: clearancePrefix(req.GetTenant(), user), Limit: MaxClearances, Reverse: true})
	if err != nil {
		s.log.ErrorContext(ctx, "list clearances", slog.Any("error", err))
		return nil, apierr.StoreUnavailable()
	}
	for _, it := range items {
		c := &decisionv1.CooldownClearance{}
		if err := proto.Unmarshal(it.Value, c); err != nil {
			continue // a record this version cannot read is skipped, not fatal
		}
		resp.Clearances = append(resp.Clearances, c)
	}
	return resp, nil
}

// auditText reports whether an audit record's free text is free of
// control characters (but line breaks and tabs) and bidirectional
// formatting characters, which would let a caller rewrite how the record
// reads in a terminal or on the console's page. The console checks the
// same; a caller of the RPC must not get around it.
func auditText(s string) bool {
	for _, r := range s {
		if r == '\n' || r == '\r' || r == '\t' {
			continue
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return false
		}
	}
	return true
}
