// Package tokens owns Coffer's tokens: the local token store of service
// tokens with their accessors, parent/child trees, TTLs, periods, use limits
// and revocation; batch tokens, which are not stored (batch.go); the
// expiration manager that revokes expired service tokens in the background;
// and the token auth method mounted at auth/token/ with Vault's request and
// response shapes.
//
// # Using it
//
//  1. New(storage, opts, logger) with a logical.Storage whose keys live under
//     sys/token/ (local class: service tokens are never replicated; clients
//     re-authenticate on another cluster). For batch tokens, give
//     Options.BatchKeyStorage with BatchSigningKeyPath, a path of the local
//     class (core: core/local-token-batch-signing-key), and
//     BatchPublicKeyPath, a path of the replicated class (core:
//     core/token-batch-pub); CanGenerateBatchKey, which refuses on a DR
//     secondary (it holds its primary's signing key), and
//     CanPublishBatchKey, which refuses on performance and DR secondaries
//     (the published key there is their primary's). Call InvalidateBatchKeys
//     when replication changes either entry.
//  2. Start() the expiration manager; Stop() on seal or shutdown (it waits for
//     the goroutine).
//  3. Per request, the router calls Lookup(req token). A nil entry is a 403.
//     A batch token ("hvb.") is verified and checked there, and then goes
//     through the same ACL path: its entry carries its policies.
//     For a use-limited token (NumUses > 0) it then calls UseToken, which may
//     return nil (the uses ran out meanwhile: 403). When the returned entry
//     reports RevocationPending, the request goes on (it consumed the last
//     use) and the router calls Revoke(ctx, e.ID) once it has answered; if it
//     does not, the expiration manager revokes the token within
//     PendingRevocationDelay.
//  4. Mount Backend() at auth/token/. It serves every path with the store's
//     own storage and ignores req.Storage.
//
// # Storage layout (inside the view given to New)
//
//	salt                          {"v":1,"salt":"<base64 32 bytes>"}; the HMAC key
//	id/<hmac(salt, token)>        {"v":1, ...the token record, see record.go}
//	accessor/<hmac(salt, acc)>    {"v":1,"token_key":"<hmac of the token>"}
//	parent/<hmac(parent)>/<hmac(child)>   {"v":1}: child tracking
//
// and, outside that view, in Options.BatchKeyStorage (batch.go, "The keys"):
//
//	<BatchSigningKeyPath>  {"v":1,"seed":"<base64 32 bytes>"}  this cluster's Ed25519 signing key
//	<BatchPublicKeyPath>   {"v":1,"key":"<base64 32 bytes>"}   the publisher's public key
//
// HMACs are HMAC-SHA256 in lower-case hex. Keys never hold a token or an
// accessor in clear, so a copy of the key space alone does not hand out
// tokens. Records are JSON with a version field "v"; a record with a higher
// version than this code knows is refused with an error asking to upgrade.
// Records written by the first token store of core/token.go (no "v", raw
// 32-byte salt) are read as root tokens that never expire.
//
// # Authorization of auth/token/ paths (what the router must use)
//
// ExistenceCheck answers true for every path, so a POST/PUT is authorized as
// "update", never "create": Vault's token backend has no existence check
// outside roles/, and Vault then treats every write as an update (the default
// policy grants "update" on auth/token/renew-self and revoke-self, "read" on
// lookup-self). HandleRequest accepts create and update alike. lookup and
// lookup-self also answer "read" (GET, token in the query for lookup).
// revoke-orphan needs sudo (acl.RequiresSudo says so); create-orphan needs
// only the ACL on its path, as in Vault.
//
// # Decisions
//
//   - The router does not tell a backend whether the caller holds sudo on
//     auth/token/create. Where Vault asks for "root or sudo" (no_parent=true,
//     a chosen id, a period, policies outside the parent's), Coffer asks for
//     a token with the root policy. create-orphan is the path for delegated
//     orphan creation: its ACL is checked by the router.
//   - type=batch on create and create-orphan issues a batch token: "hvb." and
//     the base64url of its record, in clear, signed with Ed25519ctx (format
//     in batch.go). As in Vault it has no accessor, is never renewable (renew
//     answers 400), cannot be revoked (revoke, revoke-self and revoke-orphan
//     answer 400), cannot create tokens (400), cannot have num_uses, period,
//     explicit_max_ttl or a chosen id, cannot be a root token, and always
//     expires (its ttl, or the default, capped by the max TTL). A child batch
//     token holds its parent's storage key and stops when its parent does; it
//     is valid only on the cluster that stores its parent (Vault: batch
//     tokens cross performance replication only when orphan). A stolen batch
//     token is valid until it expires on every cluster that trusts its
//     signer: docs/security.md.
//   - Signatures, not a shared secret: each cluster signs with its own key
//     pair, made by its first batch create and never rotated, whose private
//     half stays on the cluster (local class: only DR replication copies it).
//     Only the cluster that may publish (a primary, or a cluster outside
//     replication) has its public key replicated, so a performance
//     secondary's batch tokens are valid on it alone: whoever runs a
//     secondary holds everything the primary sends it and still cannot make
//     a token the primary accepts. A lookup tries this cluster's own public
//     key and the published one. A promoted DR secondary signs with its
//     former primary's key and changes nothing; a promoted (or disabled)
//     performance secondary publishes its own key at its first batch create,
//     after which the former primary's batch tokens are refused there and on
//     the clusters that follow it. A version 3 would add a key id to rotate.
//   - A chosen service token id may not begin with "hvb.".
//   - Token roles (roles.go) are replicated configuration in
//     Options.RoleStorage; create/<role> makes a local token from one. A
//     role's allowed_policies let a parent hand out policies it does not
//     hold itself (that is what roles are for); globs, entity aliases and
//     bound CIDRs on roles are refused with a 400 rather than ignored.
//     Logins issue service tokens; batch tokens come from create,
//     create-orphan and roles of type batch.
//   - Revocation removes a tree children first, one storage transaction per
//     token, so a crash midway leaves the parent and the rest of its tree in
//     place and revoking again finishes the work.
//   - The expiration manager keeps an in-memory heap of expiry times (rebuilt
//     by one scan of id/ at Start) and sleeps until the earliest one, or at
//     most ExpirationInterval, so an injected clock is honoured too.
//
// This package must never replicate service tokens, log a token id
// (accessors only), import httpapi or the replication packages, or decide
// ACLs: the router authorizes, the store only checks the parent/child rules
// Vault puts in the token backend itself. The batch token keys are the only
// entries it writes outside its own view; the published public key is the
// only one meant to be replicated, and the signing key must never be.
package tokens
