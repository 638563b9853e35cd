// Package core owns a Coffer cluster's state machine: initialization, the
// unseal-key bookkeeping, sealing, barrier key rotation, the cluster's
// identity, and (for now) the root tokens that authorize sys operations.
//
// A Core stacks the layers of DESIGN.md: the physical storage at the bottom,
// the WAL (every replicated or local write commits with its WAL entry), the
// seal (which protects the root key, stored below the barrier), and the
// barrier (everything core stores goes through it as plaintext above,
// ciphertext below).
//
// Core must never speak HTTP (that is httpapi), parse configuration files
// (config), or touch NATS. It returns the sentinel errors of types.go so the
// HTTP layer can pick status codes.
package core
