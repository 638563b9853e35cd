package tokens

import (
	"context"
	"fmt"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// Renew extends the token by increment (0: its own TTL), respecting its
// period, its explicit max TTL and the system max TTL, and returns it
// updated. ErrTokenNotFound for an invalid token, ErrNotRenewable for one
// that never expires or was created non-renewable, ErrBatchNotRenewable for
// a batch token, ErrPastMaxTTL when it cannot live longer.
func (s *Store) Renew(ctx context.Context, id string, increment time.Duration) (*Entry, error) {
	e, _, _, err := s.renew(ctx, id, increment)
	return e, err
}

// renew is Renew; it also returns the TTL granted and the warnings.
func (s *Store) renew(ctx context.Context, id string, increment time.Duration) (*Entry, time.Duration, []string, error) {
	if increment < 0 {
		return nil, 0, nil, fmt.Errorf("renew token: %w: increment must not be negative", ErrInvalidEntry)
	}
	e, err := s.lookup(ctx, id, false)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("renew token: %w", err)
	}
	if e == nil {
		return nil, 0, nil, ErrTokenNotFound
	}
	if e.Type == TypeBatch {
		return nil, 0, nil, ErrBatchNotRenewable
	}
	key, err := s.hash(ctx, id)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("renew token: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err = s.loadKey(ctx, key) // again, under the lock
	if err != nil {
		return nil, 0, nil, fmt.Errorf("renew token: %w", err)
	}
	now := s.now()
	if e == nil || e.RevocationPending() || e.expired(now) {
		return nil, 0, nil, ErrTokenNotFound
	}
	if e.ExpireTime.IsZero() {
		return nil, 0, nil, fmt.Errorf("%w: the token never expires, there is nothing to renew", ErrNotRenewable)
	}
	if !e.Renewable {
		return nil, 0, nil, fmt.Errorf("%w: the token was created with renewable=false; create a new token before it expires", ErrNotRenewable)
	}
	ttl, warnings, err := s.opts.computeTTL(ttlRequest{
		Now: now, Created: e.CreationTime, Increment: increment, Base: e.TTL, Period: e.Period, ExplicitMaxTTL: e.ExplicitMaxTTL,
	})
	if err != nil {
		return nil, 0, nil, err
	}
	e.ExpireTime = now.Add(ttl)
	e.LastRenewal = now
	op, err := entryOp(key, e)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("renew token: %w", err)
	}
	if err := s.storage.Transaction(ctx, []*storage.TxnOp{op}); err != nil {
		return nil, 0, nil, fmt.Errorf("renew token: store: %w", err)
	}
	s.sched.add(e.ExpireTime, key)
	s.log.Debug().Str("accessor", e.Accessor).Time("expire_time", e.ExpireTime).Msg("token renewed")
	return e, ttl, warnings, nil
}
