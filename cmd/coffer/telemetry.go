package main

import (
	"github.com/cofferhq/coffer/config"
	"github.com/cofferhq/coffer/replmode"
	"github.com/cofferhq/coffer/telemetry"
)

// installTelemetry makes the process's metrics registry from the telemetry
// block: what /v1/sys/metrics serves, with the runtime and replication
// gauges read at each scrape.
func installTelemetry(cfg *config.Config, repl *replmode.Manager) {
	r := telemetry.New(telemetry.Options{
		PrometheusRetentionTime: cfg.Telemetry.PrometheusRetentionTime,
		DisableHostname:         cfg.Telemetry.DisableHostname,
	})
	r.OnScrape(telemetry.RuntimeCollector)
	r.OnScrape(repl.CollectMetrics)
	telemetry.Install(r)
}
