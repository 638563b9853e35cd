package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cofferhq/coffer/internal/testutil"
)

// scrape reads /v1/sys/metrics?format=prometheus of d with its root token
// and parses it with Prometheus's own text parser.
func scrape(t testing.TB, d *devCluster) map[string]*dto.MetricFamily {
	t.Helper()
	body := metricsGet(t, d, "?format=prometheus")
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the Prometheus parser refuses sys/metrics of %s: %v\n%s", d.addr, err, body)
	}
	return fams
}

func metricsGet(t testing.TB, d *devCluster, query string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+d.addr+"/v1/sys/metrics"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", d.rootID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET sys/metrics%s: %v", query, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET sys/metrics%s: %d %v %.300s", query, resp.StatusCode, err, body)
	}
	return body
}

// value is the value of the series of fams named name (with the label
// secondary=sec when sec is set): a gauge's or counter's value, a
// summary's count; an error when it is missing.
func value(fams map[string]*dto.MetricFamily, name, sec string) (float64, error) {
	f := fams[name]
	if f == nil {
		return 0, fmt.Errorf("%s is missing", name)
	}
	for _, m := range f.Metric {
		if sec != "" && (len(m.Label) == 0 || m.Label[0].GetValue() != sec) {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), nil
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), nil
		case dto.MetricType_SUMMARY:
			return float64(m.GetSummary().GetSampleCount()), nil
		}
	}
	return 0, fmt.Errorf("%s has no series for %q", name, sec)
}

// hostPart is the host name as gauges carry it when disable_hostname is
// off (the default, as Vault's): vault.<host>.x renders vault_<host>_x.
func hostPart(t testing.TB) string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "localhost"
	}
	return regexp.MustCompile(`[^a-zA-Z0-9_:]`).ReplaceAllString(h, "_")
}

func TestMetricsPrometheusAndJSON(t *testing.T) {
	rp := fwdPairT(t)
	h := hostPart(t)
	if _, err := kvWrite(rp.p.root, "metrics/first", "1"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitTimeout, "the replication metrics on both sides", func() error {
		for _, c := range []struct {
			d     *devCluster
			names []string
		}{
			{rp.p, []string{"vault_" + h + "_replication_wal_last_wal", "vault_wal_persistWALs", "vault_core_handle_request",
				"vault_route_update_secret_", "vault_replication_rpc_server_echo", "coffer_replication_batches_shipped",
				"coffer_replication_bytes_shipped", "vault_logshipper_streamWALs_guard_found", "vault_merkle_flushDirty",
				"vault_" + h + "_merkle_flushDirty_num_pages", "vault_" + h + "_runtime_num_goroutines"}},
			{rp.s, []string{"vault_" + h + "_replication_fsm_last_remote_wal", "coffer_replication_batches_applied",
				"coffer_replication_bytes_applied", "vault_replication_rpc_client_echo", "coffer_" + h + "_replication_lag_entries",
				"coffer_" + h + "_replication_lag_seconds"}},
		} {
			fams := scrape(t, c.d)
			for _, n := range c.names {
				if _, err := value(fams, n, ""); err != nil {
					return fmt.Errorf("%s: %w", c.d.addr, err)
				}
			}
		}
		_, err := value(scrape(t, rp.p), "coffer_"+h+"_replication_secondary_lag_entries", "dc2")
		return err
	})

	// Request counters move with requests.
	before, _ := value(scrape(t, rp.p), "vault_route_update_secret_", "")
	for i := range 5 {
		if _, err := kvWrite(rp.p.root, "metrics/first", i); err != nil {
			t.Fatal(err)
		}
	}
	after, err := value(scrape(t, rp.p), "vault_route_update_secret_", "")
	if err != nil || after-before < 5 {
		t.Fatalf("vault_route_update_secret_ count went from %v to %v (%v) after 5 writes; want +5", before, after, err)
	}

	// The JSON form: Vault's in-memory sink shape.
	var js struct {
		Timestamp string
		Gauges    []struct {
			Name  string
			Value float64
		}
		Counters, Samples []struct {
			Name  string
			Count uint64
		}
	}
	if err := json.Unmarshal(metricsGet(t, rp.p, ""), &js); err != nil {
		t.Fatalf("sys/metrics JSON: %v", err)
	}
	found := false
	for _, g := range js.Gauges {
		found = found || g.Name == "vault."+mustHost(t)+".replication.wal.last_wal" && g.Value > 0
	}
	if js.Timestamp == "" || !found || len(js.Counters) == 0 || len(js.Samples) == 0 {
		t.Fatalf("sys/metrics JSON lacks Timestamp, the last_wal gauge, counters or samples: %+v", js)
	}
}

func mustHost(t testing.TB) string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// Lag rises while the secondary's WAL consumer is held back, and falls to
// zero once it is let go.
func TestMetricsLagRisesAndFalls(t *testing.T) {
	rp := fwdPairT(t)
	h := hostPart(t)
	resume := rp.pauseConsumer(t)
	defer resume()
	for i := range 20 {
		if _, err := kvWrite(rp.p.root, fmt.Sprintf("lag/%d", i), i); err != nil {
			t.Fatal(err)
		}
	}
	lagEntries, lagSeconds := "coffer_"+h+"_replication_lag_entries", "coffer_"+h+"_replication_lag_seconds"
	// The primary's view: its last_wal against the last_remote_wal the
	// secondary's heartbeats report.
	testutil.Eventually(t, waitTimeout, "the primary sees dc2's lag rise while its consumer is paused", func() error {
		p, err := value(scrape(t, rp.p), "coffer_"+h+"_replication_secondary_lag_entries", "dc2")
		if err != nil || p < 20 {
			return fmt.Errorf("primary's lag of dc2 = %v (%v), want >= 20", p, err)
		}
		return nil
	})
	resume()
	testutil.Eventually(t, waitTimeout, "lag falls to zero once the consumer resumes", func() error {
		sf := scrape(t, rp.s)
		for _, n := range []string{lagEntries, lagSeconds} {
			if v, err := value(sf, n, ""); err != nil || v != 0 {
				return fmt.Errorf("secondary %s = %v (%v), want 0", n, v, err)
			}
		}
		if p, err := value(scrape(t, rp.p), "coffer_"+h+"_replication_secondary_lag_entries", "dc2"); err != nil || p != 0 {
			return fmt.Errorf("primary's lag of dc2 = %v (%v), want 0", p, err)
		}
		return nil
	})
}
