package seal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/cofferhq/coffer/storage"
)

// Static is an auto-unsealing seal: the root key is sealed with a 32-byte
// key read from a file, so the server unseals itself at start. Init issues
// recovery key shares instead of unseal shares; they authorise sensitive
// operations (VerifyShares) but cannot unseal.
//
// Whoever reads the key file and the storage reads every secret: keep the
// file on another volume than the storage, readable by coffer alone.
type Static struct {
	keyFile string
	key     []byte
}

var _ Seal = (*Static)(nil)

// NewStatic reads the key in keyFile. The file holds 32 bytes, written raw
// (random binary), as 64 hex characters, or in base64 (standard or URL
// alphabet, padded or not); whitespace around the text forms is ignored. Generate one with
// `openssl rand -hex 32 > coffer-seal.key`.
func NewStatic(keyFile string) (*Static, error) {
	data, err := os.ReadFile(keyFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("static seal: key file %s does not exist: create it with `openssl rand -hex 32 > %s` before the first start, or fix the seal's key_file setting", keyFile, keyFile)
		}
		return nil, fmt.Errorf("static seal: read key file: %w", err)
	}
	key, err := parseStaticKey(data)
	clear(data)
	if err != nil {
		return nil, fmt.Errorf("static seal: key file %s: %w", keyFile, err)
	}
	return &Static{keyFile: keyFile, key: key}, nil
}

