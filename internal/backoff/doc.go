// Package backoff holds the one way Coffer waits between attempts: Sleep, a
// pause that ends early when its context does, and Backoff, an exponential
// pause between a minimum and a maximum.
//
// It owns no goroutine and no clock of its own beyond time.Timer: a caller
// decides when to retry and what to log; backoff only says how long to wait
// and waits.
//
// What it must never do: log, retry on its own, or start a goroutine. It
// imports nothing of Coffer, so every layer (bus, primary, secondary) may use
// it.
package backoff
