package seal

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cofferhq/coffer/barrier/seal/shamir"
	"github.com/cofferhq/coffer/storage"
)

// Storage keys and format versions. Part of the disk format: never change them.
const (
	// ConfigPath holds the Config: ConfigVersion, then JSON.
	ConfigPath = "core/seal-config"
	// RootKeyPath holds the root key sealed with the unseal key or the static key.
	RootKeyPath = "core/root-key"
	// RecoveryKeyPath holds SHA-256 of the recovery key, sealed with the static key.
	RecoveryKeyPath = "core/recovery-key"
	// BarrierKeyringPath is where the barrier keeps its keyring (barrier.KeyringPath).
	// Init refuses to run while it exists.
	BarrierKeyringPath = "core/keyring"

	// ConfigVersion is the first byte of ConfigPath's value.
	ConfigVersion byte = 1
	// BlobVersion is the first byte of RootKeyPath's and RecoveryKeyPath's values.
	BlobVersion byte = 1

	// KeySize is the size of the root key, the unseal key, the static key and
	// the recovery key.
	KeySize = 32

	nonceSize = 12
	tagSize   = 16
)

// Seal types, as Config.Type and sys/seal-status report them.
const (
	TypeShamir = "shamir"
	TypeStatic = "static"
)

// Sentinel errors. Compare with errors.Is.
var (
	// ErrInvalidShares: the shares combine into a key that does not open the root key.
	ErrInvalidShares = errors.New("the unseal keys given do not open this server's root key: check you used keys from this cluster's init")
	// ErrInvalidRecoveryShares: the recovery shares do not combine into this server's recovery key.
	ErrInvalidRecoveryShares = errors.New("the recovery keys given do not match this server's recovery key: check you used recovery keys from this cluster's init")
	// ErrTooFewShares: fewer shares than the threshold were given.
	ErrTooFewShares = errors.New("not enough key shares to reach the threshold")
	// ErrManualUnsealRequired: the Shamir seal cannot unseal by itself; the operator gives shares through sys/unseal.
	ErrManualUnsealRequired = errors.New("the shamir seal cannot unseal by itself: give the unseal keys with sys/unseal")
	// ErrAutoUnsealOnly: the Static seal unseals itself; recovery keys cannot unseal it.
	ErrAutoUnsealOnly = errors.New("the static seal unseals itself with its key file; recovery keys cannot unseal it")
	// ErrWrongSealKey: the static key file does not open the stored root key.
	ErrWrongSealKey = errors.New("the static seal key does not open this server's root key")
	// ErrNotInitialized: storage holds no seal configuration or root key.
	ErrNotInitialized = errors.New("the seal is not initialized: run sys/init first")
	// ErrAlreadyInitialized: Init found the barrier's keyring in storage.
	ErrAlreadyInitialized = errors.New("this server is already initialized: a barrier keyring exists in storage; unseal it instead, or wipe the storage to start over")
	// ErrTypeMismatch: storage was initialized with another seal type than the one configured.
	ErrTypeMismatch = errors.New("the configured seal type differs from the one this storage was initialized with")
)

// Config is how a seal was set up at init, stored at ConfigPath. Its JSON
// names are Vault's. For the Shamir seal SecretShares/SecretThreshold
// describe the unseal key shares and the recovery fields are 0; for the
// Static seal SecretShares = SecretThreshold = 1 and the recovery fields
// describe the recovery key shares.
type Config struct {
	Type              string `json:"type"`
	SecretShares      int    `json:"secret_shares"`
	SecretThreshold   int    `json:"secret_threshold"`
	RecoveryShares    int    `json:"recovery_shares"`
	RecoveryThreshold int    `json:"recovery_threshold"`
}

// Seal protects the root key. Implementations: *Shamir, *Static.
//
// A Seal owns its key material and its stored entries; the caller owns the
// barrier and the unseal progress. Every method takes the raw backend the
// seal entries live in (below the barrier).
type Seal interface {
	// Type names the seal: TypeShamir or TypeStatic.
	Type() string
	// RecoveryKeySupported reports whether Init issues recovery shares
	// (an auto-unsealing seal) rather than unseal shares.
	RecoveryKeySupported() bool
	// Init validates cfg (see ValidateConfig), creates a random root key,
	// stores the seal entries and returns the root key with the shares for
	// the operator: unseal key shares (Shamir) or recovery key shares
	// (Static). It refuses with ErrAlreadyInitialized when the barrier's
	// keyring exists, and overwrites the seal entries an interrupted init
	// may have left.
	Init(ctx context.Context, b storage.Backend, cfg Config) (rootKey []byte, shares [][]byte, err error)
	// AutoUnseal returns the root key without operator input, or
	// ErrManualUnsealRequired.
	AutoUnseal(ctx context.Context, b storage.Backend) (rootKey []byte, err error)
	// RootKeyFromShares combines unseal key shares (at least the threshold)
	// and returns the root key they open. Wrong shares: ErrInvalidShares.
	RootKeyFromShares(ctx context.Context, b storage.Backend, shares [][]byte) ([]byte, error)
	// VerifyShares checks operator authority for root-token generation and
	// similar: unseal key shares for Shamir, recovery key shares for Static.
	VerifyShares(ctx context.Context, b storage.Backend, shares [][]byte) error
	// Config returns the stored configuration, or (nil, nil) before init. A
	// configuration of another type returns ErrTypeMismatch.
	Config(ctx context.Context, b storage.Backend) (*Config, error)
}

