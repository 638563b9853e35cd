package approle

import (
	"context"
	"crypto/hmac"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/cofferhq/coffer/engines/internal/tokenfields"
	"github.com/cofferhq/coffer/logical"
)

// roleFields are the fields a role write reads; any other field is ignored
// with a warning, as Vault does.
var roleFields = func() map[string]bool {
	m := map[string]bool{
		"bind_secret_id": true, "secret_id_bound_cidrs": true,
		"secret_id_num_uses": true, "secret_id_ttl": true,
		"local_secret_ids": true, "role_id": true,
		"policies": true, "period": true,
	}
	for _, n := range tokenfields.Names {
		m[n] = true
	}
	return m
}()

// getter returns the field reader of data limited to allowed, and the
// warning naming the fields it ignores ("" when none). "role_name" (the
// path's own parameter in Vault's schema) is ignored silently.
func getter(data map[string]any, allowed map[string]bool) (func(string) (any, bool), []string) {
	var ignored []string
	for k := range data {
		if !allowed[k] && k != "role_name" {
			ignored = append(ignored, k)
		}
	}
	var warnings []string
	if w := logical.IgnoredFieldsWarning(ignored); w != "" {
		warnings = append(warnings, w)
	}
	return func(k string) (any, bool) {
		if !allowed[k] {
			return nil, false
		}
		v, ok := data[k]
		if ok && v == nil {
			return nil, false
		}
		return v, ok
	}, warnings
}

// roleUpdate is a parsed role write: nil fields keep their stored value.
type roleUpdate struct {
	token    *tokenfields.Update
	bind     *bool
	cidrs    *[]string
	numUses  *int
	ttl      *time.Duration
	local    *bool
	roleID   *string
	warnings []string
}

func parseRoleUpdate(data map[string]any) (*roleUpdate, error) {
	get, warnings := getter(data, roleFields)
	up := &roleUpdate{warnings: warnings}
	var err error
	if up.token, err = tokenfields.Parse(get); err != nil {
		return nil, err
	}
	if up.bind, err = tokenfields.Optional(get, "bind_secret_id", logical.ParseBool); err != nil {
		return nil, err
	}
	if up.cidrs, err = tokenfields.Optional(get, "secret_id_bound_cidrs", tokenfields.ParseCIDRs); err != nil {
		return nil, err
	}
	if up.numUses, err = tokenfields.Optional(get, "secret_id_num_uses", tokenfields.ParseNumUses); err != nil {
		return nil, err
	}
	if up.ttl, err = tokenfields.Optional(get, "secret_id_ttl", tokenfields.ParseTTL); err != nil {
		return nil, err
	}
	if up.local, err = tokenfields.Optional(get, "local_secret_ids", logical.ParseBool); err != nil {
		return nil, err
	}
	if up.roleID, err = tokenfields.Optional(get, "role_id", parseRoleID); err != nil {
		return nil, err
	}
	return up, nil
}

// parseRoleID reads a custom role_id: a non-empty string of at most 4096
// bytes. Like a secret id it is a credential, so errors never echo it.
func parseRoleID(field string, v any) (string, error) {
	s, err := logical.ParseSecret(field, v)
	if err != nil {
		return "", err
	}
	switch {
	case s == "":
		return "", logical.InvalidRequest("%s: must not be empty", field)
	case len(s) > maxNameLen:
		return "", logical.InvalidRequest("%s: longer than the maximum of %d bytes", field, maxNameLen)
	}
	return s, nil
}

// apply merges the update into r.
func (up *roleUpdate) apply(r *role) {
	up.token.Apply(&r.Settings)
	if up.bind != nil {
		r.BindSecretID = *up.bind
	}
	if up.cidrs != nil {
		r.SecretIDBoundCIDRs = *up.cidrs
	}
	if up.numUses != nil {
		r.SecretIDNumUses = *up.numUses
	}
	if up.ttl != nil {
		r.SecretIDTTL = *up.ttl
	}
}

// writeRole creates or updates a role. Create and update are treated
// alike, deciding from storage whether the role is new.
func (b *Backend) writeRole(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	up, err := parseRoleUpdate(req.Data)
	if err != nil {
		return nil, err
	}
	unlock := b.locks.lock(name)
	defer unlock()
	r, err := loadRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	previousRoleID := ""
	if r == nil {
		r = &role{UID: randomHex(16), BindSecretID: true, RoleID: uuid.NewString()}
		r.TokenType = "default"
		if up.local != nil {
			r.LocalSecretIDs = *up.local
		}
	} else {
		previousRoleID = r.RoleID
		if up.local != nil && *up.local != r.LocalSecretIDs {
			return nil, logical.InvalidRequest("local_secret_ids can only be modified during role creation")
		}
	}
	if up.roleID != nil {
		r.RoleID = *up.roleID
	}
	up.apply(r)
	if !r.BindSecretID && len(r.SecretIDBoundCIDRs) == 0 && len(r.TokenBoundCIDRs) == 0 {
		return nil, logical.InvalidRequest("at least one constraint should be enabled on the role")
	}
	if err := r.Check(); err != nil {
		return nil, err
	}
	if err := b.saveRole(ctx, req.Storage, name, r, previousRoleID); err != nil {
		return nil, err
	}
	if len(up.warnings) > 0 {
		return &logical.Response{Warnings: up.warnings}, nil
	}
	return nil, nil
}

