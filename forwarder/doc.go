// Package forwarder owns write forwarding from a performance secondary to its
// primary, and the read-after-write consistency header X-Vault-Index.
//
// It is the one replication package that sees plaintext requests: it sits
// above the barrier, beside core. The packages that carry its messages
// (primary, secondary, replication, bus) see them only as opaque bytes, sealed
// by the secondary's RPC key before they reach the bus.
//
// What it owns:
//
//  1. The forward messages (messages.go): Request and Reply, versioned JSON
//     with "v" (the layout is written there), size-bounded, fuzzed.
//  2. The client (client.go), used by core on a secondary: it encodes a
//     logical request, sends it through a Transport (the replication side
//     seals it into the secondary's authenticated RPC), decodes the reply, and
//     holds it until this cluster has applied the primary's WAL index, at most
//     best_effort_wal_wait_duration; then it answers with a warning.
//  3. The server (server.go), used on the primary: it decodes a forwarded
//     request, checks it against the forwarding allow-list (allow.go),
//     answers a retry of the same request id with the first reply (never
//     applying it twice), and hands the request to core through the small
//     Applier interface.
//  4. X-Vault-Index (index.go): encode and verify, pure functions.
//
// What it must never do: speak NATS or reach storage itself (the Transport
// and the Applier do), authenticate tokens (core does that on the secondary
// before forwarding), or log a request's data.
package forwarder
