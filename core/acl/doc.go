// Package acl owns Coffer's access control policies: Vault's policy language
// (HCL or JSON), the built-in root, default and response-wrapping policies,
// and the compiled ACL that answers "which capabilities does this token have
// on this path" for the logical layer.
//
// Use it in three steps:
//
//  1. Parse each policy's text when it is written (Parse reports the line and
//     column of any problem and refuses what Coffer cannot enforce).
//  2. Build one ACL from a token's policies with NewACL. Rules for the same
//     path in several policies are merged (union of capabilities; deny wins).
//  3. Per request, map the request to an Operation and call Allowed (or
//     DecideOp). If RequiresSudo(path), refuse unless Allowed reports sudo.
//     The path must be the one the router serves: core normalizes it once
//     (no empty or "." segments, a trailing slash only on a list) and hands
//     the same string to the ACL, the sudo check and the backend.
//
// Matching is Vault's: an exact path wins; otherwise the single matching glob
// or "+" pattern of highest priority decides (first wildcard later, no
// trailing glob, fewer "+", longer, then lexically greater), never a union of
// patterns; a path nothing matches is denied. A list ("secret/metadata/foo/")
// also matches the rules written for the path without its trailing slash,
// in Vault's order (DecideOp). The pattern grammar and its differences from
// Vault are in pattern.go.
//
// Decisions taken here:
//   - allowed_parameters, denied_parameters, required_parameters, wrapping TTL
//     bounds, mfa_methods, control_group and subscribe_event_types are
//     rejected by Parse with "not supported": ignoring them would grant more
//     than the policy's author wrote.
//   - The "subscribe" and "recover" capabilities are accepted and kept but
//     grant nothing: no Coffer operation requires them.
//   - Templated paths ({{identity.entity.id}}) are rejected: no identity store.
//   - "*" other than last and "+" inside a segment are rejected, where Vault
//     would take them literally.
//   - A path block without capabilities is an error (Vault accepts it as
//     granting nothing); write ["deny"] to refuse access on purpose.
//
// This package must never do I/O, hold storage, speak HTTP or log: it is a
// pure function of policy text and request paths. Storing policies, deciding
// a request's operation and translating errors to HTTP are the callers' jobs.
package acl
