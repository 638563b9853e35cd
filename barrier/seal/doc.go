// Package seal protects the barrier's root key. It sits below the barrier: it
// writes its entries straight into the storage.Backend it is given (in
// practice the WAL), in its own sealed formats, never through the barrier.
//
// # What it owns
//
//   - The key material that opens the root key: the unseal key (KEK) split
//     into Shamir shares for the Shamir seal; a key file for the Static seal,
//     which also issues recovery key shares.
//   - Its stored entries: core/seal-config, core/root-key and (Static)
//     core/recovery-key.
//
// # What it must never do
//
//   - Keep unseal progress: collecting shares one sys/unseal call at a time,
//     the nonce and the reset are the caller's (core). A Seal is stateless
//     between calls except for the Static seal's key, read once by NewStatic.
//   - Touch the barrier or its keyring beyond checking that core/keyring is
//     absent before Init (so Init can never orphan an initialized server's
//     data), or hand out the root key for shares that do not open it.
//
// # Stored formats
//
// These layouts are part of the disk format: never change them; a new layout
// gets a new version byte and readers keep reading the old one.
//
// core/seal-config holds the Config:
//
//	+-------------------------+---------------------------------------------------+
//	| ConfigVersion (1) 1 byte| JSON {"type", "secret_shares", "secret_threshold", |
//	|                         |       "recovery_shares", "recovery_threshold"}     |
//	+-------------------------+---------------------------------------------------+
//
// core/root-key and core/recovery-key are sealed blobs:
//
//	+-----------------------+------------------+------------------------------------+
//	| BlobVersion (1) 1 byte| nonce, 12 bytes  | AES-256-GCM(payload) || 16-byte tag |
//	+-----------------------+------------------+------------------------------------+
//
// with the entry's own path as GCM's additional data. core/root-key's payload
// is the 32-byte root key, sealed with the unseal key (Shamir) or the static
// key (Static). core/recovery-key's payload is SHA-256 of the 32-byte
// recovery key, sealed with the static key: enough to check recovery shares,
// never enough to rebuild them.
//
// # Shares
//
// Shares come from package shamir (barrier/seal/shamir, Shamir sharing over
// GF(2^8)): each is the secret's length plus one byte (the x coordinate), so
// 33 bytes for a 32-byte key. With one share (threshold 1), the share is the
// key itself, 32 bytes, as in Vault. The layout and the field are Vault's, and
// those of github.com/hashicorp/vault/shamir that Coffer used before, so
// shares handed out by earlier builds still open their server
// (testdata/seal_vectors.json holds storage and shares written then).
//
// # Use by core
//
//	s := seal.NewShamir()                           // or seal.NewStatic("/etc/coffer/seal.key")
//	cfg := seal.Config{Type: s.Type(), SecretShares: 5, SecretThreshold: 3}
//	_ = seal.ValidateConfig(&cfg)                    // *ConfigError: a 400 for the operator
//	root, shares, _ := s.Init(ctx, walLog, cfg)      // give root to barrier.Initialize, shares to the operator
//	root, _ = s.RootKeyFromShares(ctx, walLog, got)  // Shamir, once core has cfg.SecretThreshold shares
//	root, _ = s.AutoUnseal(ctx, walLog)              // Static, at start
//	_ = s.VerifyShares(ctx, walLog, got)             // operator authority: unseal shares (Shamir), recovery shares (Static)
//
// Init refuses only when the barrier's keyring exists; seal entries left by
// an init that stopped before barrier.Initialize are overwritten, since no
// data was ever sealed under that root key.
package seal
