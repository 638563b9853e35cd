// Package httpapi owns Coffer's Vault-compatible HTTP surface: routing under
// /v1/, the request limits, token extraction, the two response shapes Vault
// uses and its error envelope. Its contract is that unmodified Vault clients
// (the vault CLI, github.com/hashicorp/vault/api) decode every response.
//
// # Routing
//
// A request is dispatched in three steps:
//
//  1. Anything outside /v1/ is 404. The path after /v1/ is normalized with
//     core.NormalizePath (the one normalization core applies too): a path
//     that is not UTF-8, holds a NUL or a ".." segment is 400.
//  2. The sys table (routes in sys.go) maps an exact normalized path such as
//     "sys/seal-status" to one handler per HTTP method. A known path with an
//     unlisted method is 405 with an Allow header. The DR operation token
//     endpoints are in it, so that a DR secondary serves them while its
//     logical layer refuses every client request.
//  3. Every other /v1/ path goes to Options.Logical, the hook where core's
//     logical router (mounts, kv, the rest of sys/) plugs in. Without a hook
//     the path is 404.
//
// Before step 2 the body is capped at Options.MaxRequestSize with
// http.MaxBytesReader, so the hook inherits the limit; DecodeJSON turns an
// oversized, malformed or too slow body into the right Vault error (413,
// 400 or 408).
//
// # Requests without a valid token
//
// limits.go bounds them: NewLogical's handler hands core the body as a
// function (core.Request.Admit) that core calls only once the request is
// allowed, so a refused request's body is never read; a request served
// without a token (sys/init, sys/unseal, sys/generate-root/*, the DR
// operation token endpoints, logins...)
// may carry at most Options.MaxUnauthenticatedRequestSize bytes and at most
// Options.MaxUnauthenticatedRequests of them are served at once (503 with
// Retry-After beyond). A response to a request whose body was not read to
// its end closes the connection.
//
// # Response shapes
//
// Vault answers the seal and health endpoints (sys/health, sys/seal-status,
// sys/leader, sys/init, sys/unseal) and token generation from key shares
// (sys/generate-root/attempt and sys/generate-root/update, and the same
// under sys/replication/dr/secondary/generate-operation-token/, generate.go)
// with raw JSON objects, sys/seal, sys/rotate, DELETE on an attempt and
// sys/replication/dr/secondary/operation-token/delete with 204 No Content,
// and logical reads such as
// sys/key-status with the logical envelope (request_id, lease_id, renewable,
// lease_duration, data, wrap_info, warnings, auth). Errors are
// {"errors":["message"]}.
//
// # What it must never do
//
// httpapi decides nothing about security or state: it never checks a token
// itself, never touches storage or the barrier, and never logs a token, a key
// share or a request body. Authorization and every state decision belong to
// core; httpapi only translates HTTP to core calls and core errors to status
// codes (see ErrorStatus).
package httpapi
