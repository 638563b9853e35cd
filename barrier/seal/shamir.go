package seal

import (
	"context"
	"errors"
	"fmt"

	"github.com/cofferhq/coffer/storage"
)

// Shamir is Vault's default seal: the root key is sealed with a random unseal
// key, and the unseal key is split into shares held by operators. Nothing
// that opens the root key is stored; the server stays sealed until enough
// shares are given.
type Shamir struct{}

var _ Seal = (*Shamir)(nil)

// NewShamir returns the Shamir seal.
func NewShamir() *Shamir { return &Shamir{} }

// Type returns TypeShamir.
func (*Shamir) Type() string { return TypeShamir }

// RecoveryKeySupported is false: the shares are unseal keys.
func (*Shamir) RecoveryKeySupported() bool { return false }

// Init creates the root key and the unseal key, stores the root key sealed
// with the unseal key, and returns cfg.SecretShares shares of the unseal key.
func (s *Shamir) Init(ctx context.Context, b storage.Backend, cfg Config) ([]byte, [][]byte, error) {
	if cfg.Type == "" {
		cfg.Type = TypeShamir
	}
	if cfg.Type != TypeShamir {
		return nil, nil, &ConfigError{Msg: fmt.Sprintf("seal type %q given to the %s seal", cfg.Type, TypeShamir)}
	}
	if err := ValidateConfig(&cfg); err != nil {
		return nil, nil, err
	}
	if err := requireUninitialized(ctx, b); err != nil {
		return nil, nil, err
	}
	rootKey, err := randomKey()
	if err != nil {
		return nil, nil, err
	}
	kek, err := randomKey()
	if err != nil {
		return nil, nil, err
	}
	defer clear(kek)
	blob, err := sealBlob(kek, RootKeyPath, rootKey)
	if err != nil {
		return nil, nil, fmt.Errorf("seal root key: %w", err)
	}
	shares, err := splitKey(kek, cfg.SecretShares, cfg.SecretThreshold)
	if err != nil {
		return nil, nil, err
	}
	conf, err := encodeConfig(&cfg)
	if err != nil {
		return nil, nil, err
	}
	if err := writeEntries(ctx, b, []*storage.Entry{
		{Key: RootKeyPath, Value: blob},
		{Key: ConfigPath, Value: conf},
	}); err != nil {
		return nil, nil, err
	}
	return rootKey, shares, nil
}

// AutoUnseal returns ErrManualUnsealRequired.
func (*Shamir) AutoUnseal(context.Context, storage.Backend) ([]byte, error) {
	return nil, ErrManualUnsealRequired
}

// RootKeyFromShares combines the shares into the unseal key and opens the
// root key with it. Shares that open nothing return ErrInvalidShares;
// fewer than the threshold ErrTooFewShares.
func (s *Shamir) RootKeyFromShares(ctx context.Context, b storage.Backend, shares [][]byte) ([]byte, error) {
	cfg, err := s.Config(ctx, b)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, ErrNotInitialized
	}
	kek, err := combineShares(shares, cfg.SecretThreshold, ErrInvalidShares)
	if err != nil {
		return nil, err
	}
	defer clear(kek)
	blob, err := readBlob(ctx, b, RootKeyPath)
	if err != nil {
		return nil, err
	}
	rootKey, err := openBlob(kek, RootKeyPath, blob)
	if errors.Is(err, errBlobAuth) {
		return nil, ErrInvalidShares
	}
	if err != nil {
		return nil, err
	}
	if len(rootKey) != KeySize {
		return nil, fmt.Errorf("%s holds a %d-byte key, want %d: restore it from a backup", RootKeyPath, len(rootKey), KeySize)
	}
	return rootKey, nil
}

// VerifyShares checks that the unseal key shares open the root key.
func (s *Shamir) VerifyShares(ctx context.Context, b storage.Backend, shares [][]byte) error {
	rootKey, err := s.RootKeyFromShares(ctx, b, shares)
	clear(rootKey)
	return err
}

// Config returns the stored configuration, or (nil, nil) before init.
func (*Shamir) Config(ctx context.Context, b storage.Backend) (*Config, error) {
	return readConfig(ctx, b, TypeShamir)
}
