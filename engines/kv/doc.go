// Package kv is Coffer's key/value secrets engine, in Vault's two flavours,
// chosen per mount by options.version (see ParseVersion and Factory):
//
//   - version 1 (V1): a path is a key; a write replaces the key's data map,
//     read, delete and list act on it directly.
//   - version 2 (V2): every write adds a version; versions can be soft-deleted
//     (delete/), restored (undelete/) and destroyed (destroy/); each key has
//     metadata (metadata/) and the mount a config (config). The request and
//     response shapes are Vault's, so vault/api's KVv2 helpers and the vault
//     CLI work unchanged.
//
// The package owns the meaning of a KV mount's storage and nothing else. It
// sees plaintext through its logical.Storage view and must never import
// core, httpapi, the WAL, the merkle index or NATS, never cache storage
// contents in memory (on a secondary cluster the replication applier writes
// storage under the backend), and never decide on authorization: the router
// has checked the token's policy before a request arrives.
//
// # Storage layout
//
// Keys are relative to the mount's storage view. Every record is JSON with a
// "v" field, the record format version, today 1; a reader refuses any other
// value rather than guess. These layouts are part of the on-disk and
// replication format: change them only with a new "v" and an upgrade path.
//
// Version 1 stores each key at its own path:
//
//	<path>                       {"v":1,"data":{...}}   the data map as written
//
// Version 2 keeps a key's metadata and each of its versions in separate
// records, and writes a version together with its metadata in one
// storage transaction:
//
//	config                       {"v":1,"max_versions":N,"cas_required":B,
//	                              "delete_version_after_ns":NS}
//	metadata/<path>              {"v":1,"key":"<path>","created_time":T,"updated_time":T,
//	                              "current_version":N,"oldest_version":N,"max_versions":N,
//	                              "cas_required":B,"delete_version_after_ns":NS,
//	                              "custom_metadata":{...},
//	                              "versions":{"<n>":{"created_time":T,
//	                                                 "deletion_time":T (absent: none),
//	                                                 "destroyed":B}}}
//	versions/<path>/<n>          {"v":1,"data":{...}}   version n's data (n decimal)
//
// Times are RFC 3339 in UTC, durations integer nanoseconds. The version key
// is unambiguous although paths hold "/": its last segment is always the
// version number. A key's metadata is the truth about which versions exist:
// a destroyed version keeps its metadata entry (destroyed: true) but loses its
// data record; a pruned version loses both. A mount config that was never
// written reads as all zeros. delete_version_after_ns in config is -1s
// (-1000000000) when set negative, which switches the feature off for every
// key.
//
// # Semantics worth knowing (all as in Vault)
//
//   - max_versions: the larger of the mount's and the key's setting, 10 when
//     both are 0. Pruning happens on the next write of the key (not when the
//     setting is lowered): once current_version - oldest_version reaches the
//     limit, every version up to current_version - max_versions is removed and
//     oldest_version moves past them. oldest_version stays 0 until the first
//     pruning, as Vault reports it.
//   - delete_version_after: a new version gets deletion_time = created_time +
//     the smaller non-zero of the mount's and the key's setting, and reads as
//     deleted once that time has passed. A read of a deleted or destroyed
//     version answers 404 with its metadata in the body (Response.StatusCode).
//   - options.cas: the write succeeds only when cas equals the key's
//     current_version (0: only when the key has no version yet).
//     cas_required on the mount or the key refuses writes and patches
//     without it.
//   - delete/, undelete/ and destroy/ skip versions that do not exist; a
//     destroyed version cannot be undeleted.
//   - a mount's version is fixed when it is enabled: core refuses a tune that
//     changes options.version (ParseVersion gives the version to compare).
//     There is no in-place upgrade from version 1 to 2; copy the keys into a
//     new version 2 mount instead.
//
// # What the router and httpapi must do for this package
//
//   - Writes (POST/PUT): call ExistenceCheck to choose create or update. On
//     data/ and metadata/ it reports whether the key's metadata exists; on
//     config, delete/, undelete/ and destroy/ it is always true (Vault
//     authorizes those as update); version 1 reports whether the key exists.
//   - GET: put the query parameters into Request.Data as strings (version
//     on data/ and subkeys/, depth on subkeys/); the parsers accept strings,
//     float64 and json.Number alike. Decoding bodies with UseNumber keeps
//     large integers in secrets exact; the engine stores numbers as given.
//   - LIST (or GET ?list=true): Operation list; the path may come with or
//     without its trailing slash. The answer is {"keys": [...]}, or
//     logical.ErrNotFound when there is nothing under the prefix, so the
//     router needs no special case for an empty listing. Version 2 lists
//     under metadata/ only; LIST on data/ is ErrUnsupportedOperation (405).
//   - PATCH: Operation patch on data/ and metadata/. Vault answers 415 to a
//     PATCH whose Content-Type is not application/merge-patch+json; that
//     check is the HTTP layer's.
//   - A read of a deleted or destroyed version (data/, subkeys/) and a patch
//     of a deleted latest version return a Response with StatusCode 404 AND
//     Data: the router must send the usual envelope with that status (the
//     vault/api KVv2 helpers decode the metadata from it), not a bare 404.
//   - Errors: logical.CodedError 400 carries Vault's exact messages (cas
//     mismatch, cas required, "no data provided", "no version number
//     provided"); logical.InvalidRequest (400) a malformed field, naming it;
//     ErrNotFound 404; ErrUnsupportedPath 404; ErrUnsupportedOperation 405.
//     Writes that succeed without a body return a nil Response (204);
//     Response.Warnings carries Vault's cas_required warning.
//   - The vault CLI's kv commands first read sys/internal/ui/mounts/<path>
//     to learn the mount's path and options.version; core must serve it.
package kv
