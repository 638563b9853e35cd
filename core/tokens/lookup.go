package tokens

import (
	"context"
	"fmt"
	"slices"

	"github.com/cofferhq/coffer/storage"
)

// Lookup returns the valid token id, or nil when it does not exist, was
// revoked, has expired (it is then revoked, with its children) or has had
// its last use consumed. A batch token is valid when its signature verifies
// under this cluster's key or the published one, it has not expired, and
// its parent (if any) is valid.
func (s *Store) Lookup(ctx context.Context, id string) (*Entry, error) {
	e, err := s.lookup(ctx, id, false)
	if err != nil {
		return nil, fmt.Errorf("look up token: %w", err)
	}
	return e, nil
}

// lookup is Lookup; withPending also returns a token whose last use is in
// progress (lookup-self answers for it during that request, as in Vault).
func (s *Store) lookup(ctx context.Context, id string, withPending bool) (*Entry, error) {
	if id == "" {
		return nil, nil
	}
	if IsBatch(id) {
		return s.lookupBatch(ctx, id)
	}
	key, err := s.hash(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.validKey(ctx, key, withPending)
}

// validKey loads the token under key and checks it is valid now.
func (s *Store) validKey(ctx context.Context, key string, withPending bool) (*Entry, error) {
	e, err := s.loadKey(ctx, key)
	if err != nil || e == nil {
		return nil, err
	}
	if e.RevocationPending() && !withPending {
		return nil, nil
	}
	if e.expired(s.now()) {
		s.revokeIfExpired(ctx, key)
		return nil, nil
	}
	return e, nil
}

// LookupAccessor returns the valid token with this accessor, or nil.
func (s *Store) LookupAccessor(ctx context.Context, accessor string) (*Entry, error) {
	key, err := s.accessorKey(ctx, accessor)
	if err != nil || key == "" {
		return nil, err
	}
	e, err := s.validKey(ctx, key, false)
	if err != nil {
		return nil, fmt.Errorf("look up accessor: %w", err)
	}
	return e, nil
}

// accessorKey returns the token key the accessor points to, "" when none.
func (s *Store) accessorKey(ctx context.Context, accessor string) (string, error) {
	if accessor == "" {
		return "", nil
	}
	ak, err := s.hash(ctx, accessor)
	if err != nil {
		return "", err
	}
	raw, err := s.storage.Get(ctx, accessorPrefix+ak)
	if err != nil {
		return "", fmt.Errorf("read accessor: %w", err)
	}
	if raw == nil {
		return "", nil
	}
	var r accessorRecord
	if err := decodeVersioned("accessor", raw.Value, &r, func() int { return r.V }); err != nil {
		return "", err
	}
	return r.TokenKey, nil
}

// UseToken counts one use of e. An unlimited token comes back unchanged
// without a write. A use-limited token is decremented; the use that
// consumes the last one comes back with RevocationPending true: the request
// goes on, the caller revokes the token when it is done. nil means the token
// is no longer valid (its uses ran out in another request, or it was
// revoked or expired): refuse the request.
func (s *Store) UseToken(ctx context.Context, e *Entry) (*Entry, error) {
	if e == nil {
		return nil, nil
	}
	if e.NumUses == 0 {
		return e, nil
	}
	key, err := s.hash(ctx, e.ID)
	if err != nil {
		return nil, fmt.Errorf("use token: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.loadKey(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("use token: %w", err)
	}
	now := s.now()
	if cur == nil || cur.RevocationPending() || cur.expired(now) {
		return nil, nil
	}
	if cur.NumUses == 0 {
		return cur, nil
	}
	cur.NumUses--
	if cur.NumUses == 0 {
		cur.NumUses = NumUsesRevocationPending
	}
	op, err := entryOp(key, cur)
	if err != nil {
		return nil, fmt.Errorf("use token: %w", err)
	}
	if err := s.storage.Transaction(ctx, []*storage.TxnOp{op}); err != nil {
		return nil, fmt.Errorf("use token: store: %w", err)
	}
	if cur.RevocationPending() {
		s.sched.add(now.Add(s.opts.PendingRevocationDelay), key)
	}
	return cur, nil
}

// ListAccessors returns the accessors of every valid service token, sorted
// (auth/token/accessors; batch tokens have none). It reads every accessor
// record and its token: an operator's listing, not a request path.
func (s *Store) ListAccessors(ctx context.Context) ([]string, error) {
	names, err := s.storage.List(ctx, accessorPrefix)
	if err != nil {
		return nil, fmt.Errorf("list accessors: %w", err)
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		raw, err := s.storage.Get(ctx, accessorPrefix+n)
		if err != nil {
			return nil, fmt.Errorf("read accessor: %w", err)
		}
		if raw == nil {
			continue // revoked meanwhile
		}
		var r accessorRecord
		if err := decodeVersioned("accessor", raw.Value, &r, func() int { return r.V }); err != nil {
			return nil, err
		}
		e, err := s.validKey(ctx, r.TokenKey, false)
		if err != nil {
			return nil, fmt.Errorf("list accessors: %w", err)
		}
		if e != nil && e.Accessor != "" {
			out = append(out, e.Accessor)
		}
	}
	slices.Sort(out)
	return out, nil
}
