// Package ui owns the status page that `coffer server` serves at
// /ui/replication: one HTML page, its stylesheet and its script, embedded in
// the binary (assets/), and the headers they are served with.
//
// The page is a client of the HTTP API like the CLI: its script reads
// GET /v1/sys/replication/performance/status and /v1/sys/replication/dr/status
// from the origin that served it, every 2 s, and draws what they say: this
// cluster's mode and state, the set's topology (the primary and its
// secondaries, or a secondary's primary), the generation, the lag in entries
// and in seconds with a chart of the samples taken since the page loaded
// (inline SVG, drawn by the script), the sync progress and the last errors.
// Elements carry data-role, data-kind, data-secondary, data-primary and
// data-field attributes so that a test reads the rendered state
// (tests/ui_e2e_test.go, in headless Chromium).
//
// Every answer carries Content-Security-Policy default-src 'self' (no inline
// script, no style attribute, nothing fetched from another origin) and
// X-Content-Type-Options nosniff.
//
// It must never: take, ask for or store a token (both status endpoints are
// served without one, core/request.go unauthenticated); show anything but
// what those endpoints return, which holds no secret; load or fetch anything
// from another origin (no CDN); or call core, replmode or any package below
// httpapi: what it shows comes over HTTP, as any client's would.
package ui
