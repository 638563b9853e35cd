// Package ha makes one node of a cluster of nodes sharing storage the active
// node and keeps the others standbys: it contends for the Consul lock
// (storage/consul), activates the core once it holds it, and deactivates the
// core the moment the lock is lost, given up (sys/step-down) or no longer
// wanted (the node sealed). It also tells the rest of the node which node is
// active: core's sys/leader and sys/health, and httpapi's forwarding of a
// standby's requests to it.
//
// It owns the node's tenure of the lock and the leader record stored in the
// lock (leader.go: a versioned JSON format). The decisions (whether to
// contend, what a change of state means) are the pure functions of
// decide.go; Node is the thin driver that carries them out.
//
// It must never write to storage itself, never let the core write without a
// held lock (the storage fences every write by the lock's session, inside
// Consul: this package only turns that fence on and off through Acquire and
// Release), and never keep the core active after the lock is gone.
package ha
