package notify

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/apierr"
	"github.com/pushbackhq/pushback/pkg/ids"
	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/validate"
)

// ListIncidents implements the RPC: newest first, optionally of one
// tenant or user.
func (s *Service) ListIncidents(ctx context.Context, req *notifyv1.ListIncidentsRequest) (*notifyv1.ListIncidentsResponse, error) {
	if err := validate.Request(ctx, req); err != nil {
		return nil, err
	}
	var v apierr.Violations
	if req.GetUserId() != "" && req.GetTenant() == "" {
		v.Add("tenant", "is required with user_id")
	}
	var after []byte
	if tok := req.GetPageToken(); tok != "" {
		b, ok := store.ParseCursor(tok, []byte(incidentRecordPrefix))
		if !ok {
			v.Add("page_token", "is not a token from an earlier response")
		}
		after = b
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = 50
	}
	resp := &notifyv1.ListIncidentsResponse{}
	const batch = 256
	for {
		items, err := s.opts.Store.Scan(ctx, store.ScanOptions{Prefix: []byte(incidentRecordPrefix), After: after, Limit: batch, Reverse: true})
		if err != nil {
			s.log.ErrorContext(ctx, "list incidents", slog.Any("error", err))
			return nil, apierr.StoreUnavailable()
		}
		for _, it := range items {
			after = it.Key
			in := &incident{}
			if json.Unmarshal(it.Value, in) != nil {
				continue
			}
			if req.GetTenant() != "" && in.Tenant != req.GetTenant() || req.GetUserId() != "" && in.User != req.GetUserId() {
				continue
			}
			if len(resp.Incidents) == size {
				resp.NextPageToken = store.Cursor(incidentRecordKey(resp.Incidents[size-1].GetIncidentId()))
				return resp, nil
			}
			resp.Incidents = append(resp.Incidents, in.proto())
		}
		if len(items) < batch {
			return resp, nil
		}
	}
}

// GetIncident implements the RPC: the incident and every delivery it
// raised, with their status and results.
func (s *Service) GetIncident(ctx context.Context, req *notifyv1.GetIncidentRequest) (*notifyv1.GetIncidentResponse, error) {
	if err := validate.Request(ctx, req); err != nil {
		return nil, err
	}
	var v apierr.Violations
	if _, ok := ids.Time(req.GetIncidentId()); !ok {
		v.Add("incident_id", "is not an incident id")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	b, err := s.opts.Store.Get(ctx, incidentRecordKey(req.GetIncidentId()))
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("incident", req.GetIncidentId())
	}
	if err != nil {
		return nil, apierr.StoreUnavailable()
	}
	in := &incident{}
	if err := json.Unmarshal(b, in); err != nil {
		return nil, apierr.Internal()
	}
	resp := &notifyv1.GetIncidentResponse{Incident: in.proto()}
	for _, id := range in.Deliveries {
		b, err := s.opts.Store.Get(ctx, deliveryKey(id))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, apierr.StoreUnavailable()
		}
		d := &notifyv1.Delivery{}
		if err := unmarshalDelivery(b, d); err == nil {
			resp.Deliveries = append(resp.Deliveries, d)
		}
	}
	return resp, nil
}
