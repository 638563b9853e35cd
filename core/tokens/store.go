package tokens

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
)

// Storage keys, relative to the view given to New.
const (
	saltKey        = "salt"
	idPrefix       = "id/"
	accessorPrefix = "accessor/"
	parentPrefix   = "parent/"
)

// System defaults, Vault's.
const (
	DefaultTTL                    = 768 * time.Hour
	DefaultMaxTTL                 = 768 * time.Hour
	DefaultExpirationInterval     = time.Second
	DefaultPendingRevocationDelay = time.Minute
)

// Errors of the store. The backend turns them into Vault's messages.
var (
	// ErrTokenNotFound: no valid token has this id (never existed, expired or revoked).
	ErrTokenNotFound = errors.New("token not found")
	// ErrAccessorNotFound: no token has this accessor.
	ErrAccessorNotFound = errors.New("accessor not found")
	// ErrParentNotFound: the parent named by Entry.Parent is not a valid token.
	ErrParentNotFound = errors.New("parent token not found")
	// ErrDuplicateID: a token with the requested id already exists.
	ErrDuplicateID = errors.New("cannot create a token with a duplicate ID")
	// ErrNotRenewable: the token never expires or was created non-renewable.
	ErrNotRenewable = errors.New("lease is not renewable")
	// ErrPastMaxTTL: the token cannot be extended past its max TTL.
	ErrPastMaxTTL = errors.New("past the max TTL, cannot renew")
	// ErrInvalidEntry: the entry given to Create is malformed.
	ErrInvalidEntry = errors.New("invalid token entry")
)

// Options configure a Store. Zero values take the defaults.
type Options struct {
	// DefaultTTL is the TTL of a token created without one (768h).
	DefaultTTL time.Duration
	// MaxTTL bounds every non-periodic token's life from its creation (768h).
	MaxTTL time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// ExpirationInterval is the longest the expiration manager sleeps between
	// two looks at the next expiry (1s). It normally wakes at the next
	// expiry; the bound makes an injected or adjusted clock take effect.
	ExpirationInterval time.Duration
	// PendingRevocationDelay is how long a token whose last use was consumed
	// may wait for its caller's Revoke before the manager revokes it (1m).
	PendingRevocationDelay time.Duration
}

