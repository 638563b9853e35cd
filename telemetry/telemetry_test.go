package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func newTestRegistry(opts Options) (*Registry, *testutil.Clock) {
	c := testutil.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	opts.Now = c.Now
	if opts.PrometheusRetentionTime == 0 {
		opts.PrometheusRetentionTime = DefaultRetention
	}
	return New(opts), c
}

// parse reads the Prometheus rendering with Prometheus's own parser.
func parse(t *testing.T, r *Registry) map[string]*dto.MetricFamily {
	t.Helper()
	_, body, err := Render(r, "prometheus")
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the Prometheus parser refuses the rendering: %v\n%s", err, body)
	}
	return fams
}

func TestPrometheusRenderingParses(t *testing.T) {
	r, _ := newTestRegistry(Options{DisableHostname: true})
	r.SetGauge(NameLastWAL, 42)
	r.SetGauge(NameSecondaryLagEntries, 7, Label{"secondary", `dc"2\n`})
	r.IncrCounter(NameBatchesShipped, 1)
	r.IncrCounter(NameBatchesShipped, 2)
	for _, v := range []float64{1, 2, 3, 4} {
		r.AddSample(NamePersistWALs, v)
	}
	r.AddSample(RouteName("create", "secret/"), 5)
	r.AddSample(NameRPCClientPrefix+"forward", 3)

	fams := parse(t, r)
	g := fams["vault_replication_wal_last_wal"]
	if g == nil || g.GetType() != dto.MetricType_GAUGE || g.Metric[0].GetGauge().GetValue() != 42 {
		t.Fatalf("vault_replication_wal_last_wal: %v", g)
	}
	lag := fams["coffer_replication_secondary_lag_entries"]
	if lag == nil || lag.Metric[0].Label[0].GetValue() != `dc"2\n` {
		t.Fatalf("label value did not survive escaping: %v", lag)
	}
	c := fams["coffer_replication_batches_shipped"]
	if c == nil || c.GetType() != dto.MetricType_COUNTER || c.Metric[0].GetCounter().GetValue() != 3 {
		t.Fatalf("counter: %v", c)
	}
	s := fams["vault_wal_persistWALs"]
	if s == nil || s.GetType() != dto.MetricType_SUMMARY {
		t.Fatalf("summary: %v", s)
	}
	sum := s.Metric[0].GetSummary()
	if sum.GetSampleCount() != 4 || sum.GetSampleSum() != 10 || len(sum.Quantile) != 3 || sum.Quantile[0].GetValue() != 2 {
		t.Fatalf("summary values: %v", sum)
	}
	for _, name := range []string{"vault_route_create_secret_", "vault_replication_rpc_client_forward"} {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
}

func TestHostnamePrefixesGaugesOnly(t *testing.T) {
	r, _ := newTestRegistry(Options{Hostname: "node-1"})
	r.SetGauge(NameLastWAL, 1)
	r.IncrCounter(NameResyncs, 1)
	fams := parse(t, r)
	if fams["vault_node_1_replication_wal_last_wal"] == nil || fams["coffer_replication_resyncs"] == nil {
		t.Fatalf("want the host after the first component of gauges only, got %v", keys(fams))
	}
}

func TestQuantilesForgetOldObservations(t *testing.T) {
	r, c := newTestRegistry(Options{DisableHostname: true})
	r.AddSample(NameFlushDirty, 100)
	c.Advance(11 * time.Second)
	r.AddSample(NameFlushDirty, 1)
	sum := parse(t, r)["vault_merkle_flushDirty"].Metric[0].GetSummary()
	if sum.Quantile[2].GetValue() != 1 || sum.GetSampleCount() != 2 || sum.GetSampleSum() != 101 {
		t.Fatalf("quantiles over the last 10 s, totals over all: %v", sum)
	}
	c.Advance(11 * time.Second)
	sum = parse(t, r)["vault_merkle_flushDirty"].Metric[0].GetSummary()
	if !math.IsNaN(sum.Quantile[0].GetValue()) {
		t.Fatalf("no recent observation: want NaN as Vault, got %v", sum.Quantile[0].GetValue())
	}
}

func TestRetentionForgetsStaleSeries(t *testing.T) {
	r, c := newTestRegistry(Options{DisableHostname: true, PrometheusRetentionTime: time.Minute})
	r.IncrCounter(NameResyncs, 1)
	c.Advance(30 * time.Second)
	r.SetGauge(NameLastWAL, 3)
	c.Advance(45 * time.Second)
	fams := parse(t, r)
	if fams["coffer_replication_resyncs"] != nil || fams["vault_replication_wal_last_wal"] == nil {
		t.Fatalf("after 75 s with a 1 min retention: want only the gauge set 45 s ago, got %v", keys(fams))
	}
}

func TestPrometheusOffWithZeroRetention(t *testing.T) {
	r := New(Options{DisableHostname: true})
	if _, _, err := Render(r, "prometheus"); !errors.Is(err, ErrPrometheusDisabled) || StatusOf(err) != 400 {
		t.Fatalf("want ErrPrometheusDisabled (400), got %v", err)
	}
	if _, _, err := Render(r, "xml"); !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("want ErrUnknownFormat, got %v", err)
	}
	if _, _, err := Render(r, ""); err != nil {
		t.Fatalf("JSON stays available: %v", err)
	}
}

