package tokens

import (
	"context"
	"fmt"
	"strings"

	"github.com/cofferhq/coffer/storage"
)

// Revoke revokes the token and all its descendants. Revoking a token that
// does not exist is not an error; a valid batch token is
// ErrBatchNotRevocable.
func (s *Store) Revoke(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	if IsBatch(id) {
		return s.refuseBatchRevocation(ctx, id, nil)
	}
	key, err := s.hash(ctx, id)
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.revokeTreeLocked(ctx, key); err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

// RevokeAccessor revokes the token with this accessor and its descendants;
// ErrAccessorNotFound when no token has it.
func (s *Store) RevokeAccessor(ctx context.Context, accessor string) error {
	key, err := s.accessorKey(ctx, accessor)
	if err != nil {
		return fmt.Errorf("revoke accessor: %w", err)
	}
	if key == "" {
		return ErrAccessorNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.revokeTreeLocked(ctx, key); err != nil {
		return fmt.Errorf("revoke accessor: %w", err)
	}
	return nil
}

// RevokeOrphan revokes the token alone: its children become orphans and
// live on. ErrTokenNotFound when the token does not exist,
// ErrBatchNotRevocable for a valid batch token.
func (s *Store) RevokeOrphan(ctx context.Context, id string) error {
	if IsBatch(id) {
		return s.refuseBatchRevocation(ctx, id, ErrTokenNotFound)
	}
	key, err := s.hash(ctx, id)
	if err != nil {
		return fmt.Errorf("revoke orphan: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.loadKey(ctx, key)
	if err != nil {
		return fmt.Errorf("revoke orphan: %w", err)
	}
	if e == nil || id == "" {
		return ErrTokenNotFound
	}
	children, err := s.storage.List(ctx, parentPrefix+key+"/")
	if err != nil {
		return fmt.Errorf("revoke orphan: list children: %w", err)
	}
	for _, ck := range children {
		ops := []*storage.TxnOp{deleteOp(parentPrefix + key + "/" + ck)}
		child, err := s.loadKey(ctx, ck)
		if err != nil {
			return fmt.Errorf("revoke orphan: %w", err)
		}
		if child != nil {
			child.Parent, child.Orphan = "", true
			op, err := entryOp(ck, child)
			if err != nil {
				return fmt.Errorf("revoke orphan: %w", err)
			}
			ops = append(ops, op)
		}
		if err := s.storage.Transaction(ctx, ops); err != nil {
			return fmt.Errorf("revoke orphan: orphan child: %w", err)
		}
	}
	if err := s.revokeOneLocked(ctx, key, ""); err != nil {
		return fmt.Errorf("revoke orphan: %w", err)
	}
	return nil
}

// revokeTreeLocked revokes the token under key and every descendant,
// children first, and returns how many tokens it removed. s.mu is held.
func (s *Store) revokeTreeLocked(ctx context.Context, key string) (int, error) {
	type frame struct {
		key, parent string
		expanded    bool
	}
	stack := []frame{{key: key}}
	seen := map[string]bool{}
	n := 0
	for len(stack) > 0 {
		top := len(stack) - 1
		if !stack[top].expanded {
			stack[top].expanded = true
			k := stack[top].key
			if seen[k] { // impossible with well-formed links; never loop
				stack = stack[:top]
				continue
			}
			seen[k] = true
			children, err := s.storage.List(ctx, parentPrefix+k+"/")
			if err != nil {
				return n, fmt.Errorf("list children: %w", err)
			}
			for _, c := range children {
				if !strings.HasSuffix(c, "/") {
					stack = append(stack, frame{key: c, parent: k})
				}
			}
			continue
		}
		f := stack[top]
		stack = stack[:top]
		if err := s.revokeOneLocked(ctx, f.key, f.parent); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// revokeOneLocked deletes the token under key, its accessor and its link
// under its parent (linkParent, when the caller walked it from there) in
// one transaction. Its own children must be gone already. s.mu is held.
func (s *Store) revokeOneLocked(ctx context.Context, key, linkParent string) error {
	e, err := s.loadKey(ctx, key)
	if err != nil {
		return err
	}
	ops := []*storage.TxnOp{deleteOp(idPrefix + key)}
	if linkParent != "" {
		ops = append(ops, deleteOp(parentPrefix+linkParent+"/"+key))
	}
	if e != nil {
		if e.Accessor != "" {
			ak, err := s.hash(ctx, e.Accessor)
			if err != nil {
				return err
			}
			ops = append(ops, deleteOp(accessorPrefix+ak))
		}
		if e.Parent != "" {
			pk, err := s.hash(ctx, e.Parent)
			if err != nil {
				return err
			}
			if pk != linkParent {
				ops = append(ops, deleteOp(parentPrefix+pk+"/"+key))
			}
		}
	}
	if err := s.storage.Transaction(ctx, ops); err != nil {
		return fmt.Errorf("delete token: %w", err)
	}
	if e != nil {
		s.log.Debug().Str("accessor", e.Accessor).Msg("token revoked")
	}
	return nil
}

// RevokeByPath revokes every token created on a path under prefix (with its
// descendants), as Vault does when an auth method is disabled: the tokens its
// logins issued must not outlive it. It returns how many tokens went.
func (s *Store) RevokeByPath(ctx context.Context, prefix string) (int, error) {
	keys, err := s.storage.List(ctx, idPrefix)
	if err != nil {
		return 0, fmt.Errorf("revoke tokens of %s: %w", prefix, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	total := 0
	for _, key := range keys {
		e, err := s.loadKey(ctx, key)
		if err != nil || e == nil || !strings.HasPrefix(e.Path, prefix) {
			continue
		}
		n, err := s.revokeTreeLocked(ctx, key)
		if err != nil {
			return total, fmt.Errorf("revoke tokens of %s: %w", prefix, err)
		}
		total += n
	}
	return total, nil
}

// revokeIfExpired revokes the tree under key when the token there is
// expired or pending revocation. Failures are logged: the expiration
// manager tries again.
func (s *Store) revokeIfExpired(ctx context.Context, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.loadKey(ctx, key)
	if err == nil && e != nil && (e.expired(s.now()) || e.RevocationPending()) {
		_, err = s.revokeTreeLocked(ctx, key)
		if err == nil {
			s.log.Debug().Str("accessor", e.Accessor).Msg("expired token revoked")
		}
	}
	if err != nil {
		s.log.Warn().Err(err).Msg("revoke expired token")
	}
}

// refuseBatchRevocation answers a revocation of the batch token id:
// ErrBatchNotRevocable when it is valid, invalid (a bad or expired batch
// token, which is no token) otherwise.
func (s *Store) refuseBatchRevocation(ctx context.Context, id string, invalid error) error {
	e, err := s.lookupBatch(ctx, id)
	switch {
	case err != nil:
		return fmt.Errorf("revoke token: %w", err)
	case e != nil:
		return ErrBatchNotRevocable
	}
	return invalid
}
