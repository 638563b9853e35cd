package replmode

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/clock"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/primary"
)

// HandleRequest serves the sys/replication/* endpoints (path without
// "sys/"), as Vault shapes them.
func (m *Manager) HandleRequest(ctx context.Context, req *logical.Request, p string) (*logical.Response, error) {
	switch p {
	case "replication/status":
		if req.Operation != logical.ReadOperation {
			return nil, logical.ErrUnsupportedOperation
		}
		return &logical.Response{Data: map[string]any{"performance": m.Status(), "dr": m.DRStatus()}}, nil
	case "replication/dr/status":
		if req.Operation != logical.ReadOperation {
			return nil, logical.ErrUnsupportedOperation
		}
		return &logical.Response{Data: m.DRStatus()}, nil
	case "replication/performance/status":
		if req.Operation != logical.ReadOperation {
			return nil, logical.ErrUnsupportedOperation
		}
		return &logical.Response{Data: m.Status()}, nil
	}
	if id, ok := strings.CutPrefix(p, pathsFilterPrefix); ok {
		return m.pathsFilterEndpoint(ctx, req, id)
	}
	if req.Operation != logical.UpdateOperation && req.Operation != logical.CreateOperation {
		return nil, logical.ErrUnsupportedOperation
	}
	h, ok := writeEndpoints[p]
	if !ok {
		return nil, logical.Errorf(http.StatusNotFound, "no handler for route \"sys/%s\"", p)
	}
	return h(m, ctx, req.Data)
}

type endpoint func(m *Manager, ctx context.Context, d map[string]any) (*logical.Response, error)

var writeEndpoints = map[string]endpoint{
	"replication/performance/primary/enable": (*Manager).enablePrimaryEndpoint,
	"replication/performance/primary/disable": func(m *Manager, ctx context.Context, _ map[string]any) (*logical.Response, error) {
		return nil, m.DisablePrimary(ctx)
	},
	"replication/performance/primary/secondary-token":  (*Manager).secondaryTokenEndpoint,
	"replication/performance/primary/revoke-secondary": (*Manager).revokeSecondaryEndpoint,
	"replication/performance/secondary/enable": func(m *Manager, ctx context.Context, d map[string]any) (*logical.Response, error) {
		return m.enableSecondaryEndpoint(ctx, d, true)
	},
	"replication/performance/secondary/disable": func(m *Manager, ctx context.Context, _ map[string]any) (*logical.Response, error) {
		return nil, m.DisableSecondary(ctx)
	},
	"replication/performance/primary/demote": func(m *Manager, ctx context.Context, _ map[string]any) (*logical.Response, error) {
		return nil, m.DemotePrimary(ctx)
	},
	"replication/performance/secondary/promote":        (*Manager).promoteEndpoint,
	"replication/performance/secondary/update-primary": (*Manager).updatePrimaryEndpoint,
	"replication/merkle-check":                         (*Manager).merkleCheckEndpoint,
	"replication/dr/primary/enable": func(m *Manager, ctx context.Context, d map[string]any) (*logical.Response, error) {
		addr, err := fieldString(d, "primary_cluster_addr")
		if err != nil {
			return nil, err
		}
		return nil, m.EnableDRPrimary(ctx, addr)
	},
	"replication/dr/primary/disable": func(m *Manager, ctx context.Context, _ map[string]any) (*logical.Response, error) {
		return nil, m.DisableDRPrimary(ctx)
	},
	"replication/dr/primary/demote": func(m *Manager, ctx context.Context, _ map[string]any) (*logical.Response, error) {
		return nil, m.DemoteDRPrimary(ctx)
	},
	"replication/dr/primary/secondary-token":  (*Manager).drSecondaryTokenEndpoint,
	"replication/dr/primary/revoke-secondary": (*Manager).drRevokeEndpoint,
	"replication/dr/secondary/enable":         (*Manager).drEnableSecondaryEndpoint,
	"replication/dr/secondary/promote":        (*Manager).drPromoteEndpoint,
	"replication/dr/secondary/update-primary": (*Manager).drUpdatePrimaryEndpoint,
	"replication/dr/secondary/disable": func(m *Manager, ctx context.Context, d map[string]any) (*logical.Response, error) {
		op, err := fieldString(d, "dr_operation_token")
		if err != nil {
			return nil, err
		}
		return nil, m.DisableDRSecondary(ctx, op)
	},
	"replication/reindex":             (*Manager).reindexEndpoint,
	"replication/performance/reindex": (*Manager).reindexEndpoint,
	"replication/dr/reindex":          (*Manager).reindexEndpoint,
	"replication/recover":             (*Manager).recoverEndpoint,
}

