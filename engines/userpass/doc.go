// Package userpass is Coffer's username and password auth method, with the
// HTTP API of Vault's userpass method so the vault CLI (vault login
// -method=userpass) and vault/api work unchanged.
//
// The package owns the users of one auth mount, their bcrypt password
// hashes and the token settings each user's logins carry, and the check of
// a password at login. It does not create tokens: a successful login returns
// a logical.Auth describing the token to create (policies, TTLs, metadata),
// and the router creates it. It must never import core, httpapi, the WAL or
// NATS, never keep a user in memory between requests (users are replicated
// configuration: on a secondary cluster the replication applier writes
// storage under the backend, so every request reads storage afresh), never
// return a password or its hash, and never reveal through an error or through
// timing whether a user exists.
//
// # Endpoints (relative to the mount, e.g. auth/userpass/)
//
//	users/<name>            create/update, read, delete
//	users/                  list: {"keys": [...]}, 404 when there is none
//	users/<name>/password   update: password or password_hash
//	users/<name>/policies   update: token_policies (or legacy policies)
//	login/<name>            update: password -> Response.Auth
//
// A user's fields are Vault's: password, password_hash (a bcrypt hash made
// elsewhere, mutually exclusive with password), token_policies (a list or a
// comma-separated string), token_ttl, token_max_ttl, token_explicit_max_ttl,
// token_period (durations: seconds or "1h30m"), token_num_uses,
// token_no_default_policy, token_type ("default" or "service") and
// token_bound_cidrs; the deprecated aliases policies, ttl, max_ttl and
// bound_cidrs are accepted. An update changes only the fields it names.
// Usernames are lowercased, as in Vault, and hold letters, digits, "_", "-",
// "." and "@", beginning and ending with a letter, digit or "_". Fields the
// endpoint does not know are ignored with a warning. The token fields are
// parsed, stored (tokenfields.Settings, embedded in the user record) and
// read back by engines/internal/tokenfields, the code every auth method
// shares.
//
// # Storage layout
//
// Keys are relative to the mount's storage view. Records are JSON with a "v"
// field, today 1; a reader refuses any other value rather than guess. This is
// part of the on-disk and replication format: change it only with a new "v"
// and an upgrade path.
//
//	user/<name>   {"v":1,"password_hash":"$2a$10$...","token_policies":[...],
//	               "legacy_policies":B,"token_ttl_ns":NS,"token_max_ttl_ns":NS,
//	               "token_explicit_max_ttl_ns":NS,"token_period_ns":NS,
//	               "token_num_uses":N,"token_no_default_policy":B,
//	               "token_type":"default","token_bound_cidrs":["10.0.0.0/8"]}
//
// Durations are integer nanoseconds. Policies are stored sanitized (trimmed,
// lowercased, sorted, without duplicates; "root" alone if present), without
// "default": that is added at login unless token_no_default_policy is set.
//
// # What the router must do for this package
//
//   - Serve login/* without a token: UnauthenticatedPaths and LoginPath say
//     which paths those are. Everything else needs a token and an ACL check.
//   - On a login response, create a token from Response.Auth: Policies (which
//     already hold "default" unless the user disabled it: do not add it again),
//     Metadata {"username": name}, DisplayName ("<mount>-<name>", e.g.
//     "userpass-alice", already prefixed: do not prefix it again), TTL,
//     ExplicitMaxTTL, Period, NumUses and Renewable. TTL 0 means the mount's
//     default. Vault's token_max_ttl caps renewals of a non-periodic token; the
//     Auth contract has no such field, so it is folded into ExplicitMaxTTL (the
//     smaller non-zero of token_max_ttl and token_explicit_max_ttl; a periodic
//     token keeps only token_explicit_max_ttl, as in Vault).
//   - Put the client's IP address (with or without a port) in
//     Request.RemoteAddr: a user with token_bound_cidrs can only log in from
//     those ranges, and a login without a RemoteAddr is then refused (403).
//   - Writes: ExistenceCheck reports whether users/<name> exists (create or
//     update); users/<name>/password and users/<name>/policies always report
//     true (Vault authorizes them as update); login/ reports false. The
//     backend itself treats create and update alike, deciding from storage
//     whether the user is new (a new user needs a password).
//   - Errors: a failed login is logical.CodedError 400 "invalid username or
//     password", whatever went wrong, as Vault answers; a user outside
//     token_bound_cidrs gets ErrPermissionDenied (403), after the password
//     was checked; a malformed field is logical.InvalidRequest (400) naming
//     it; a read of a missing user and an empty listing are ErrNotFound (404).
//   - Renewal of a login token is the router's: Vault refuses it once the
//     user's policies changed; a router that wants the same can read
//     users/<name> through this backend and compare.
package userpass
