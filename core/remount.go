package core

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/cofferhq/coffer/logical"
	"github.com/google/uuid"
)

// maxMigrations bounds the remount results kept for sys/remount/status.
const maxMigrations = 100

// migrations remembers the outcome of the last remounts on this node, for
// sys/remount/status/:id (Vault's API is asynchronous; Coffer moves a mount
// at once, so a status is final when it is first read).
type migrations struct {
	mu    sync.Mutex
	byID  map[string]map[string]any
	order []string
}

func (m *migrations) add(from, to, status string) string {
	id := uuid.NewString()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byID == nil {
		m.byID = map[string]map[string]any{}
	}
	m.byID[id] = map[string]any{"source_mount": from, "target_mount": to, "status": status}
	m.order = append(m.order, id)
	if len(m.order) > maxMigrations {
		delete(m.byID, m.order[0])
		m.order = m.order[1:]
	}
	return id
}

func (m *migrations) get(id string) map[string]any {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byID[id]
}

// remountTable splits a sys/remount path into its table and mount path:
// "auth/x" is the auth method at x/, anything else a secrets engine.
func remountTable(p string) (Table, string) {
	p = normalizeMountPath(p)
	if rest, ok := strings.CutPrefix(p, "auth/"); ok {
		return AuthTable, rest
	}
	return SecretTable, p
}

// RemountMount moves the mount at from to to, with its data (a mount's
// storage is under its UUID, which does not change) and configuration. It
// is refused for a built-in mount, across tables (a secrets engine to an
// auth path or back), onto a path in use, and on a performance secondary
// for a replicated mount. Moving an auth method revokes the tokens its
// logins issued, as Vault does.
func (c *Core) RemountMount(ctx context.Context, from, to string) error {
	ft, fp := remountTable(from)
	tt, tp := remountTable(to)
	if fp == "" || tp == "" {
		return logical.InvalidRequest("both \"from\" and \"to\" are required: the mount's current path and its new one")
	}
	if ft != tt {
		return logical.InvalidRequest("cannot move %q to %q: a secrets engine stays a secrets engine and an auth method an auth method (auth methods are under auth/)", from, to)
	}
	c.mountMu.Lock()
	defer c.mountMu.Unlock()
	src := (&MountEntry{Table: ft, Path: fp}).RoutePath()
	dst := (&MountEntry{Table: tt, Path: tp}).RoutePath()
	c.router.mu.RLock()
	mb := c.router.routes[src]
	c.router.mu.RUnlock()
	if mb == nil || mb.entry.Table != ft {
		return logical.InvalidRequest("no %s is mounted at %q: list them with sys/%s", tableNoun(ft), src, map[Table]string{SecretTable: "mounts", AuthTable: "auth"}[ft])
	}
	if mb.entry.builtin {
		return logical.InvalidRequest("%q is built in and cannot be moved", src)
	}
	if err := c.refuseOnSecondary(mb.entry.Local); err != nil {
		return err
	}
	if err := c.freePath(ft, tp, src); err != nil {
		return err
	}
	ne := mb.entry.clone()
	ne.Path = tp
	moved := &mountedBackend{entry: ne, backend: mb.backend, storage: mb.storage}
	c.router.remove(src)
	c.router.add(moved)
	if err := c.persistTable(ctx, ft, ne.Local); err != nil {
		c.router.remove(dst)
		c.router.add(mb)
		return fmt.Errorf("persist mount table: %w", err)
	}
	if ft == AuthTable {
		c.revokeMethodTokens(ctx, src, "moved")
	}
	c.logger.Info().Str("from", src).Str("to", dst).Msg("moved " + tableNoun(ft))
	return nil
}

// remount serves sys/remount (POST from, to) and sys/remount/status/:id.
func (s *systemBackend) remount(ctx context.Context, req *logical.Request, p string) (*logical.Response, error) {
	if id, ok := strings.CutPrefix(p, "remount/status/"); ok {
		if req.Operation != logical.ReadOperation {
			return nil, logical.ErrUnsupportedOperation
		}
		info := s.c.migrations.get(id)
		if info == nil {
			return nil, logical.Errorf(http.StatusNotFound, "no mount migration %q on this node (results are kept for the last %d moves, until a restart)", id, maxMigrations)
		}
		return &logical.Response{Data: map[string]any{"migration_id": id, "migration_info": info}}, nil
	}
	if req.Operation != logical.UpdateOperation && req.Operation != logical.CreateOperation {
		return nil, logical.ErrUnsupportedOperation
	}
	from, _ := req.Data["from"].(string)
	to, _ := req.Data["to"].(string)
	if err := s.c.RemountMount(ctx, from, to); err != nil {
		return nil, err
	}
	id := s.c.migrations.add(normalizeMountPath(from), normalizeMountPath(to), "success")
	return &logical.Response{Data: map[string]any{"migration_id": id}}, nil
}