func (m *Manager) merkleCheckEndpoint(ctx context.Context, _ map[string]any) (*logical.Response, error) {
	rep, err := m.host.MerkleCheck(ctx)
	if err != nil {
		return nil, err
	}
	m.check.note(rep, time.Now())
	b, err := json.Marshal(rep)
	if err != nil {
		return nil, err
	}
	var report map[string]any
	if err := json.Unmarshal(b, &report); err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"merkle_corruption_report": report}}, nil
}

func fieldString(d map[string]any, name string) (string, error) {
	v, _, err := logical.FieldString(d, name)
	return v, err
}

func (m *Manager) enablePrimaryEndpoint(ctx context.Context, d map[string]any) (*logical.Response, error) {
	addr, err := fieldString(d, "primary_cluster_addr")
	if err != nil {
		return nil, err
	}
	return nil, m.EnablePrimary(ctx, addr)
}

func (m *Manager) secondaryTokenEndpoint(ctx context.Context, d map[string]any) (*logical.Response, error) {
	return m.tokenEndpoint(ctx, d, "")
}

func (m *Manager) drSecondaryTokenEndpoint(ctx context.Context, d map[string]any) (*logical.Response, error) {
	return m.tokenEndpoint(ctx, d, primary.KindDR)
}

// tokenEndpoint issues a performance or DR (kind) activation token, wrapped
// as Vault does.
func (m *Manager) tokenEndpoint(ctx context.Context, d map[string]any, kind string) (*logical.Response, error) {
	id, err := fieldString(d, "id")
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, logical.InvalidRequest("missing \"id\": the name of the secondary this token activates")
	}
	// No ttl: the primary grants its default (30 minutes, or less when the
	// configured maximum is lower).
	ttl, _, err := logical.FieldDuration(d, "ttl")
	if err != nil {
		return nil, err
	}
	if ttl < 0 {
		ttl = 0
	}
	p, err := m.liveFor(kind, OpSecondaryToken, OpDRSecondaryToken)
	if err != nil {
		return nil, err
	}
	// A new activation of this id starts its forwarding numbers again.
	if err := (windowStore{m.host.Barrier()}).forget(ctx, id); err != nil {
		return nil, err
	}
	tok, expires, err := p.SecondaryTokenKind(ctx, id, ttl, kind)
	if err != nil {
		return nil, logical.InvalidRequest("%v", err)
	}
	now := clock.Now().UTC()
	return &logical.Response{WrapInfo: &logical.WrapInfo{
		Token: tok, Accessor: "", TTL: int64(expires.Sub(now).Round(time.Second) / time.Second), CreationTime: now,
		CreationPath: creationPath(kind),
	}}, nil
}

func (m *Manager) revokeSecondaryEndpoint(ctx context.Context, d map[string]any) (*logical.Response, error) {
	return m.revokeEndpoint(ctx, d, "")
}

func (m *Manager) drRevokeEndpoint(ctx context.Context, d map[string]any) (*logical.Response, error) {
	return m.revokeEndpoint(ctx, d, primary.KindDR)
}

