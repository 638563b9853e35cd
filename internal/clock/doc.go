// Package clock is the server's wall clock: Now is time.Now moved by an
// offset, zero unless a fault test moves it. The fault campaign (tests/chaos)
// jumps one process's clock forward or back by writing the offset into a
// file the server follows (coffer server -test-clock-offset-file); Go reads
// the clock itself, so faketime and time namespaces cannot do it from
// outside.
//
// Who reads it: every place that takes a wall-clock instant which is stored,
// sent to another process, or held against such an instant (token, lease,
// wrapping and activation-token expiry, the replication envelope's timestamp
// and replay window, the generation claim's renewal time, heartbeats' clock
// skew, stored creation and deletion times).
// Durations measured inside one process (time.Since of a time.Now, timers,
// tickers, metrics) keep the monotonic clock, which a real wall-clock jump
// does not move either.
//
// What it must never do: move on its own, or be moved by anything but the
// offset file a test names on the command line. It imports nothing of
// Coffer, so every layer may use it.
package clock
