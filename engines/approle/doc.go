// Package approle is Coffer's AppRole auth method, with the HTTP API of
// Vault's AppRole method so the vault CLI, github.com/hashicorp/vault/api
// and hvac work unchanged.
//
// The package owns the roles of one auth mount (their token settings and
// secret id constraints), the role_id index, the secret ids issued against
// each role with their accessors, and the check of role_id and secret_id at
// login. It does not create tokens: a successful login returns a
// logical.Auth describing the token to create, and the router creates it.
// It must never import core, httpapi, the WAL or NATS; never keep a role or
// a secret id in memory between requests (roles are replicated
// configuration: on a secondary the replication applier writes storage
// under the backend, so every request reads storage afresh); never log,
// store in clear or return a secret id, except in the response that issues
// it; and never reveal through an error or through timing whether a role
// exists at login.
//
// # Endpoints (relative to the mount, e.g. auth/approle/)
//
//	role/                                   list: {"keys": [...]}, 404 when none
//	role/<name>                             create/update, read, delete
//	role/<name>/role-id                     read {"role_id"}; update: role_id
//	role/<name>/secret-id                   update: generate; list: accessors
//	role/<name>/custom-secret-id            update: secret_id given
//	role/<name>/secret-id/lookup            update: secret_id -> properties
//	role/<name>/secret-id/destroy           update or delete: secret_id
//	role/<name>/secret-id-accessor/lookup   update: secret_id_accessor
//	role/<name>/secret-id-accessor/destroy  update or delete: secret_id_accessor
//	login                                   update: role_id, secret_id -> Auth
//	tidy/secret-id                          update: remove expired secret ids
//
// A role's fields are Vault's: bind_secret_id (default true),
// secret_id_bound_cidrs, secret_id_num_uses, secret_id_ttl,
// local_secret_ids, role_id (a custom one at creation), and the token fields
// of engines/internal/tokenfields (token_policies, token_ttl, token_max_ttl,
// token_explicit_max_ttl, token_period, token_num_uses,
// token_no_default_policy, token_type, token_bound_cidrs) with the
// deprecated aliases policies and period. An update changes only the fields
// it names; a role must keep bind_secret_id or a bound CIDR ("at least one
// constraint should be enabled on the role"). Role names are lowercased, as
// in Vault, and hold letters, digits and "_", with "-" and "." inside.
// Fields an endpoint does not know are ignored with a warning.
//
// A generate takes metadata (a JSON-encoded object of strings, as Vault
// takes it, or the object itself), cidr_list, token_bound_cidrs, ttl and
// num_uses, with Vault's limits: the CIDRs must lie within the role's, and
// ttl and num_uses may not exceed a role's non-zero secret_id_ttl and
// secret_id_num_uses. It answers secret_id, secret_id_accessor,
// secret_id_ttl and secret_id_num_uses. Unlike Vault, secret_id_ttl is not
// capped by the mount's maximum lease TTL (the backend has no view of it).
//
// # Replication contract
//
// Roles are replicated configuration: role writes (create, update, delete,
// role-id) are forwarded from a performance secondary to the primary and
// reach every cluster through replication. Secret ids are local to the
// cluster that issued them, like tokens: a secret id generated on a
// secondary exists only there; its logins, its use counts, its lookups and
// its destruction happen there, with no round trip to the primary; and a
// secret id presented to another cluster does not log in (400, "invalid
// role or secret ID", the answer to every bad credential). Why: a use count
// or a destroy decided on one cluster cannot be enforced on another without
// a synchronous round trip on every login, and replicating secret ids
// would hand every secondary's operator the primary's credentials. A
// client that logs in on several clusters needs a secret id from each.
//
// Coffer's secret ids are therefore always cluster-local. local_secret_ids
// is accepted for compatibility (set at creation only, as in Vault, and
// read back as given) but changes nothing.
//
// The backend implements logical.ClusterLocal:
//
//   - LocalStoragePrefixes: "secret_id/" and "accessor/". Every key a
//     generate, a login, a destroy or a tidy writes lies under them.
//   - ServedLocally: true for writes to role/<name>/secret-id,
//     role/<name>/custom-secret-id, role/<name>/secret-id/lookup|destroy,
//     role/<name>/secret-id-accessor/lookup|destroy, tidy/secret-id and
//     login; false for role/<name> and role/<name>/role-id. It reads no
//     storage.
//
// Deleting a role (on the primary) removes the secret ids the primary holds
// for it. A secondary's secret ids of that role can no longer log in (the
// role is gone), and a tidy/secret-id on the secondary removes them; a role
// created again under the same name gets a new uid and never inherits them.
//
// # Storage layout
//
// Keys are relative to the mount's storage view. Records are JSON with a "v"
// field, today 1; a reader refuses any other value rather than guess. This is
// part of the on-disk and replication format: change it only with a new "v"
// and an upgrade path. Durations are integer nanoseconds, times RFC 3339.
//
// Replicated:
//
//	role/<name>             {"v":1,"uid":HEX,"role_id":S,"bind_secret_id":B,
//	                         "secret_id_bound_cidrs":[..],"secret_id_num_uses":N,
//	                         "secret_id_ttl_ns":NS,"local_secret_ids":B,
//	                         + the token fields of tokenfields.Settings}
//	role_id/<hmac(R, id)>   {"v":1,"name":S}        the unique role_id index
//	config/role_id_salt     {"v":1,"key":HEX}       R, made by the first role write
//
// Cluster-local:
//
//	secret_id/salt                      {"v":1,"key":HEX}   L, made by the first generate
//	secret_id/<uid>/<hmac(L, secret)>   {"v":1,"secret_id_accessor":S,
//	                                     "secret_id_num_uses":N (uses left),
//	                                     "secret_id_ttl_ns":NS,"creation_time":T,
//	                                     "expiration_time":T,"last_updated_time":T,
//	                                     "metadata":{..},"cidr_list":[..],
//	                                     "token_bound_cidrs":[..]}
//	accessor/<hmac(L, accessor)>        {"v":1,"role_uid":HEX,"secret_id_hmac":HEX}
//
// hmac is HMAC-SHA256 in hex. The key space never holds a secret id, an
// accessor or a role_id in clear. The secret id salt L is one per mount and
// per cluster, kept under the local prefix: it never leaves the cluster
// (except by DR replication, which copies local keys as it copies tokens),
// so a secondary's operator cannot test guesses of a custom secret id
// against another cluster's records. The role_id index needs the same key
// on every cluster, so its salt R is replicated. A role's uid (random, fixed
// at creation) names its secret ids, so a role deleted and created again
// under the same name never inherits its predecessor's secret ids.
//
// # What the router must do for this package
//
//   - Serve login without a token: UnauthenticatedPaths and LoginPath say
//     which path that is. Everything else needs a token and an ACL check.
//   - On a login response, create a token from Response.Auth: Policies
//     (which already hold "default" unless token_no_default_policy: do not
//     add it again), Metadata ({"role_name": name} plus the secret id's
//     metadata), DisplayName "approle", TTL, ExplicitMaxTTL (token_max_ttl
//     folded in, see tokenfields.Settings.ExplicitMaxTTL), Period, NumUses
//     and Renewable.
//   - Put the client's IP address in Request.RemoteAddr: the role's
//     secret_id_bound_cidrs, the secret id's cidr_list and the token CIDRs
//     (the secret id's token_bound_cidrs, else the role's) are checked at
//     login after the credentials, and a client outside them, or without a
//     RemoteAddr, gets 403. No use of the secret id is spent then.
//   - Writes: ExistenceCheck reports whether role/<name> exists; every
//     other path is an update, as in Vault; login reports false.
//   - Errors: every failed credential check is logical.CodedError 400
//     "invalid role or secret ID", Vault's message; expired and exhausted
//     secret ids answer the same (Vault has no other message: it deletes an
//     exhausted one at its last use and tidies expired ones). A missing
//     role_id is 400 "missing role_id". A read of a missing role and an
//     empty listing are 404; the secret id endpoints answer 404 "role %q
//     does not exist" for a missing role. A lookup or destroy of an unknown
//     secret id answers nothing (204), as Vault does; an unknown accessor
//     is 404 "failed to find accessor entry for secret_id_accessor: %q"
//     (Vault answers its destroy with a 500; Coffer with the 404).
//   - Serialisation: logins, generates and destroys of one role are
//     serialised in-process (the mount's active node serves them); a use is
//     checked and spent under that lock, its write one transaction.
package approle