func (m *Manager) revokeEndpoint(ctx context.Context, d map[string]any, kind string) (*logical.Response, error) {
	id, err := fieldString(d, "id")
	if err != nil {
		return nil, err
	}
	p, err := m.liveFor(kind, OpRevokeSecondary, OpDRRevokeSecondary)
	if err != nil {
		return nil, err
	}
	if err := p.RevokeSecondary(ctx, id); err != nil {
		return nil, logical.InvalidRequest("%v", err)
	}
	return nil, nil
}

func (m *Manager) enableSecondaryEndpoint(ctx context.Context, d map[string]any, authenticated bool) (*logical.Response, error) {
	return m.enableEndpoint(ctx, d, authenticated, false)
}

func (m *Manager) enableEndpoint(ctx context.Context, d map[string]any, authenticated, dr bool) (*logical.Response, error) {
	f, err := tokenFields(d, "the activation token from the primary's secondary-token endpoint")
	if err != nil {
		return nil, err
	}
	return m.enableSecondary(ctx, f.token, f.api, f.bus, authenticated, dr)
}

// tokenRequest is what the endpoints that redeem a token read: the token
// (required; want says what it is), primary_api_addr and bus_url.
type tokenRequest struct{ token, api, bus string }

func tokenFields(d map[string]any, want string) (tokenRequest, error) {
	var f tokenRequest
	for _, p := range []struct {
		name string
		dst  *string
	}{{"token", &f.token}, {"primary_api_addr", &f.api}, {"bus_url", &f.bus}} {
		v, err := fieldString(d, p.name)
		if err != nil {
			return f, err
		}
		*p.dst = v
	}
	if f.token == "" {
		return f, logical.InvalidRequest("missing \"token\": %s", want)
	}
	return f, nil
}

func (m *Manager) promoteEndpoint(ctx context.Context, d map[string]any) (*logical.Response, error) {
	addr, err := fieldString(d, "primary_cluster_addr")
	if err != nil {
		return nil, err
	}
	return nil, m.PromoteSecondary(ctx, addr)
}

func (m *Manager) updatePrimaryEndpoint(ctx context.Context, d map[string]any) (*logical.Response, error) {
	f, err := tokenFields(d, "a secondary token from the new primary (its secondary-token endpoint)")
	if err != nil {
		return nil, err
	}
	return nil, m.UpdatePrimary(ctx, f.token, f.api, f.bus)
}

func creationPath(kind string) string {
	if kind == primary.KindDR {
		return "sys/replication/dr/primary/secondary-token"
	}
	return "sys/replication/performance/primary/secondary-token"
}

// liveFor is livePrimary for a performance (kind "") or DR operation.
func (m *Manager) liveFor(kind string, perfOp, drOp Op) (*primary.Primary, error) {
	if kind != primary.KindDR {
		return m.livePrimary(perfOp)
	}
	if _, err := m.decideDR(drOp); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.primary == nil {
		return nil, logical.Errorf(http.StatusServiceUnavailable, "this primary's replication is not running yet (%s): it retries by itself; retry when sys/replication/dr/status shows state running", m.startErr)
	}
	return m.primary, nil
}

func (m *Manager) drEnableSecondaryEndpoint(ctx context.Context, d map[string]any) (*logical.Response, error) {
	return m.enableEndpoint(ctx, d, true, true)
}

func (m *Manager) drPromoteEndpoint(ctx context.Context, d map[string]any) (*logical.Response, error) {
	op, err := fieldString(d, "dr_operation_token")
	if err != nil {
		return nil, err
	}
	addr, err := fieldString(d, "primary_cluster_addr")
	if err != nil {
		return nil, err
	}
	return nil, m.PromoteDRSecondary(ctx, op, addr)
}

func (m *Manager) drUpdatePrimaryEndpoint(ctx context.Context, d map[string]any) (*logical.Response, error) {
	op, err := fieldString(d, "dr_operation_token")
	if err != nil {
		return nil, err
	}
	f, err := tokenFields(d, "a DR secondary token from the new primary (dr/primary/secondary-token)")
	if err != nil {
		return nil, err
	}
	return nil, m.UpdateDRPrimary(ctx, op, f.token, f.api, f.bus)
}