// Validate reports a setting that cannot work.
func (o Options) Validate() error {
	switch {
	case o.DefaultTTL < 0:
		return fmt.Errorf("tokens: default TTL %s is negative; give a positive duration or 0 for %s", o.DefaultTTL, DefaultTTL)
	case o.MaxTTL < 0:
		return fmt.Errorf("tokens: max TTL %s is negative; give a positive duration or 0 for %s", o.MaxTTL, DefaultMaxTTL)
	case o.ExpirationInterval < 0:
		return fmt.Errorf("tokens: expiration interval %s is negative", o.ExpirationInterval)
	case o.PendingRevocationDelay < 0:
		return fmt.Errorf("tokens: pending revocation delay %s is negative", o.PendingRevocationDelay)
	case o.MaxTTL > 0 && o.DefaultTTL > o.MaxTTL:
		return fmt.Errorf("tokens: default TTL %s exceeds max TTL %s; lower the default or raise the max", o.DefaultTTL, o.MaxTTL)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.MaxTTL <= 0 {
		o.MaxTTL = DefaultMaxTTL
	}
	if o.DefaultTTL <= 0 {
		o.DefaultTTL = DefaultTTL
	}
	if o.DefaultTTL > o.MaxTTL {
		o.DefaultTTL = o.MaxTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ExpirationInterval <= 0 {
		o.ExpirationInterval = DefaultExpirationInterval
	}
	if o.PendingRevocationDelay <= 0 {
		o.PendingRevocationDelay = DefaultPendingRevocationDelay
	}
	return o
}

// Store is the local token store. Every method is safe for concurrent use;
// the writes (create, use, renew, revoke) are serialised by one mutex so a
// tree is never revoked while a child is being added to it.
type Store struct {
	storage logical.Storage
	opts    Options
	log     zerolog.Logger

	saltMu sync.Mutex
	salt   []byte

	mu sync.Mutex // serialises writes

	sched *scheduler

	runMu  sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a store over st (keys under sys/token/ of the barrier, local
// class). Invalid options are replaced by their defaults; call
// Options.Validate first to refuse them.
func New(st logical.Storage, opts Options, logger zerolog.Logger) *Store {
	return &Store{
		storage: st,
		opts:    opts.withDefaults(),
		log:     logger.With().Str("component", "tokens").Logger(),
		sched:   newScheduler(),
	}
}

func (s *Store) now() time.Time { return s.opts.Now() }

// loadSalt returns the HMAC key, creating it on first use.
func (s *Store) loadSalt(ctx context.Context) ([]byte, error) {
	s.saltMu.Lock()
	defer s.saltMu.Unlock()
	if s.salt != nil {
		return s.salt, nil
	}
	e, err := s.storage.Get(ctx, saltKey)
	if err != nil {
		return nil, fmt.Errorf("read token salt: %w", err)
	}
	if e != nil {
		var r saltRecord
		if err := json.Unmarshal(e.Value, &r); err == nil && r.V > 0 {
			if r.V > recordVersion {
				return nil, fmt.Errorf("read token salt: version %d is newer than this Coffer understands; upgrade Coffer", r.V)
			}
			if len(r.Salt) < 16 {
				return nil, fmt.Errorf("read token salt: %d bytes, want at least 16; the token store is damaged", len(r.Salt))
			}
			s.salt = r.Salt
			return s.salt, nil
		}
		if len(e.Value) == 32 { // the first token store wrote the raw salt
			s.salt = e.Value
			return s.salt, nil
		}
		return nil, errors.New("read token salt: unreadable record; the token store is damaged")
	}
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("generate token salt: %w", err)
	}
	b, err := json.Marshal(saltRecord{V: recordVersion, Salt: salt})
	if err != nil {
		return nil, err
	}
	if err := s.storage.Put(ctx, &storage.Entry{Key: saltKey, Value: b}); err != nil {
		return nil, fmt.Errorf("store token salt: %w", err)
	}
	s.salt = salt
	return salt, nil
}

// hash returns HMAC-SHA256(salt, v) in hex: the storage name of a token or accessor.
func (s *Store) hash(ctx context.Context, v string) (string, error) {
	salt, err := s.loadSalt(ctx)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(v))
	return hex.EncodeToString(m.Sum(nil)), nil
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

// loadKey reads the token stored under id/<key>; nil when there is none.
func (s *Store) loadKey(ctx context.Context, key string) (*Entry, error) {
	raw, err := s.storage.Get(ctx, idPrefix+key)
	if err != nil {
		return nil, fmt.Errorf("read token: %w", err)
	}
	if raw == nil {
		return nil, nil
	}
	return decodeEntry(raw.Value)
}

func putOp(key string, v any) (*storage.TxnOp, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: key, Value: b}}, nil
}

func deleteOp(key string) *storage.TxnOp {
	return &storage.TxnOp{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: key}}
}

func entryOp(key string, e *Entry) (*storage.TxnOp, error) {
	b, err := encodeEntry(e)
	if err != nil {
		return nil, err
	}
	return &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: idPrefix + key, Value: b}}, nil
}

// Create stores a new token. It fills ID when empty ("hvs." + random),
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

