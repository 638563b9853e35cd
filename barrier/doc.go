// Package barrier is Coffer's encryption barrier. Everything above it (core,
// engines) reads and writes plaintext through a *Barrier; everything below it
// (wal, merkle, storage, the replication packages) only ever sees the
// ciphertext it produces.
//
// # What it owns
//
//   - The keyring: a list of terms, each a random 256-bit AES key with its
//     install time. The highest term is the active one and encrypts every new
//     write; every term decrypts. Rotate adds a term; no term is ever removed,
//     so data written under an old term stays readable without a rewrite.
//   - The keyring's entry in storage, core/keyring, encrypted with the root
//     key that the seal (package barrier/seal) hands to Unseal.
//   - The sealed/unsealed state. While sealed every data call fails with
//     ErrSealed and no key is held in memory.
//
// # What it must never do
//
//   - Return bytes that did not authenticate: a value that was altered, cut
//     short, or copied under another key is an ErrDecrypt error, never data.
//   - Know about seals, shares, the WAL or replication classes: it takes a root
//     key and a storage.Backend, nothing else.
//   - Write the keyring anywhere but core/keyring, or let a caller overwrite that
//     entry through the plaintext API (ErrReservedKey).
//
// # Ciphertext format
//
// Every value the barrier writes, under every key except core/keyring, is
//
//	+---------+-----------------+------------------+-----------------------------------+
//	| version | term            | nonce            | AES-256-GCM(plaintext) || tag     |
//	| 1 byte  | 4 bytes, BE     | 12 random bytes  | len(plaintext) + 16 bytes         |
//	+---------+-----------------+------------------+-----------------------------------+
//
// with the storage key (the path, as bytes) as GCM's additional data, so a
// value copied under another key fails to authenticate. version is
// CiphertextVersion (1); term names the keyring key that sealed the value.
// This layout is part of the disk format and of the replication stream (WAL
// entries carry it verbatim): never change it. A new layout needs a new
// version byte, and readers must keep reading version 1.
//
// Nonces are random, so one key must not seal more than about 2^32 values
// (the GCM birthday bound): rotate well before KeyInfo.Encryptions gets there.
//
// # Keyring format
//
// core/keyring is stored in the same envelope as data, with term 0, which
// names the root key and is never a keyring term:
//
//	version (1) | term 0 (4 bytes) | nonce (12) | AES-256-GCM_rootKey(keyring) || tag, AAD = "core/keyring"
//
// The sealed keyring plaintext is
//
//	+---------------------+------------------------------------------------+
//	| KeyringVersion (1)  | JSON: {"active_term": N,                       |
//	| 1 byte              |        "keys": [{"term": 1,                    |
//	|                     |                  "key": "<base64 of 32 bytes>",|
//	|                     |                  "install_time": RFC 3339}]}   |
//	+---------------------+------------------------------------------------+
//
// Terms are unique, start at 1 and are listed in increasing order; active_term
// is the highest. Rotate writes the whole keyring in one Put, so a crash leaves
// either the old keyring or the new one.
//
// # Use
//
//	b := barrier.New(walLog)
//	ok, _ := b.Initialized(ctx)       // is there a keyring?
//	_ = b.Initialize(ctx, rootKey)    // once per cluster: creates term 1, stays sealed
//	_ = b.Unseal(ctx, rootKey)        // loads the keyring; data calls work now
//	_ = b.Put(ctx, &storage.Entry{Key: "secret/a", Value: plaintext})
//	ki, _ := b.Rotate(ctx)            // new writes use term ki.Term
//	b.Seal()                          // forget every key
package barrier
