// Package core owns a Coffer cluster's state machine and its request
// pipeline: initialization, the unseal-key bookkeeping, sealing, barrier key
// rotation, the cluster's identity, root token generation from key shares
// (tokengen.go, which drives the pure attempt of core/rootgen) and, on a DR
// secondary, DR operation tokens from the same flow (droptoken.go: kept in
// memory by core/drtoken); the router and the mount, auth and audit
// tables; policies and their ACL checks (core/acl), tokens (core/tokens),
// response wrapping, the audit glue; and the wiring of the merkle index and
// the WAL collector.
//
// A Core stacks the layers of DESIGN.md: the physical storage at the bottom,
// the WAL (every replicated or local write commits with its WAL entry), the
// seal (which protects the root key, stored below the barrier), and the
// barrier (everything core stores goes through it as plaintext above,
// ciphertext below).
//
// The request pipeline (HandleRequest) normalizes the path once (path.go)
// and hands that one string to the router, the ACL, the sudo check and the
// backend; it asks for the request's data (Request.Admit) only once the
// request is allowed, so a refused request's body is never read.
//
// Replication is not core's: core asks it through the Replication interface
// (replication.go), which package replmode implements and the server
// attaches with SetReplication. Core tells it when the barrier opens and
// closes, hands it sys/replication/*, asks it the mode and, on a secondary,
// for the forwarding client (package forwarder). In return core offers the
// replication layer what it needs (Barrier, WAL, Physical, Classify,
// Merkle, Invalidate, ReplaceData for an activation, ApplyForwarded for a
// forwarded write, CheckDROperationToken for a DR operation) and nothing
// else.
//
// Core must never speak HTTP (that is httpapi), parse configuration files
// (config), or touch NATS (it imports neither bus nor nats: go list -deps
// ./core shows it). It returns the sentinel errors of types.go; StatusOf is
// the one mapping of errors to HTTP status codes.
package core