func TestJSONIsVaultsInmemShape(t *testing.T) {
	r, c := newTestRegistry(Options{DisableHostname: true})
	r.SetGauge(NameLastRemoteWAL, 9, Label{"secondary", "dc2"})
	r.IncrCounter(NameBatchesApplied, 2)
	r.AddSample(NameMerkleSync, 10)
	r.AddSample(NameMerkleSync, 20)
	c.Advance(2 * time.Second)
	_, body, err := Render(r, "")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"Timestamp", "Gauges", "Points", "Counters", "Samples"} {
		if raw[k] == nil {
			t.Errorf("JSON lacks %s: %s", k, body)
		}
	}
	var s Summary
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	if s.Timestamp != "2026-01-02 03:04:07 +0000 UTC" {
		t.Errorf("Timestamp %q, want go-metrics' form", s.Timestamp)
	}
	if len(s.Gauges) != 1 || s.Gauges[0].Name != NameLastRemoteWAL || s.Gauges[0].Labels["secondary"] != "dc2" {
		t.Errorf("gauges: %+v", s.Gauges)
	}
	if len(s.Counters) != 1 || s.Counters[0].Sum != 2 || s.Counters[0].Rate != 1 {
		t.Errorf("counters: %+v", s.Counters)
	}
	if len(s.Samples) != 1 || s.Samples[0].Count != 2 || s.Samples[0].Mean != 15 || s.Samples[0].Min != 10 ||
		s.Samples[0].Max != 20 || math.Abs(s.Samples[0].Stddev-math.Sqrt(50)) > 1e-9 {
		t.Errorf("samples: %+v", s.Samples)
	}
}

func TestSeriesAreBounded(t *testing.T) {
	r, _ := newTestRegistry(Options{DisableHostname: true, MaxSeries: 2})
	for _, m := range []string{"a/", "b/", "c/", "d/"} {
		r.AddSample(RouteName("read", m), 1)
	}
	fams := parse(t, r)
	if len(fams) != 3 || fams["coffer_telemetry_dropped_series"].Metric[0].GetCounter().GetValue() != 2 {
		t.Fatalf("want two series and two dropped, got %v", keys(fams))
	}
}

func TestCollectorsRunAtScrape(t *testing.T) {
	r, _ := newTestRegistry(Options{DisableHostname: true})
	n := 0
	r.OnScrape(func(r *Registry) { n++; r.SetGauge(NameLagEntries, float64(n)) })
	r.OnScrape(RuntimeCollector)
	parse(t, r)
	fams := parse(t, r)
	if got := fams["coffer_replication_lag_entries"].Metric[0].GetGauge().GetValue(); got != 2 {
		t.Fatalf("collector ran %v times, want 2", got)
	}
	if fams["vault_runtime_num_goroutines"] == nil {
		t.Fatal("runtime gauges missing")
	}
}

func TestNilAndUninstalledAreNoOps(t *testing.T) {
	var r *Registry
	r.SetGauge("x", 1)
	r.IncrCounter("x", 1)
	r.MeasureSince("x", time.Now())
	r.OnScrape(func(*Registry) {})
	Install(nil)
	SetGauge("x", 1)
	IncrCounter("x", 1)
	AddSample("x", 1)
	MeasureSince("x", time.Now())
	if _, _, err := Render(nil, ""); !errors.Is(err, ErrNoRegistry) {
		t.Fatalf("want ErrNoRegistry, got %v", err)
	}
	reg, _ := newTestRegistry(Options{DisableHostname: true})
	Install(reg)
	defer Install(nil)
	IncrCounter(NameResyncs, 1)
	if Default() != reg || parse(t, reg)["coffer_replication_resyncs"] == nil {
		t.Fatal("the installed registry did not receive the package-level call")
	}
}

func TestRouteNameHoldsTheMountOnly(t *testing.T) {
	if got := RouteName("update", "auth/userpass/"); got != "vault.route.update.auth-userpass-" {
		t.Fatal(got)
	}
	if got := promName("vault.route.read.my mount-"); strings.ContainsAny(got, " .-") {
		t.Fatal(got)
	}
}

func keys(m map[string]*dto.MetricFamily) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Quantiles read the newest maxWindow observations; the window is bounded
// (at most twice that between trims).
func TestQuantileWindowIsBounded(t *testing.T) {
	r, _ := newTestRegistry(Options{DisableHostname: true})
	n := 5*maxWindow + 7
	for i := 1; i <= n; i++ {
		r.AddSample(NameFlushDirty, float64(i))
		if w := len(r.series[seriesKey(NameFlushDirty, nil)].window); w >= 2*maxWindow {
			t.Fatalf("the window holds %d observations after %d samples", w, i)
		}
	}
	sum := parse(t, r)["vault_merkle_flushDirty"].Metric[0].GetSummary()
	// Nearest rank over n-maxWindow+1 .. n.
	if p50 := sum.Quantile[0].GetValue(); p50 != float64(n-maxWindow/2) {
		t.Fatalf("p50 %v, want %d (the newest %d observations)", p50, n-maxWindow/2, maxWindow)
	}
	if sum.GetSampleCount() != uint64(n) {
		t.Fatalf("count %d, want %d", sum.GetSampleCount(), n)
	}
}

// BenchmarkAddSample: a timing sample into a summary whose window is full.
func BenchmarkAddSample(b *testing.B) {
	r, _ := newTestRegistry(Options{DisableHostname: true})
	for b.Loop() {
		r.AddSample(NameFlushDirty, 1)
	}
}
