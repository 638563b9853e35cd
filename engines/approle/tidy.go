package approle

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/cofferhq/coffer/logical"
)

// removeSecretIDs deletes the secret ids of the role with uid that this
// cluster holds and that doom selects, each with its accessor in one
// transaction, and returns how many it deleted. The caller holds the role's
// lock when the role exists.
func (b *Backend) removeSecretIDs(ctx context.Context, s logical.Storage, uid string, doom func(*secretID) bool) (int, error) {
	salt, err := b.localSalt(ctx, s, false)
	if err != nil || salt == nil {
		return 0, err
	}
	folder := secretIDPrefix + uid + "/"
	hashes, err := s.List(ctx, folder)
	if err != nil {
		return 0, fmt.Errorf("list %q: %w", folder, err)
	}
	n := 0
	for _, h := range hashes {
		if strings.HasSuffix(h, "/") {
			continue
		}
		rec, err := loadSecretID(ctx, s, folder+h)
		if err != nil {
			return n, err
		}
		if rec == nil || !doom(rec) {
			continue
		}
		ops := []*txnOp{deleteOp(folder + h), deleteOp(accessorKey(mac(salt, rec.Accessor)))}
		if err := s.Transaction(ctx, ops); err != nil {
			return n, fmt.Errorf("delete %q: %w", folder+h, err)
		}
		n++
	}
	return n, nil
}

// tidy removes this cluster's expired secret ids, those of roles that no
// longer exist (deleted on the primary while this cluster held some), and
// accessors left without their secret id. It runs to completion before it
// answers (Vault starts it in the background: same status, 202).
func (b *Backend) tidy(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	s := req.Storage
	names, err := s.List(ctx, rolePrefix)
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	byUID := map[string]string{}
	for _, name := range names {
		r, err := loadRole(ctx, s, name)
		if err != nil {
			return nil, err
		}
		if r != nil {
			byUID[r.UID] = name
		}
	}
	folders, err := s.List(ctx, secretIDPrefix)
	if err != nil {
		return nil, fmt.Errorf("list secret ids: %w", err)
	}
	now := b.now()
	removed := 0
	for _, f := range folders {
		uid, isFolder := strings.CutSuffix(f, "/")
		if !isFolder {
			continue // the salt
		}
		doom := func(*secretID) bool { return true }
		unlock := func() {}
		if name, ok := byUID[uid]; ok {
			doom = func(rec *secretID) bool { return rec.expired(now) }
			unlock = b.locks.lock(name)
		}
		n, err := b.removeSecretIDs(ctx, s, uid, doom)
		unlock()
		removed += n
		if err != nil {
			return nil, err
		}
	}
	if err := b.tidyAccessors(ctx, s); err != nil {
		return nil, err
	}
	return &logical.Response{
		StatusCode: http.StatusAccepted,
		Warnings:   []string{fmt.Sprintf("Tidy operation completed: removed %d expired or orphaned secret IDs from this cluster.", removed)},
	}, nil
}

// tidyAccessors deletes accessors whose secret id is gone.
func (b *Backend) tidyAccessors(ctx context.Context, s logical.Storage) error {
	hashes, err := s.List(ctx, accessorPrefix)
	if err != nil {
		return fmt.Errorf("list accessors: %w", err)
	}
	for _, h := range hashes {
		a, err := loadAccessor(ctx, s, h)
		if err != nil || a == nil {
			if err != nil {
				return err
			}
			continue
		}
		e, err := s.Get(ctx, secretIDKey(a.RoleUID, a.SecretIDHMAC))
		if err != nil {
			return fmt.Errorf("read secret id: %w", err)
		}
		if e == nil {
			if err := s.Delete(ctx, accessorKey(h)); err != nil {
				return fmt.Errorf("delete accessor: %w", err)
			}
		}
	}
	return nil
}
