// Package telemetry is Coffer's metrics registry and its two renderings,
// served at /v1/sys/metrics: Prometheus text exposition (?format=prometheus)
// and the JSON shape of Vault's in-memory sink (without the parameter).
//
// # What it owns
//
//   - The registry: gauges, counters and summaries (timings in
//     milliseconds, as Vault's), each a name in Vault's dotted form
//     ("vault.replication.wal.last_wal", "coffer.replication.lag_entries")
//     and bounded, non-secret labels.
//
//   - The names (names.go): Vault's where Vault has one, Coffer's own under
//     "coffer.".
//
//   - Vault's telemetry options: prometheus_retention_time (a series not
//     updated for that long leaves both renderings; 0 turns the Prometheus
//     form off, as in Vault) and disable_hostname (by default gauges carry
//     the host name after their first component, "vault.<host>.runtime...",
//     as go-metrics does for Vault).
//
//   - The formats, written down here:
//
//     Prometheus text (version 0.0.4): one family per name, dots and every
//     other character outside [a-zA-Z0-9_:] turned into "_"; "# HELP n n"
//     and "# TYPE n gauge|counter|summary" lines, as Vault's sink writes them.
//     Counters keep their name (no _total suffix, as in Vault); a summary has
//     the quantiles 0.5, 0.9 and 0.99 of its observations of the last 10 s
//     (NaN when there were none, as Vault's), then <n>_sum and <n>_count over
//     the process's life.
//
//     JSON: {"Timestamp": "2006-01-02 15:04:05 +0000 UTC", "Gauges":
//     [{"Name","Value","Labels"}], "Points": [], "Counters": [...],
//     "Samples": [...]}, counters and samples each {"Name", "Count", "Rate",
//     "Sum", "Min", "Max", "Mean", "Stddev", "Labels"}. Unlike Vault's
//     in-memory sink, which reports the current 10 s interval, Coffer
//     reports totals since the process started (Rate is Sum per second over
//     that time): one scrape says everything.
//
// # The decision: a registry of its own, not prometheus/client_golang
//
// client_golang (Apache-2.0, allowed) would bring client_model, protobuf and
// procfs into the binary, and still not give Vault's JSON shape, its hostname
// prefix or its retention rule, which sit in go-metrics' sinks, not in
// client_golang. What Coffer needs is small: three kinds, one text format. So
// the registry is about 400 lines here, and the tests parse its output with
// prometheus/common's expfmt, the parser Prometheus itself uses, so a drift
// from the format fails a test rather than a scrape.
//
// # Hooks
//
// The places that count call the package-level functions (SetGauge,
// IncrCounter, AddSample, MeasureSince), which write to the registry Install
// made the process's. Until a registry is installed, and in every test that
// does not install one, they do nothing: no component needs a registry to be
// constructed. `coffer server` installs one per process. Values that exist
// anyway (WAL indexes, lag) are read when a scrape comes (Registry.OnScrape),
// not pushed on every write.
//
// # What it must never do
//
//   - Carry a secret: no token, key, path below a mount or value in a name or
//     a label. A request's label is its mount ("secret-"), never its path.
//   - Import anything of Coffer's: every layer may call it, so it calls none.
//   - Grow without bound: past MaxSeries a new series is dropped and counted
//     in coffer.telemetry.dropped_series.
//   - Own a goroutine: everything happens in the caller's or the scrape's.
package telemetry
