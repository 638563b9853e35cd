// Package transit is Coffer's transit secrets engine ("encryption as a
// service"), with the HTTP API of Vault's transit engine so vault/api, hvac
// and the vault CLI work unchanged: named keys that never leave the engine
// encrypt, decrypt, sign, verify and HMAC data sent to it.
//
// The package owns the named keys of one mount (their versions, material and
// policy settings) and the cryptography done with them. It must never import
// core, httpapi, the WAL or NATS, never keep a key or its material in memory
// between requests, never return private or symmetric key material, and
// never decide on authorization: the router has checked the token's policy
// before a request arrives.
//
// # Endpoints (relative to the mount, e.g. transit/)
//
//	keys/                          list: {"keys": [...]}, 404 when there is none
//	keys/<name>                    write: create (type, exportable,
//	                               allow_plaintext_backup, key_size for hmac);
//	                               read; delete (only with deletion_allowed)
//	keys/<name>/config             write: min_decryption_version,
//	                               min_encryption_version, deletion_allowed,
//	                               exportable, allow_plaintext_backup
//	keys/<name>/rotate             write: add a new latest version
//	encrypt/<name>                 write: plaintext -> ciphertext (creates an
//	                               aes256-gcm96 key, or `type`, when missing)
//	decrypt/<name>                 write: ciphertext -> plaintext
//	rewrap/<name>                  write: ciphertext -> ciphertext of the latest
//	                               (or key_version) version
//	datakey/plaintext|wrapped/<name>  write: bits 128/256/512 (default 256)
//	sign/<name>[/<hash>]           write: input -> signature
//	verify/<name>[/<hash>]         write: input + signature or hmac -> valid
//	hmac/<name>[/<hash>]           write: input -> hmac
//	random[/<source>][/<bytes>]    write: random_bytes (base64 or hex)
//	hash[/<algorithm>]             write: input -> sum (hex or base64)
//
// Key types: aes128-gcm96, aes256-gcm96 (the default), chacha20-poly1305
// (encrypt, decrypt, rewrap, datakey), rsa-2048 and rsa-4096 (those and
// sign/verify; encryption is RSA-OAEP with SHA-256), ed25519 and ecdsa-p256 (sign/verify), hmac (hmac/ only, key_size
// 32 to 512 bytes, default 32). Every version of every type also has its
// own random 32-byte HMAC key, used by hmac/ for non-hmac types, as Vault
// keeps one. Ciphertexts, signatures and HMACs are "vault:v<N>:<base64>";
// an AEAD ciphertext is base64(nonce || ciphertext || tag) with a 12-byte
// random nonce. Hash algorithms are sha2-224/256/384/512 and
// sha3-224/256/384/512 (default sha2-256); ed25519 ignores them, as in
// Vault. ECDSA signatures are ASN.1 (marshaling_algorithm asn1) or JWS r||s
// with base64url (jws); RSA signatures PSS (salt_length auto by default) or
// pkcs1v15. encrypt, decrypt, rewrap, sign, verify and hmac take batch_input.
//
// # Decisions
//
//   - Key derivation and convergent encryption are not supported: derived
//     or convergent_encryption true is refused with 400 when a key is
//     created, and so is an encrypt that would create its key with a
//     context (Vault would make that key derived). A context sent to an
//     existing key is checked to be base64 and ignored, as Vault does for a
//     key without derivation; a nonce is refused with Vault's "nonce
//     provided when not allowed". Reads report derived and
//     supports_derivation false.
//   - auto_rotate_period is accepted only as 0; rotate with keys/<name>/rotate.
//   - Export, backup, restore, import, trim and cache-config are not
//     built: export/... answers 404 saying so, the others 404 like any
//     unknown path. exportable and allow_plaintext_backup are stored and
//     reported (and cannot be turned off once on: Vault ignores the attempt,
//     coffer too, with a warning) but unlock nothing.
//   - random's sources (platform, seal, all) all read crypto/rand.
//   - Prehashed input is refused for ed25519 (Vault's ed25519ph is not
//     built); sha1 and hash_algorithm "none" are not offered.
//   - RSA encryption is OAEP only: padding_scheme pkcs1v15, which Vault
//     offers, is refused with 400 (its decryption errors are a padding
//     oracle, and Go deprecates it).
//   - A failed RSA decryption is a 400 (Vault answers 500): it is the
//     caller's ciphertext that is wrong.
//
// # Errors (Vault's words, checked against its source, so clients that match
// them keep working)
//
//   - Malformed ciphertext: 400 "invalid ciphertext: no prefix", "...: wrong
//     number of fields", "...: version number could not be decoded", "...:
//     version is too new", "...: could not decode base64", "invalid
//     ciphertext length"; signatures the same with "invalid signature".
//   - A version below min_decryption_version: 400 "ciphertext or signature
//     version is disallowed by policy (too old)".
//   - A tampered ciphertext: 400 with the AEAD's error, "cipher: message
//     authentication failed" for AES-GCM.
//   - A missing key: 400 "encryption key not found" (decrypt, rewrap,
//     datakey, hmac), "signing key not found", "signature verification key
//     not found", "key not found" (rotate), "no existing key named <name>
//     could be found" (config), "error deleting policy <name>: could not
//     delete key; not found"; a read of a missing key is 404.
//   - Deletion without deletion_allowed: 400 "error deleting policy <name>:
//     deletion is not allowed for this key", with what to do.
//   - Batches: every item answers in batch_results, with "error" in place
//     of its result when it failed, and each echoes its reference. When an
//     item failed through the caller's fault the status is 400 (500 when
//     only through the server's), with the body; partial_failure_response_code
//     replaces it when some items succeeded. This is Vault's
//     batchRequestResponse. A missing key fails the whole request.
//   - Fields an endpoint does not know are ignored with Vault's warning.
//
// # Replication
//
// The backend implements logical.ClusterLocal. Writes to encrypt/,
// decrypt/, rewrap/, datakey/, sign/, verify/, hmac/, random and hash
// compute without writing storage, so a performance secondary serves them
// itself (ServedLocally, which reads no storage); keys/... goes to the
// primary. LocalStoragePrefixes is nil: every key is replicated
// configuration. The one compute request that writes is an encrypt that
// creates its key: on a secondary its storage refuses the write with
// logical.ErrReadOnly, which encrypt returns wrapped (never as a 400), and
// the router forwards the request to the primary.
//
// Keys are read from storage on every request (the barrier below decrypts
// them) and never cached in the backend, so there is nothing to invalidate
// when replication rewrites a key on a secondary: a rotated key is used as
// soon as it is applied.
//
// # Storage layout
//
// Keys are relative to the mount's storage view. Records are JSON with a "v"
// field, today 1; a reader refuses any other value rather than guess. This is
// part of the on-disk and replication format: change it only with a new "v"
// and an upgrade path.
//
//	policy/<name>  {"v":1,"name":"<name>","type":"aes256-gcm96",
//	                "latest_version":N,"min_decryption_version":N,
//	                "min_encryption_version":N,"min_available_version":0,
//	                "deletion_allowed":B,"exportable":B,
//	                "allow_plaintext_backup":B,"key_size":N (hmac only),
//	                "versions":{"<n>":{"key":"<base64>","hmac_key":"<base64>",
//	                                   "public_key":"<PEM or base64>",
//	                                   "creation_time":T}}}
//
// "key" is the raw symmetric key, or the PKCS #8 DER private key of an
// asymmetric type; "hmac_key" is absent for the hmac type, whose "key" is
// its HMAC key; "public_key" is base64 for ed25519, PEM (PKIX) for ECDSA and
// RSA, absent for symmetric types. Times are RFC 3339 in UTC. The storage is
// the encrypted barrier, so material is stored as is. A key is one record:
// every change rewrites it whole, so no request writes several records and
// none needs a transaction. Changes of one key are serialised in the
// process by a lock per name (read-modify-write); reads take no lock.
//
// # What the router must do for this package
//
//   - Writes: ExistenceCheck reports whether the key of encrypt/<name>
//     exists (an encrypt that creates its key is authorized as create, as in
//     Vault); every other path reports true (update). The backend creates a
//     key on encrypt only when the operation is create.
//   - LIST (or GET ?list=true) on keys/: operation list (read is accepted too).
//   - A batch answer with StatusCode 400 carries Data: send the envelope with
//     that status, not a bare error.
package transit
