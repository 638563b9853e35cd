package httpapi

import (
	"net/http/httptest"
	"testing"

	"github.com/cofferhq/coffer/core"
)

// TestHealthCode covers the states a single real core cannot reach yet
// (standby, performance standby, DR secondary) against Vault's table.
func TestHealthCode(t *testing.T) {
	active := &core.HealthStatus{Initialized: true}
	cases := []struct {
		name  string
		s     *core.HealthStatus
		query string
		want  int
	}{
		{"active", active, "", 200},
		{"active override", active, "activecode=204", 204},
		{"uninit beats sealed", &core.HealthStatus{Sealed: true}, "", 501},
		{"sealed", &core.HealthStatus{Initialized: true, Sealed: true}, "", 503},
		{"sealed override", &core.HealthStatus{Initialized: true, Sealed: true}, "sealedcode=200", 200},
		{"dr secondary", &core.HealthStatus{Initialized: true, ReplicationDRMode: "secondary"}, "", 472},
		{"dr secondary override", &core.HealthStatus{Initialized: true, ReplicationDRMode: "secondary"}, "drsecondarycode=200", 200},
		{"standby", &core.HealthStatus{Initialized: true, Standby: true}, "", 429},
		{"standbyok", &core.HealthStatus{Initialized: true, Standby: true}, "standbyok=true", 200},
		{"bare standbyok", &core.HealthStatus{Initialized: true, Standby: true}, "standbyok", 200},
		{"standby override", &core.HealthStatus{Initialized: true, Standby: true}, "standbycode=299", 299},
		{"perf standby", &core.HealthStatus{Initialized: true, Standby: true, PerformanceStandby: true}, "", 473},
		{"perf standby with standbyok", &core.HealthStatus{Initialized: true, Standby: true, PerformanceStandby: true}, "standbyok=true", 473},
		{"perfstandbyok", &core.HealthStatus{Initialized: true, Standby: true, PerformanceStandby: true}, "perfstandbyok=true", 200},
		{"perf standby override", &core.HealthStatus{Initialized: true, PerformanceStandby: true}, "performancestandbycode=298", 298},
	}
	for _, tc := range cases {
		codes, err := parseHealthQuery(httptest.NewRequest("GET", "/v1/sys/health?"+tc.query, nil))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := healthCode(tc.s, codes); got != tc.want {
			t.Errorf("%s: code %d, want %d", tc.name, got, tc.want)
		}
	}
	for _, q := range []string{"activecode=abc", "sealedcode=42", "removedcode=1000", "perfstandbyok=perhaps"} {
		if _, err := parseHealthQuery(httptest.NewRequest("GET", "/v1/sys/health?"+q, nil)); err == nil || ErrorStatus(err) != 400 {
			t.Errorf("%s: err %v, want a 400", q, err)
		}
	}
}
