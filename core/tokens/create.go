package tokens

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// Create stores a new token. A batch token (Type TypeBatch) is not stored:
// see createBatch. It fills ID when empty ("hvs." + random),
// Accessor, CreationTime, Orphan, Type and ExpireTime, and replaces TTL with
// the TTL granted: Period when periodic, else TTL or the system default,
// bounded by ExplicitMaxTTL and the system max TTL. A root-policy token
// asked with TTL and Period 0 never expires unless ExplicitMaxTTL is set.
// A token that never expires is not renewable. Entry.Parent, when set, must
// be a valid token; the child is revoked with it.
func (s *Store) Create(ctx context.Context, e *Entry) error {
	_, err := s.create(ctx, e)
	return err
}

// create is Create; it also returns the warnings of the TTL granted. Each
// step below returns its error bare, and create names the operation once.
func (s *Store) create(ctx context.Context, e *Entry) ([]string, error) {
	if err := checkNewEntry(e); err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	if e.Type == TypeBatch {
		warnings, err := s.createBatch(ctx, e)
		if err != nil {
			return nil, fmt.Errorf("create batch token: %w", err)
		}
		return warnings, nil
	}
	if err := fillNewEntry(e); err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	now := s.now()
	e.CreationTime = now
	e.Orphan = e.Parent == ""
	warnings, err := s.grantTTL(e, now)
	if err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}

	key, err := s.hash(ctx, e.ID)
	if err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	accKey, err := s.hash(ctx, e.Accessor)
	if err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	ops, err := s.createOpsLocked(ctx, e, key, accKey, now)
	if err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	if err := s.storage.Transaction(ctx, ops); err != nil {
		return nil, fmt.Errorf("create token: store: %w", err)
	}
	if !e.ExpireTime.IsZero() {
		s.sched.add(e.ExpireTime, key)
	}
	s.log.Debug().Str("accessor", e.Accessor).Strs("policies", e.Policies).Time("expire_time", e.ExpireTime).Msg("token created")
	return warnings, nil
}

// checkNewEntry refuses an entry Create cannot store.
func checkNewEntry(e *Entry) error {
	if e == nil {
		return fmt.Errorf("%w: nil entry", ErrInvalidEntry)
	}
	switch {
	case e.Type != "" && e.Type != TypeService && e.Type != TypeBatch:
		return fmt.Errorf("%w: type %q; Coffer issues %q and %q tokens", ErrInvalidEntry, e.Type, TypeService, TypeBatch)
	case e.Type != TypeBatch && IsBatch(e.ID):
		return fmt.Errorf("%w: a chosen token id cannot begin with %q, which marks batch tokens; choose another id", ErrInvalidEntry, BatchPrefix)
	case e.NumUses < 0:
		return fmt.Errorf("%w: number of uses cannot be negative", ErrInvalidEntry)
	case e.TTL < 0, e.ExplicitMaxTTL < 0, e.Period < 0:
		return fmt.Errorf("%w: ttl, explicit max TTL and period must not be negative", ErrInvalidEntry)
	}
	return nil
}

// fillNewEntry normalises the type, policies and metadata of a new token and
// draws its id (when not chosen) and its accessor.
func fillNewEntry(e *Entry) error {
	e.Type = TypeService
	e.Policies = SanitizePolicies(e.Policies, false)
	if len(e.Meta) == 0 {
		e.Meta = nil
	}
	if e.ID == "" {
		id, err := randomString(24)
		if err != nil {
			return err
		}
		e.ID = "hvs." + id
	}
	acc, err := randomString(24)
	if err != nil {
		return err
	}
	e.Accessor = acc
	return nil
}

// grantTTL replaces e.TTL with the TTL granted at creation (now), sets
// ExpireTime, and makes a token that never expires non-renewable. It returns
// the warnings of a capped TTL.
func (s *Store) grantTTL(e *Entry, now time.Time) ([]string, error) {
	var warnings []string
	if hasPolicy(e.Policies, "root") && e.TTL == 0 && e.Period == 0 {
		e.TTL = e.ExplicitMaxTTL // root tokens are still bound by an explicit max TTL
	} else {
		ttl, w, err := s.opts.computeTTL(ttlRequest{Now: now, Created: now, Base: e.TTL, Period: e.Period, ExplicitMaxTTL: e.ExplicitMaxTTL})
		if err != nil {
			return nil, err
		}
		e.TTL, warnings = ttl, w
	}
	e.ExpireTime = time.Time{}
	if e.TTL > 0 {
		e.ExpireTime = now.Add(e.TTL)
	} else {
		e.Renewable = false
	}
	return warnings, nil
}

// createOpsLocked returns the transaction that stores e under key with its
// accessor (accKey) and its link under its parent, after checking that the
// id is free and the parent valid at now. s.mu is held.
func (s *Store) createOpsLocked(ctx context.Context, e *Entry, key, accKey string, now time.Time) ([]*storage.TxnOp, error) {
	existing, err := s.loadKey(ctx, key)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		return nil, fmt.Errorf("%w; choose another id", ErrDuplicateID)
	}
	tokOp, err := entryOp(key, e)
	if err != nil {
		return nil, err
	}
	accOp, err := putOp(accessorPrefix+accKey, accessorRecord{V: recordVersion, TokenKey: key})
	if err != nil {
		return nil, err
	}
	ops := []*storage.TxnOp{tokOp, accOp}
	if e.Parent != "" {
		linkOp, err := s.parentLinkOpLocked(ctx, e.Parent, key, now)
		if err != nil {
			return nil, err
		}
		ops = append(ops, linkOp)
	}
	return ops, nil
}

// parentLinkOpLocked returns the op that links the child under key to the
// token parent, which must be valid at now. s.mu is held.
func (s *Store) parentLinkOpLocked(ctx context.Context, parent, key string, now time.Time) (*storage.TxnOp, error) {
	pkey, err := s.hash(ctx, parent)
	if err != nil {
		return nil, err
	}
	p, err := s.loadKey(ctx, pkey)
	if err != nil {
		return nil, err
	}
	if p == nil || p.RevocationPending() || p.expired(now) {
		return nil, ErrParentNotFound
	}
	return putOp(parentPrefix+pkey+"/"+key, linkRecord{V: recordVersion})
}

// CreateRoot creates a root token that never expires: with id when given
// (the dev server's -dev-root-token-id), else a random one.
func (s *Store) CreateRoot(ctx context.Context, id string) (*Entry, error) {
	e := &Entry{ID: id, Policies: []string{"root"}, Path: "auth/token/root", DisplayName: "root"}
	if err := s.Create(ctx, e); err != nil {
		return nil, err
	}
	return e, nil
}

// base62 is the alphabet of generated tokens and accessors.
const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomString returns n characters drawn uniformly from base62.
func randomString(n int) (string, error) {
	var sb strings.Builder
	buf := make([]byte, n+n/2)
	for sb.Len() < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("read random bytes: %w", err)
		}
		for _, c := range buf {
			if c >= 248 { // 248 = 4*62: reject to keep the draw uniform
				continue
			}
			sb.WriteByte(base62[c%62])
			if sb.Len() == n {
				break
			}
		}
	}
	return sb.String(), nil
}
