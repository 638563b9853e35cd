package config

import (
	"strings"
	"testing"
	"time"
)

// Vault's form: a telemetry block at the top, and one inside the listener.
func TestTelemetryBlocks(t *testing.T) {
	clearEnv(t)
	hcl := `
storage "inmem" {}
listener "tcp" {
  address     = "127.0.0.1:8300"
  tls_disable = true
  telemetry {
    unauthenticated_metrics_access = true
  }
}
telemetry {
  prometheus_retention_time = "30s"
  disable_hostname          = true
}
`
	yaml := `
storage: {type: inmem}
listener: {type: tcp, address: "127.0.0.1:8300", tls_disable: true, telemetry: {unauthenticated_metrics_access: true}}
telemetry: {prometheus_retention_time: 30s, disable_hostname: true}
`
	for name, body := range map[string]string{"t.hcl": hcl, "t.yaml": yaml} {
		c := load(t, writeFile(t, name, body), nil)
		if !c.Listener.Telemetry.UnauthenticatedMetricsAccess || c.Telemetry.PrometheusRetentionTime != 30*time.Second ||
			!c.Telemetry.DisableHostname || c.Listener.Address != "127.0.0.1:8300" {
			t.Errorf("%s: listener %+v telemetry %+v", name, c.Listener, c.Telemetry)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	c := load(t, "", nil)
	if c.Listener.Telemetry.UnauthenticatedMetricsAccess || c.Telemetry.PrometheusRetentionTime != 24*time.Hour || c.Telemetry.DisableHostname {
		t.Errorf("defaults: want authenticated metrics, 24h, hostname on; got %+v %+v", c.Listener.Telemetry, c.Telemetry)
	}
	t.Setenv("COFFER_LISTENER_TELEMETRY_UNAUTHENTICATED_METRICS_ACCESS", "true")
	t.Setenv("COFFER_TELEMETRY_PROMETHEUS_RETENTION_TIME", "0")
	c = load(t, "", nil)
	if !c.Listener.Telemetry.UnauthenticatedMetricsAccess || c.Telemetry.PrometheusRetentionTime != 0 {
		t.Errorf("environment: %+v %+v", c.Listener.Telemetry, c.Telemetry)
	}
}

func TestTelemetryBlockMistakes(t *testing.T) {
	clearEnv(t)
	_, err := Load(writeFile(t, "bad.hcl", `listener "tcp" {
  telemetry { unauthenticated_metrics = true }
}`), nil)
	if err == nil || !strings.Contains(err.Error(), "unauthenticated_metrics_access") {
		t.Fatalf("an unknown key in the listener's telemetry block: want the valid key named, got %v", err)
	}
	c := load(t, writeFile(t, "neg.hcl", `telemetry { prometheus_retention_time = "-1s" }`), DevDefaults())
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "prometheus_retention_time") {
		t.Fatalf("a negative retention: want it refused, got %v", err)
	}
}
