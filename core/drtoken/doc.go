// Package drtoken owns the DR operation tokens a DR secondary mints from key
// shares (sys/replication/dr/secondary/generate-operation-token): a set of
// live tokens, each with its expiry, held in memory only.
//
// Why in memory: a DR secondary's token store is the primary's, replicated;
// a token written there could be wiped by the next resync from the primary,
// and a DR secondary makes no batch tokens (it serves no client request and
// never makes a batch signing key of its own: it holds its primary's, and a
// batch token made on the primary before the failover is accepted by
// core.CheckDROperationToken). A DR
// operation token is needed for minutes (promote, update-primary), so it
// lives for TTL (one hour by default) in this set and is gone at a restart or
// a seal.
//
// The set keeps only the SHA-256 of each token, never the token: a memory
// dump taken after the mint does not hand the token out. Valid compares the
// digest of the token given with every live digest in constant time, without
// stopping at a match.
//
// Core drives it in three calls: Mint when a generation completes (core
// encodes the token with the attempt's OTP and forgets it), Valid when the
// replication layer asks whether a dr_operation_token authorises an
// operation (core.CheckDROperationToken), Revoke for
// sys/replication/dr/secondary/operation-token/delete; Clear as the core
// seals.
//
// The zero Set is ready to use with the wall clock and crypto/rand: tests of
// the replication layer can mint and check tokens with it without building a
// core. Set Now to drive expiry from a test clock.
//
// This package must never do I/O beyond reading its random source, log, keep
// a token in clear, or know about seals, token stores or HTTP.
package drtoken
