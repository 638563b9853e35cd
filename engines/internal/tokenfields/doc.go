// Package tokenfields owns the parsing and validation of the token fields
// Vault's auth methods share (token_policies, token_ttl, token_max_ttl,
// token_explicit_max_ttl, token_period, token_num_uses,
// token_no_default_policy, token_type, token_bound_cidrs, with their
// deprecated aliases policies, ttl, max_ttl, period and bound_cidrs), the
// stored form of that group (Settings, embedded in a user's or a role's
// record), the read response of the group, and the logical.Auth a login
// builds from it. Every auth method (userpass, approle) uses this one
// code, so the fields behave alike across methods.
//
// It must never import core, httpapi, the WAL or NATS, and never touch
// storage: the auth method reads and writes its records, this package only
// parses request values and shapes responses.
//
// # Rules
//
//   - Policies are sanitized as Vault does: trimmed, lowercased, sorted,
//     without duplicates, and "root" alone when present. "default" is not
//     stored; LoginPolicies adds it unless token_no_default_policy is set.
//   - Durations (seconds, "1h30m", "7d") must not be negative; 0 means the
//     mount's default. token_ttl may not exceed a non-zero token_max_ttl.
//   - token_num_uses is 0 (unlimited) up to the largest int32.
//   - token_type is "default" or "service": Coffer's logins issue service
//     tokens only, so "batch" is refused with a message saying so.
//   - CIDR lists take blocks or bare addresses (a /32 or /128) and are kept
//     in canonical form.
//   - A field and its deprecated alias may both be given only with the same
//     value. Which aliases an endpoint accepts is the method's choice: Parse
//     sees only the fields the method's getter returns.
//   - Settings are stored with durations as integer nanoseconds
//     ("token_ttl_ns"...); this is part of the on-disk and replication
//     format of every method that embeds Settings: change it only with a
//     new record version in those methods.
package tokenfields