// ConfigError is a seal configuration the operator must correct (HTTP 400).
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return "invalid seal configuration: " + e.Msg }

// Default recovery share counts of an auto-unsealing seal when both are 0.
const (
	DefaultRecoveryShares    = 5
	DefaultRecoveryThreshold = 3
)

// ValidateConfig checks cfg by Vault's rules and fills defaults in place:
//
//   - shamir: 1 <= secret_threshold <= secret_shares <= 255, threshold > 1 when
//     shares > 1; recovery_* must be 0.
//   - static: secret_* must be 0 or 1 (set to 1); recovery_* default to 5 and
//     3 when both are 0, and follow the same rules as secret_* for shamir.
//
// Errors are *ConfigError.
func ValidateConfig(cfg *Config) error {
	switch cfg.Type {
	case TypeShamir:
		var extra []string
		if cfg.RecoveryShares != 0 {
			extra = append(extra, "recovery_shares")
		}
		if cfg.RecoveryThreshold != 0 {
			extra = append(extra, "recovery_threshold")
		}
		if len(extra) > 0 {
			return &ConfigError{Msg: fmt.Sprintf("parameters %s not applicable to seal type %s", strings.Join(extra, ","), TypeShamir)}
		}
		return validateShares("secret", cfg.SecretShares, cfg.SecretThreshold)
	case TypeStatic:
		if !(cfg.SecretShares == 0 && cfg.SecretThreshold == 0) && !(cfg.SecretShares == 1 && cfg.SecretThreshold == 1) {
			return &ConfigError{Msg: fmt.Sprintf("parameters secret_shares,secret_threshold not applicable to seal type %s: it unseals itself; set recovery_shares and recovery_threshold instead", TypeStatic)}
		}
		cfg.SecretShares, cfg.SecretThreshold = 1, 1
		if cfg.RecoveryShares == 0 && cfg.RecoveryThreshold == 0 {
			cfg.RecoveryShares, cfg.RecoveryThreshold = DefaultRecoveryShares, DefaultRecoveryThreshold
		}
		return validateShares("recovery", cfg.RecoveryShares, cfg.RecoveryThreshold)
	case "":
		return &ConfigError{Msg: "seal type is empty: use " + TypeShamir + " or " + TypeStatic}
	default:
		return &ConfigError{Msg: fmt.Sprintf("unknown seal type %q: use %s or %s", cfg.Type, TypeShamir, TypeStatic)}
	}
}

func validateShares(kind string, shares, threshold int) error {
	switch {
	case shares < 1:
		return &ConfigError{Msg: kind + "_shares must be at least 1"}
	case shares > 255:
		return &ConfigError{Msg: kind + "_shares must be at most 255"}
	case threshold < 1:
		return &ConfigError{Msg: kind + "_threshold must be at least 1"}
	case threshold > shares:
		return &ConfigError{Msg: fmt.Sprintf("%s_threshold (%d) cannot be larger than %s_shares (%d)", kind, threshold, kind, shares)}
	case shares > 1 && threshold == 1:
		return &ConfigError{Msg: kind + "_threshold must be greater than 1 when there are several shares (one share would then open the server alone)"}
	}
	return nil
}

// readConfig reads ConfigPath and checks its type against want.
func readConfig(ctx context.Context, b storage.Backend, want string) (*Config, error) {
	e, err := b.Get(ctx, ConfigPath)
	if err != nil {
		return nil, fmt.Errorf("read seal configuration: %w", err)
	}
	if e == nil {
		return nil, nil
	}
	cfg, err := decodeConfig(e.Value)
	if err != nil {
		return nil, err
	}
	if cfg.Type != want {
		return nil, fmt.Errorf("%w: storage was initialized with the %s seal but this server is configured with the %s seal: fix the seal stanza of the configuration (seal migration is not supported)", ErrTypeMismatch, cfg.Type, want)
	}
	return cfg, nil
}

func encodeConfig(cfg *Config) ([]byte, error) {
	body, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encode seal configuration: %w", err)
	}
	return append([]byte{ConfigVersion}, body...), nil
}

