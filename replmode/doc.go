// Package replmode owns a cluster's replication mode: whether it is a
// performance primary, a secondary or neither; the transitions between those
// modes (enable, disable, activate, revoke, and the rows reserved for
// promote, demote and update-primary); what each transition wipes; the
// sys/replication/* endpoints; and the replication status.
//
// The decisions are a pure table (table.go: Next(mode, op) -> step or
// refusal), tested by the script testdata/transitions.txt. The Manager is
// the thin driver around it: it runs the primary or the secondary package,
// stores the mode (state.go), and implements core.Replication, which is how
// core asks about replication without importing NATS. It also carries
// forwarded writes between package forwarder (plaintext, above the barrier)
// and the secondary's sealed RPC (transport.go), as opaque bytes. An
// activation runs in the background and survives a restart (activation.go):
// its record, in raw storage, is the one thing this package stores below the
// barrier, with its secret part wrapped by the seal's key.
//
// It must never: serve a logical request itself (core does, after asking
// Mode and Forwarder), decode a forwarded request (forwarder does), or touch
// storage below core's Host interface except to wipe what a transition's row
// says and to keep the activation record; or store an activation's secrets in
// clear.
package replmode
