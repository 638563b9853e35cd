package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ContentTypePrometheus is the Prometheus text exposition format, version 0.0.4.
const ContentTypePrometheus = "text/plain; version=0.0.4; charset=utf-8"

// ErrPrometheusDisabled answers ?format=prometheus when the retention time is zero.
var ErrPrometheusDisabled = errors.New("prometheus metrics are not enabled: set prometheus_retention_time " +
	"in the telemetry block (such as \"24h\"), or read sys/metrics without ?format=prometheus for JSON")

// ErrUnknownFormat answers a format other than "" and "prometheus".
var ErrUnknownFormat = errors.New("unknown metrics format: use format=prometheus, or no format for JSON")

// ErrNoRegistry answers a scrape of a process without a registry.
var ErrNoRegistry = errors.New("metrics are not collected by this process")

// Render is sys/metrics: the content type and the body for format ("" for
// JSON, "prometheus"). Its errors are the Err* of this package: a client's
// mistake, or ErrNoRegistry.
func Render(r *Registry, format string) (contentType string, body []byte, err error) {
	if r == nil {
		return "", nil, ErrNoRegistry
	}
	var buf bytes.Buffer
	switch format {
	case "prometheus":
		if !r.PrometheusEnabled() {
			return "", nil, ErrPrometheusDisabled
		}
		if err := r.WritePrometheus(&buf); err != nil {
			return "", nil, err
		}
		return ContentTypePrometheus, buf.Bytes(), nil
	case "", "json":
		if err := json.NewEncoder(&buf).Encode(r.Summary()); err != nil {
			return "", nil, err
		}
		return "application/json", buf.Bytes(), nil
	}
	return "", nil, ErrUnknownFormat
}

// StatusOf is the HTTP status for an error of Render: 400 for the client's
// mistakes, 500 otherwise.
func StatusOf(err error) int {
	if errors.Is(err, ErrPrometheusDisabled) || errors.Is(err, ErrUnknownFormat) {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// WritePrometheus writes every live series in the Prometheus text format.
func (r *Registry) WritePrometheus(w io.Writer) error {
	snap := r.snap()
	var b strings.Builder
	family, famKind := "", kind(-1)
	for _, s := range snap.series {
		name := promName(s.name)
		if name != family {
			family, famKind = name, s.kind
			b.WriteString("# HELP " + name + " " + name + "\n")
			b.WriteString("# TYPE " + name + " " + s.kind.String() + "\n")
		} else if s.kind != famKind {
			continue // two dotted names that render alike, of two kinds
		}
		switch s.kind {
		case kindGauge:
			writeSample(&b, name, s.labels, "", s.value)
		case kindCounter:
			writeSample(&b, name, s.labels, "", s.sum)
		case kindSummary:
			vals := make([]float64, len(s.window))
			for i, o := range s.window {
				vals[i] = o.v
			}
			sort.Float64s(vals)
			for _, q := range []float64{0.5, 0.9, 0.99} {
				writeSample(&b, name, s.labels, strconv.FormatFloat(q, 'g', -1, 64), quantile(vals, q))
			}
			writeSample(&b, name+"_sum", s.labels, "", s.sum)
			writeSample(&b, name+"_count", s.labels, "", float64(s.count))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeSample(b *strings.Builder, name string, labels []Label, q string, v float64) {
	b.WriteString(name)
	if len(labels) > 0 || q != "" {
		b.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(labelName(l.Name) + `="` + escapeLabel(l.Value) + `"`)
		}
		if q != "" {
			if len(labels) > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`quantile="` + q + `"`)
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(formatFloat(v))
	b.WriteByte('\n')
}

func formatFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// promName turns a dotted name into a Prometheus metric name, as
// go-metrics' Prometheus sink does: every character outside
// [a-zA-Z0-9_:] becomes "_".
func promName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && i > 0) {
			b[i] = '_'
		}
	}
	return string(b)
}

// labelName is promName without the colon, which label names may not hold.
func labelName(name string) string {
	return strings.ReplaceAll(promName(name), ":", "_")
}

func escapeLabel(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

func labelString(ls []Label) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.Name + "\x00" + l.Value + "\x00")
	}
	return b.String()
}

// GaugeValue is a gauge of the JSON rendering.
type GaugeValue struct {
	Name   string            `json:"Name"`
	Value  float64           `json:"Value"`
	Labels map[string]string `json:"Labels"`
}

// SampledValue is a counter or a summary of the JSON rendering.
type SampledValue struct {
	Name   string            `json:"Name"`
	Count  uint64            `json:"Count"`
	Rate   float64           `json:"Rate"`
	Sum    float64           `json:"Sum"`
	Min    float64           `json:"Min"`
	Max    float64           `json:"Max"`
	Mean   float64           `json:"Mean"`
	Stddev float64           `json:"Stddev"`
	Labels map[string]string `json:"Labels"`
}

// Summary is the JSON rendering: the shape of Vault's in-memory sink.
type Summary struct {
	Timestamp string         `json:"Timestamp"`
	Gauges    []GaugeValue   `json:"Gauges"`
	Points    []any          `json:"Points"`
	Counters  []SampledValue `json:"Counters"`
	Samples   []SampledValue `json:"Samples"`
}

// Summary renders every live series as Vault's in-memory sink does.
func (r *Registry) Summary() Summary {
	snap := r.snap()
	out := Summary{Timestamp: snap.at.UTC().Round(time.Second).Format("2006-01-02 15:04:05 -0700 MST"),
		Gauges: []GaugeValue{}, Points: []any{}, Counters: []SampledValue{}, Samples: []SampledValue{}}
	secs := snap.uptime.Seconds()
	for _, s := range snap.series {
		labels := map[string]string{}
		for _, l := range s.labels {
			labels[l.Name] = l.Value
		}
		if s.kind == kindGauge {
			out.Gauges = append(out.Gauges, GaugeValue{Name: s.name, Value: s.value, Labels: labels})
			continue
		}
		v := SampledValue{Name: s.name, Count: s.count, Sum: s.sum, Min: s.min, Max: s.max, Labels: labels}
		if s.count > 0 {
			n := float64(s.count)
			v.Mean = s.sum / n
			if s.count > 1 {
				v.Stddev = math.Sqrt(math.Max(0, (s.sumSq-s.sum*s.sum/n)/(n-1)))
			}
		}
		if secs > 0 {
			v.Rate = s.sum / secs
		}
		if s.kind == kindCounter {
			out.Counters = append(out.Counters, v)
		} else {
			out.Samples = append(out.Samples, v)
		}
	}
	return out
}

// RuntimeCollector sets Vault's vault.runtime.* gauges at each scrape.
func RuntimeCollector(r *Registry) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	r.SetGauge(NameRuntimeGoroutines, float64(runtime.NumGoroutine()))
	r.SetGauge(NameRuntimeAllocBytes, float64(m.Alloc))
	r.SetGauge(NameRuntimeSysBytes, float64(m.Sys))
	r.SetGauge(NameRuntimeHeapObjects, float64(m.HeapObjects))
	r.SetGauge(NameRuntimeMallocCount, float64(m.Mallocs))
	r.SetGauge(NameRuntimeFreeCount, float64(m.Frees))
	r.SetGauge(NameRuntimeGCRuns, float64(m.NumGC))
	r.SetGauge(NameRuntimeGCPauseNs, float64(m.PauseTotalNs))
}