// parseStaticKey accepts 32 raw bytes, 64 hex characters or base64 of 32
// bytes. A 32-byte file made only of printable text is not taken as a raw key:
// a random key is that by chance once in 10^13, while a 32-character hex or
// base64 string (a 16- or 24-byte key) or a passphrase is a likely mistake.
func parseStaticKey(data []byte) ([]byte, error) {
	if len(data) == KeySize && !isText(data) {
		return append([]byte(nil), data...), nil
	}
	text := bytes.TrimSpace(data)
	if len(text) == 2*KeySize {
		key := make([]byte, KeySize)
		if _, err := hex.Decode(key, text); err == nil {
			return key, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		key := make([]byte, enc.DecodedLen(len(text)))
		n, err := enc.Decode(key, text)
		if err == nil && n == KeySize {
			return key[:n], nil
		}
		clear(key)
	}
	return nil, fmt.Errorf("holds %d bytes that are not a 32-byte key: it must hold 32 random raw bytes, 64 hex characters, or base64 of 32 bytes (generate one with `openssl rand -hex 32`)", len(data))
}

// isText reports whether data is only printable ASCII and whitespace.
func isText(data []byte) bool {
	for _, c := range data {
		if (c < 0x20 || c > 0x7e) && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// Type returns TypeStatic.
func (*Static) Type() string { return TypeStatic }

// RecoveryKeySupported is true: Init issues recovery shares.
func (*Static) RecoveryKeySupported() bool { return true }

// Init creates the root key and a recovery key, stores the root key and the
// recovery key's hash sealed with the static key, and returns the recovery
// key shares (cfg.RecoveryShares, default 5 of which 3 rebuild it).
func (s *Static) Init(ctx context.Context, b storage.Backend, cfg Config) ([]byte, [][]byte, error) {
	if cfg.Type == "" {
		cfg.Type = TypeStatic
	}
	if cfg.Type != TypeStatic {
		return nil, nil, &ConfigError{Msg: fmt.Sprintf("seal type %q given to the %s seal", cfg.Type, TypeStatic)}
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
	rootBlob, err := sealBlob(s.key, RootKeyPath, rootKey)
	if err != nil {
		return nil, nil, fmt.Errorf("seal root key: %w", err)
	}
	recoveryKey, err := randomKey()
	if err != nil {
		return nil, nil, err
	}
	defer clear(recoveryKey)
	sum := sha256.Sum256(recoveryKey)
	recoveryBlob, err := sealBlob(s.key, RecoveryKeyPath, sum[:])
	if err != nil {
		return nil, nil, fmt.Errorf("seal recovery key: %w", err)
	}
	shares, err := splitKey(recoveryKey, cfg.RecoveryShares, cfg.RecoveryThreshold)
	if err != nil {
		return nil, nil, err
	}
	conf, err := encodeConfig(&cfg)
	if err != nil {
		return nil, nil, err
	}
	if err := writeEntries(ctx, b, []*storage.Entry{
		{Key: RootKeyPath, Value: rootBlob},
		{Key: RecoveryKeyPath, Value: recoveryBlob},
		{Key: ConfigPath, Value: conf},
	}); err != nil {
		return nil, nil, err
	}
	return rootKey, shares, nil
}

// AutoUnseal opens the stored root key with the static key.
func (s *Static) AutoUnseal(ctx context.Context, b storage.Backend) ([]byte, error) {
	cfg, err := s.Config(ctx, b)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, ErrNotInitialized
	}
	blob, err := readBlob(ctx, b, RootKeyPath)
	if err != nil {
		return nil, err
	}
	rootKey, err := openBlob(s.key, RootKeyPath, blob)
	if errors.Is(err, errBlobAuth) {
		return nil, fmt.Errorf("%w: the key in %s is not the key this server was initialized with: restore that key file", ErrWrongSealKey, s.keyFile)
	}
	if err != nil {
		return nil, err
	}
	if len(rootKey) != KeySize {
		return nil, fmt.Errorf("%s holds a %d-byte key, want %d: restore it from a backup", RootKeyPath, len(rootKey), KeySize)
	}
	return rootKey, nil
}

// RootKeyFromShares returns ErrAutoUnsealOnly: recovery keys do not unseal.
func (*Static) RootKeyFromShares(context.Context, storage.Backend, [][]byte) ([]byte, error) {
	return nil, ErrAutoUnsealOnly
}

// VerifyShares checks recovery key shares against the stored hash.
func (s *Static) VerifyShares(ctx context.Context, b storage.Backend, shares [][]byte) error {
	cfg, err := s.Config(ctx, b)
	if err != nil {
		return err
	}
	if cfg == nil {
		return ErrNotInitialized
	}
	key, err := combineShares(shares, cfg.RecoveryThreshold, ErrInvalidRecoveryShares)
	if err != nil {
		return err
	}
	defer clear(key)
	blob, err := readBlob(ctx, b, RecoveryKeyPath)
	if err != nil {
		return err
	}
	want, err := openBlob(s.key, RecoveryKeyPath, blob)
	if errors.Is(err, errBlobAuth) {
		return fmt.Errorf("%w: the key in %s does not open %s: restore the key file this server was initialized with", ErrWrongSealKey, s.keyFile, RecoveryKeyPath)
	}
	if err != nil {
		return err
	}
	got := sha256.Sum256(key)
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return ErrInvalidRecoveryShares
	}
	return nil
}

// Config returns the stored configuration, or (nil, nil) before init.
func (*Static) Config(ctx context.Context, b storage.Backend) (*Config, error) {
	return readConfig(ctx, b, TypeStatic)
}

// Wrapper is a seal that holds a key of its own at boot, without an
// operator (Static): it encrypts the few records that must be read before
// the barrier opens, such as an activation that survives a restart. Shamir
// has no such key and does not implement it.
type Wrapper interface {
	// Wrap encrypts plaintext for purpose (a name that binds the blob to
	// its use: a blob wrapped for one purpose does not unwrap for another).
	Wrap(purpose string, plaintext []byte) ([]byte, error)
	// Unwrap decrypts what Wrap returned for the same purpose.
	Unwrap(purpose string, blob []byte) ([]byte, error)
}

var _ Wrapper = (*Static)(nil)

// wrapAD keeps wrapped records apart from the seal's own entries, which are
// bound to their storage paths.
func wrapAD(purpose string) string { return "coffer-seal-wrap:" + purpose }

// Wrap encrypts plaintext with the static key (AES-256-GCM, BlobVersion).
func (s *Static) Wrap(purpose string, plaintext []byte) ([]byte, error) {
	return sealBlob(s.key, wrapAD(purpose), plaintext)
}

// Unwrap decrypts a blob of Wrap. A blob that does not open with this key
// (another key file, or an altered blob) is an error that says so.
func (s *Static) Unwrap(purpose string, blob []byte) ([]byte, error) {
	pt, err := openBlob(s.key, wrapAD(purpose), blob)
	if errors.Is(err, errBlobAuth) {
		return nil, fmt.Errorf("static seal: the %s record does not open with the key in %s: the key file changed since it was written, or the record was altered", purpose, s.keyFile)
	}
	return pt, err
}