func (s *Store) create(ctx context.Context, e *Entry) ([]string, error) {
	if e == nil {
		return nil, fmt.Errorf("create token: %w: nil entry", ErrInvalidEntry)
	}
	switch {
	case e.Type != "" && e.Type != TypeService:
		return nil, fmt.Errorf("create token: %w: type %q; Coffer issues %q tokens only", ErrInvalidEntry, e.Type, TypeService)
	case e.NumUses < 0:
		return nil, fmt.Errorf("create token: %w: number of uses cannot be negative", ErrInvalidEntry)
	case e.TTL < 0, e.ExplicitMaxTTL < 0, e.Period < 0:
		return nil, fmt.Errorf("create token: %w: ttl, explicit max TTL and period must not be negative", ErrInvalidEntry)
	}
	e.Type = TypeService
	e.Policies = SanitizePolicies(e.Policies, false)
	if len(e.Meta) == 0 {
		e.Meta = nil
	}
	if e.ID == "" {
		id, err := randomString(24)
		if err != nil {
			return nil, fmt.Errorf("create token: %w", err)
		}
		e.ID = "hvs." + id
	}
	acc, err := randomString(24)
	if err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	e.Accessor = acc
	now := s.now()
	e.CreationTime = now
	e.Orphan = e.Parent == ""

	var warnings []string
	if hasPolicy(e.Policies, "root") && e.TTL == 0 && e.Period == 0 {
		e.TTL = e.ExplicitMaxTTL // root tokens are still bound by an explicit max TTL
	} else {
		ttl, w, err := s.opts.computeTTL(ttlRequest{Now: now, Created: now, Base: e.TTL, Period: e.Period, ExplicitMaxTTL: e.ExplicitMaxTTL})
		if err != nil {
			return nil, fmt.Errorf("create token: %w", err)
		}
		e.TTL, warnings = ttl, w
	}
	e.ExpireTime = time.Time{}
	if e.TTL > 0 {
		e.ExpireTime = now.Add(e.TTL)
	} else {
		e.Renewable = false
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
	existing, err := s.loadKey(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	if existing != nil {
		return nil, fmt.Errorf("create token: %w; choose another id", ErrDuplicateID)
	}
	tokOp, err := entryOp(key, e)
	if err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	accOp, err := putOp(accessorPrefix+accKey, accessorRecord{V: recordVersion, TokenKey: key})
	if err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	ops := []*storage.TxnOp{tokOp, accOp}
	if e.Parent != "" {
		pkey, err := s.hash(ctx, e.Parent)
		if err != nil {
			return nil, fmt.Errorf("create token: %w", err)
		}
		parent, err := s.loadKey(ctx, pkey)
		if err != nil {
			return nil, fmt.Errorf("create token: %w", err)
		}
		if parent == nil || parent.RevocationPending() || parent.expired(now) {
			return nil, fmt.Errorf("create token: %w", ErrParentNotFound)
		}
		linkOp, err := putOp(parentPrefix+pkey+"/"+key, linkRecord{V: recordVersion})
		if err != nil {
			return nil, fmt.Errorf("create token: %w", err)
		}
		ops = append(ops, linkOp)
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

// CreateRoot creates a root token that never expires: with id when given
// (the dev server's -dev-root-token-id), else a random one.
func (s *Store) CreateRoot(ctx context.Context, id string) (*Entry, error) {
	e := &Entry{ID: id, Policies: []string{"root"}, Path: "auth/token/root", DisplayName: "root"}
	if err := s.Create(ctx, e); err != nil {
		return nil, err
	}
	return e, nil
}

// Lookup returns the valid token id, or nil when it does not exist, was
// revoked, has expired (it is then revoked, with its children) or has had
// its last use consumed.
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

// Revoke revokes the token and all its descendants. Revoking a token that
// does not exist is not an error.
func (s *Store) Revoke(ctx context.Context, id string) error {
	if id == "" {
		return nil
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
// live on. ErrTokenNotFound when the token does not exist.
func (s *Store) RevokeOrphan(ctx context.Context, id string) error {
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

// Renew extends the token by increment (0: its own TTL), respecting its
// period, its explicit max TTL and the system max TTL, and returns it
// updated. ErrTokenNotFound for an invalid token, ErrNotRenewable for one
// that never expires or was created non-renewable, ErrPastMaxTTL when it
// cannot live longer.
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
