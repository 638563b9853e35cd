package security

// sys/metrics (issue 16): Vault's rule is a token with read on sys/metrics,
// unless the listener's telemetry block sets unauthenticated_metrics_access.
// Metrics name mounts and operations, never a path below a mount, a token or
// a value.

import (
	"net/http"
	"strings"
	"testing"
)

func TestHTTPAttackMetricsNeedAToken(t *testing.T) {
	s := startDevServer(t, serverOpts{NoNATS: true})
	reader := s.tokenWithPolicy("metrics-reader", `path "sys/metrics" { capabilities = ["read"] }`)
	other := s.tokenWithPolicy("kv-only", `path "secret/*" { capabilities = ["read"] }`)
	for _, p := range []string{"/v1/sys/metrics", "/v1/sys/metrics?format=prometheus", "/v1/sys/metrics/", "/v1/sys//metrics?format=prometheus"} {
		if r := s.raw(http.MethodGet, p, "", nil); r.code != http.StatusForbidden {
			t.Errorf("GET %s without a token: %d %.200s; want 403", p, r.code, r.body)
		}
		if r := s.raw(http.MethodGet, p, other, nil); r.code != http.StatusForbidden {
			t.Errorf("GET %s with a token without read on sys/metrics: %d %.200s; want 403", p, r.code, r.body)
		}
	}
	r := s.raw(http.MethodGet, "/v1/sys/metrics?format=prometheus", reader, nil)
	if r.code != http.StatusOK || !strings.Contains(string(r.body), "vault_core_handle_request") {
		t.Fatalf("with read on sys/metrics: %d %.300s; want 200 and the metrics", r.code, r.body)
	}
}

func TestHTTPAttackMetricsUnauthenticatedOnlyWhenConfigured(t *testing.T) {
	s := startDevServer(t, serverOpts{NoNATS: true, Listener: "  telemetry {\n    unauthenticated_metrics_access = true\n  }"})
	secretPath := "team-7f3a/db-password-path"
	mustKVPut(t, s.rootClient(), secretPath, "hunter2-value-9c1e")
	for _, p := range []string{"/v1/sys/metrics?format=prometheus", "/v1/sys/metrics"} {
		r := s.raw(http.MethodGet, p, "", nil)
		if r.code != http.StatusOK {
			t.Fatalf("GET %s without a token on a listener with unauthenticated_metrics_access: %d %.200s; want 200", p, r.code, r.body)
		}
		body := string(r.body)
		for _, leak := range []string{s.rootID, "team-7f3a", "db-password", "hunter2"} {
			if strings.Contains(body, leak) {
				t.Errorf("GET %s shows %q: metrics must hold mounts, not paths, tokens or values", p, leak)
			}
		}
		if !strings.Contains(body, "route") {
			t.Errorf("GET %s: no per-mount request metric in %.300s", p, body)
		}
	}
	// Only GET: the listener option opens reading, nothing else.
	if r := s.raw(http.MethodPost, "/v1/sys/metrics", "", nil); r.code == http.StatusOK {
		t.Fatalf("POST sys/metrics without a token: 200; want it refused")
	}
}