func decodeConfig(value []byte) (*Config, error) {
	if len(value) == 0 || value[0] != ConfigVersion {
		v := -1
		if len(value) > 0 {
			v = int(value[0])
		}
		return nil, fmt.Errorf("decode %s: version %d, this build of coffer reads version %d: upgrade coffer, or restore the entry if it was altered on disk", ConfigPath, v, ConfigVersion)
	}
	var cfg Config
	if err := json.Unmarshal(value[1:], &cfg); err != nil {
		return nil, fmt.Errorf("decode %s: %w: restore the entry from a backup", ConfigPath, err)
	}
	return &cfg, nil
}

// requireUninitialized refuses Init on a server that has a barrier keyring.
func requireUninitialized(ctx context.Context, b storage.Backend) error {
	e, err := b.Get(ctx, BarrierKeyringPath)
	if err != nil {
		return fmt.Errorf("check for an existing keyring: %w", err)
	}
	if e != nil {
		return ErrAlreadyInitialized
	}
	return nil
}

// writeEntries stores entries in one transaction when b supports it. Without
// transactions ConfigPath, which marks the seal initialized, goes last.
func writeEntries(ctx context.Context, b storage.Backend, entries []*storage.Entry) error {
	if t, ok := b.(storage.Transactional); ok {
		ops := make([]*storage.TxnOp, len(entries))
		for i, e := range entries {
			ops[i] = &storage.TxnOp{Operation: storage.PutOperation, Entry: e}
		}
		if err := t.Transaction(ctx, ops); err != nil {
			return fmt.Errorf("store seal entries: %w", err)
		}
		return nil
	}
	for _, e := range entries {
		if err := b.Put(ctx, e); err != nil {
			return fmt.Errorf("store %s: %w", e.Key, err)
		}
	}
	return nil
}

// readBlob returns the stored blob at path, or ErrNotInitialized.
func readBlob(ctx context.Context, b storage.Backend, path string) ([]byte, error) {
	e, err := b.Get(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if e == nil {
		return nil, fmt.Errorf("%w: %s is missing", ErrNotInitialized, path)
	}
	return e.Value, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealBlob encrypts payload with key, bound to path.
func sealBlob(key []byte, path string, payload []byte) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(payload)+tagSize)
	out[0] = BlobVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("read nonce: %w", err)
	}
	return aead.Seal(out, out[1:], payload, []byte(path)), nil
}

// errBlobAuth is openBlob's error when key does not open the blob; callers
// replace it with the error the operator needs.
var errBlobAuth = errors.New("blob failed authentication")

// openBlob decrypts a blob stored at path. A wrong key (or an altered blob)
// returns errBlobAuth; a malformed blob a descriptive error.
func openBlob(key []byte, path string, blob []byte) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(blob) == 0 || blob[0] != BlobVersion {
		v := -1
		if len(blob) > 0 {
			v = int(blob[0])
		}
		return nil, fmt.Errorf("%s has version %d, this build of coffer reads version %d: upgrade coffer, or restore the entry if it was altered on disk", path, v, BlobVersion)
	}
	if len(blob) < 1+nonceSize+tagSize {
		return nil, fmt.Errorf("%s is truncated (%d bytes): it was altered on disk; restore it from a backup", path, len(blob))
	}
	pt, err := aead.Open(nil, blob[1:1+nonceSize], blob[1+nonceSize:], []byte(path))
	if err != nil {
		return nil, errBlobAuth
	}
	return pt, nil
}

// splitKey turns key into n shares of which t rebuild it. One share is the
// key itself.
func splitKey(key []byte, n, t int) ([][]byte, error) {
	if n == 1 {
		return [][]byte{append([]byte(nil), key...)}, nil
	}
	shares, err := shamir.Split(key, n, t)
	if err != nil {
		return nil, fmt.Errorf("split key into %d shares: %w", n, err)
	}
	return shares, nil
}

// combineShares rebuilds a key from at least threshold shares. invalid is
// the sentinel to wrap for shares that cannot be combined.
func combineShares(shares [][]byte, threshold int, invalid error) ([]byte, error) {
	if len(shares) < threshold {
		return nil, fmt.Errorf("%w: %d given, %d needed", ErrTooFewShares, len(shares), threshold)
	}
	for i, s := range shares {
		for j := range i {
			if bytes.Equal(s, shares[j]) {
				return nil, fmt.Errorf("%w: key %d and key %d are the same key: give %d different keys", invalid, j+1, i+1, threshold)
			}
		}
	}
	if threshold == 1 {
		if len(shares[0]) != KeySize {
			return nil, fmt.Errorf("%w: the key is %d bytes, want %d", invalid, len(shares[0]), KeySize)
		}
		return append([]byte(nil), shares[0]...), nil
	}
	for i, s := range shares {
		if len(s) != KeySize+1 {
			return nil, fmt.Errorf("%w: key %d is %d bytes, want %d", invalid, i+1, len(s), KeySize+1)
		}
	}
	key, err := shamir.Combine(shares)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", invalid, err)
	}
	return key, nil
}

func randomKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}
