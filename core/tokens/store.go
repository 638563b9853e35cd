package tokens

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/cofferhq/coffer/internal/clock"
	"github.com/cofferhq/coffer/logical"
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
	// ErrBatchNotRenewable: a batch token's expiry is signed inside it.
	ErrBatchNotRenewable = errors.New("batch tokens cannot be renewed")
	// ErrBatchNotRevocable: a batch token is not stored, so nothing can be
	// deleted to end it; it is valid until it expires.
	ErrBatchNotRevocable = errors.New("batch tokens cannot be revoked")
	// ErrNoBatchKey: this cluster has no batch token signing key and may
	// not make one (a DR secondary holds its primary's); the error says why.
	ErrNoBatchKey = errors.New("no batch token signing key on this cluster")
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

	// BatchKeyStorage holds the batch token keys (batch.go, "The keys"):
	// this cluster's signing key at BatchSigningKeyPath, which core puts at
	// a path of the local class (never shipped to a performance secondary,
	// shipped to DR secondaries), and the published public key at
	// BatchPublicKeyPath, a path of the replicated class, so that the
	// clusters following the publisher verify its tokens. Give all three or
	// none; without them, batch tokens are refused.
	BatchKeyStorage     logical.Storage
	BatchSigningKeyPath string
	BatchPublicKeyPath  string
	// CanGenerateBatchKey reports whether this cluster may make its signing
	// key when it has none: nil when it may (nil function: always), else the
	// reason, which a create of a batch token then answers with. Core
	// refuses on a DR secondary, whose key is its primary's.
	CanGenerateBatchKey func() error
	// CanPublishBatchKey reports whether this cluster may publish its public
	// key at BatchPublicKeyPath, replacing one that is not its own: nil when
	// it may (nil function: always). Core refuses on performance and DR
	// secondaries: the published key there is their primary's, and their
	// own tokens stay valid on them only.
	CanPublishBatchKey func() error
	// RoleStorage holds the token roles (roles.go), at a replicated path
	// (core: core/token-roles/): roles are configuration, the same on every
	// cluster of a replication set. Nil: roles/ and create/<role> answer 404.
	RoleStorage logical.Storage
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
	case (o.BatchKeyStorage == nil) != (o.BatchSigningKeyPath == "") || (o.BatchKeyStorage == nil) != (o.BatchPublicKeyPath == ""):
		return errors.New("tokens: BatchKeyStorage, BatchSigningKeyPath and BatchPublicKeyPath go together; give all three (batch tokens enabled) or none")
	case o.BatchKeyStorage != nil && o.BatchSigningKeyPath == o.BatchPublicKeyPath:
		return errors.New("tokens: BatchSigningKeyPath and BatchPublicKeyPath are the same path; the signing key must stay local while the public key is replicated")
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
		o.Now = clock.Now
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

	batchMu        sync.Mutex
	batchSigner    ed25519.PrivateKey // nil until loaded; never caches "no key"
	batchPublished ed25519.PublicKey  // nil until loaded; never caches "no key"

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