// saveRole writes the role and, when its role_id is new or changed, moves
// the role_id index, in one transaction. The caller holds the role's lock.
func (b *Backend) saveRole(ctx context.Context, s logical.Storage, name string, r *role, previousRoleID string) error {
	r.V = recordVersion
	put, err := putOp(roleKey(name), r)
	if err != nil {
		return err
	}
	if previousRoleID != "" && previousRoleID == r.RoleID {
		if err := s.Transaction(ctx, []*txnOp{put}); err != nil {
			return fmt.Errorf("write role %q: %w", name, err)
		}
		return nil
	}
	b.roleIDMu.Lock()
	defer b.roleIDMu.Unlock()
	key, err := b.roleSalt(ctx, s)
	if err != nil {
		return err
	}
	h := mac(key, r.RoleID)
	idx, err := loadRoleIDIndex(ctx, s, h)
	if err != nil {
		return err
	}
	if idx != nil && idx.Name != name {
		return logical.InvalidRequest("role_id already in use")
	}
	idxOp, err := putOp(roleIDKey(h), &roleIDIndex{V: recordVersion, Name: name})
	if err != nil {
		return err
	}
	ops := []*txnOp{put, idxOp}
	if previousRoleID != "" {
		ops = append(ops, deleteOp(roleIDKey(mac(key, previousRoleID))))
	}
	if err := s.Transaction(ctx, ops); err != nil {
		return fmt.Errorf("write role %q: %w", name, err)
	}
	return nil
}

// roleSalt reads the replicated salt of the role_id index, creating it on
// the first role write (a role write is served by the primary).
func (b *Backend) roleSalt(ctx context.Context, s logical.Storage) ([]byte, error) {
	b.saltMu.Lock()
	defer b.saltMu.Unlock()
	return ensureSalt(ctx, s, roleSaltKey)
}

// localSalt reads the cluster-local salt of secret ids and accessors,
// creating it when create is set (a generate); nil when there is none.
func (b *Backend) localSalt(ctx context.Context, s logical.Storage, create bool) ([]byte, error) {
	if !create {
		return loadSalt(ctx, s, localSaltKey)
	}
	b.saltMu.Lock()
	defer b.saltMu.Unlock()
	return ensureSalt(ctx, s, localSaltKey)
}

// mustRole loads a role for an administrative endpoint: a missing role is
// 404 (these endpoints need a token, so naming the role reveals nothing).
func mustRole(ctx context.Context, s logical.Storage, name string) (*role, error) {
	r, err := loadRole(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, logical.Errorf(404, "role %q does not exist", name)
	}
	return r, nil
}

// readRole answers a role's settings in Vault's shape.
func (b *Backend) readRole(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	r, err := loadRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("%w: no role %q", logical.ErrNotFound, name)
	}
	data := r.Data()
	cidrs := slices.Clone(r.SecretIDBoundCIDRs)
	if cidrs == nil {
		cidrs = []string{}
	}
	data["bind_secret_id"] = r.BindSecretID
	data["secret_id_bound_cidrs"] = cidrs
	data["secret_id_num_uses"] = r.SecretIDNumUses
	data["secret_id_ttl"] = int64(r.SecretIDTTL / time.Second)
	data["local_secret_ids"] = r.LocalSecretIDs
	return &logical.Response{Data: data}, nil
}

// deleteRole removes a role, its role_id index and the secret ids this
// cluster holds for it. Deleting a missing role is not an error. Other
// clusters' secret ids of the role can no longer log in (their role is
// gone) and their tidy removes them.
func (b *Backend) deleteRole(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	unlock := b.locks.lock(name)
	defer unlock()
	r, err := loadRole(ctx, req.Storage, name)
	if err != nil || r == nil {
		return nil, err
	}
	ops := []*txnOp{deleteOp(roleKey(name))}
	key, err := loadSalt(ctx, req.Storage, roleSaltKey)
	if err != nil {
		return nil, err
	}
	if key != nil {
		ops = append(ops, deleteOp(roleIDKey(mac(key, r.RoleID))))
	}
	if err := req.Storage.Transaction(ctx, ops); err != nil {
		return nil, fmt.Errorf("delete role %q: %w", name, err)
	}
	if _, err := b.removeSecretIDs(ctx, req.Storage, r.UID, func(*secretID) bool { return true }); err != nil {
		return nil, fmt.Errorf("delete the secret ids of role %q: %w", name, err)
	}
	return nil, nil
}

// listRoles answers {"keys": [...]}, or 404 when there is no role.
func (b *Backend) listRoles(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	keys, err := req.Storage.List(ctx, rolePrefix)
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no roles", logical.ErrNotFound)
	}
	return &logical.Response{Data: map[string]any{"keys": keys}}, nil
}

// readRoleID answers {"role_id": ...}.
func (b *Backend) readRoleID(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	r, err := loadRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("%w: no role %q", logical.ErrNotFound, name)
	}
	return &logical.Response{Data: map[string]any{"role_id": r.RoleID}}, nil
}

// writeRoleID sets a custom role_id, unique across the mount's roles.
func (b *Backend) writeRoleID(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	get, warnings := getter(req.Data, map[string]bool{"role_id": true})
	id, err := tokenfields.Optional(get, "role_id", parseRoleID)
	if err != nil {
		return nil, err
	}
	if id == nil {
		return nil, logical.InvalidRequest("missing role_id")
	}
	unlock := b.locks.lock(name)
	defer unlock()
	r, err := mustRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	previous := r.RoleID
	r.RoleID = *id
	if err := b.saveRole(ctx, req.Storage, name, r, previous); err != nil {
		return nil, err
	}
	if len(warnings) > 0 {
		return &logical.Response{Warnings: warnings}, nil
	}
	return nil, nil
}

// sameSecret compares two credentials in constant time.
func sameSecret(a, b string) bool { return hmac.Equal([]byte(a), []byte(b)) }
