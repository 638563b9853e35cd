package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"
)

// Leases: a service token that expires holds a lease, named as in Vault by
// its creation path and its storage key: "auth/token/create/<hmac>" or
// "auth/userpass/login/alice/<hmac>". The HMAC names the token without
// revealing it. A token that never expires (a root token) has no lease. The
// leases are local to each cluster, as the tokens are. sys/leases is served
// from these functions (core/leases.go).

// ErrLeaseNotFound: no lease has this id (Vault answers 400 "invalid lease").
var ErrLeaseNotFound = errors.New("invalid lease")

// Lease is one token's lease.
type Lease struct {
	ID    string
	Entry *Entry
	key   string
}

func leaseID(e *Entry, key string) string { return path.Join(e.Path, key) }

func hasLease(e *Entry) bool { return e.Type != TypeBatch && !e.ExpireTime.IsZero() }

// Leases returns the leases whose id begins with prefix, sorted by id.
func (s *Store) Leases(ctx context.Context, prefix string) ([]Lease, error) {
	keys, err := s.storage.List(ctx, idPrefix)
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	now := s.now()
	var out []Lease
	for _, key := range keys {
		e, err := s.loadKey(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("list leases: %w", err)
		}
		if e == nil || !hasLease(e) || e.expired(now) || e.RevocationPending() {
			continue
		}
		if id := leaseID(e, key); strings.HasPrefix(id, prefix) {
			out = append(out, Lease{ID: id, Entry: e, key: key})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// LookupLease returns the lease with this id; ErrLeaseNotFound when none.
func (s *Store) LookupLease(ctx context.Context, id string) (*Lease, error) {
	key := path.Base(id)
	if id == "" || key == "." || key == "/" {
		return nil, ErrLeaseNotFound
	}
	e, err := s.validKey(ctx, key, false)
	if err != nil {
		return nil, fmt.Errorf("look up lease: %w", err)
	}
	if e == nil || !hasLease(e) || leaseID(e, key) != strings.TrimSuffix(id, "/") {
		return nil, ErrLeaseNotFound
	}
	return &Lease{ID: leaseID(e, key), Entry: e, key: key}, nil
}

// RevokeLease revokes the token holding the lease, with its descendants.
// An unknown lease is not an error (Vault's revoke is idempotent).
func (s *Store) RevokeLease(ctx context.Context, id string) error {
	l, err := s.LookupLease(ctx, id)
	if errors.Is(err, ErrLeaseNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err = s.revokeTreeLocked(ctx, l.key)
	return err
}

// RevokeLeasePrefix revokes every lease under prefix and returns how many
// tokens went. With force, a failure is logged and the rest goes on.
func (s *Store) RevokeLeasePrefix(ctx context.Context, prefix string, force bool) (int, error) {
	ls, err := s.Leases(ctx, prefix)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	total := 0
	for _, l := range ls {
		n, err := s.revokeTreeLocked(ctx, l.key)
		total += n
		if err != nil && !force {
			return total, fmt.Errorf("revoke leases under %q: %w", prefix, err)
		}
		if err != nil {
			s.log.Warn().Err(err).Str("accessor", l.Entry.Accessor).Msg("revoke-force: could not revoke a lease; going on")
		}
	}
	return total, nil
}

// LeaseData is the "data" of Vault's sys/leases/lookup for l at now.
func LeaseData(l *Lease, now time.Time) map[string]any {
	e := l.Entry
	d := map[string]any{
		"id":           l.ID,
		"issue_time":   e.CreationTime.UTC(),
		"expire_time":  e.ExpireTime.UTC(),
		"last_renewal": nil,
		"renewable":    e.Renewable,
		"ttl":          max(int64(e.ExpireTime.Sub(now)/time.Second), 0),
	}
	if !e.LastRenewal.IsZero() {
		d["last_renewal"] = e.LastRenewal.UTC()
	}
	return d
}

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.now() }

// TidyResult counts what Tidy removed.
type TidyResult struct {
	Expired, Accessors, ParentLinks int
}

// Tidy revokes the expired tokens the expiration manager has not reached
// yet and removes accessor records and parent links left pointing at no
// token (by a crash between two transactions of an older release, or a
// storage restored from a backup).
func (s *Store) Tidy(ctx context.Context) (TidyResult, error) {
	var res TidyResult
	keys, err := s.storage.List(ctx, idPrefix)
	if err != nil {
		return res, fmt.Errorf("tidy tokens: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, key := range keys {
		e, err := s.loadKey(ctx, key)
		if err != nil {
			return res, fmt.Errorf("tidy tokens: %w", err)
		}
		if e == nil || !(e.expired(now) || e.RevocationPending()) {
			continue
		}
		n, err := s.revokeTreeLocked(ctx, key)
		res.Expired += n
		if err != nil {
			return res, fmt.Errorf("tidy tokens: %w", err)
		}
	}
	if res.Accessors, err = s.tidyAccessorsLocked(ctx); err != nil {
		return res, err
	}
	res.ParentLinks, err = s.tidyParentLinksLocked(ctx)
	return res, err
}

func (s *Store) tidyAccessorsLocked(ctx context.Context) (int, error) {
	accs, err := s.storage.List(ctx, accessorPrefix)
	if err != nil {
		return 0, fmt.Errorf("tidy accessors: %w", err)
	}
	n := 0
	for _, a := range accs {
		raw, err := s.storage.Get(ctx, accessorPrefix+a)
		if err != nil {
			return n, fmt.Errorf("tidy accessors: %w", err)
		}
		if raw == nil {
			continue
		}
		// A record this code cannot read (a newer version, damage) is left
		// alone: only one that names a missing token is dangling.
		var r accessorRecord
		if json.Unmarshal(raw.Value, &r) != nil || r.TokenKey == "" || r.V > recordVersion {
			continue
		}
		tok, err := s.storage.Get(ctx, idPrefix+r.TokenKey)
		if err != nil {
			return n, fmt.Errorf("tidy accessors: %w", err)
		}
		if tok != nil {
			continue
		}
		if err := s.storage.Delete(ctx, accessorPrefix+a); err != nil {
			return n, fmt.Errorf("tidy accessors: %w", err)
		}
		n++
	}
	return n, nil
}

func (s *Store) tidyParentLinksLocked(ctx context.Context) (int, error) {
	parents, err := s.storage.List(ctx, parentPrefix)
	if err != nil {
		return 0, fmt.Errorf("tidy parent links: %w", err)
	}
	n := 0
	for _, p := range parents {
		children, err := s.storage.List(ctx, parentPrefix+p)
		if err != nil {
			return n, fmt.Errorf("tidy parent links: %w", err)
		}
		for _, c := range children {
			tok, err := s.storage.Get(ctx, idPrefix+c)
			if err != nil {
				return n, fmt.Errorf("tidy parent links: %w", err)
			}
			if tok != nil || strings.HasSuffix(c, "/") {
				continue
			}
			if err := s.storage.Delete(ctx, parentPrefix+p+c); err != nil {
				return n, fmt.Errorf("tidy parent links: %w", err)
			}
			n++
		}
	}
	return n, nil
}
