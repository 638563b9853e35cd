package telemetry

import (
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Label is one label of a series. Its value must be bounded (a mount, a
// secondary's id, an operation) and never a secret.
type Label struct {
	Name, Value string
}

// Options configures a Registry: Vault's telemetry block.
type Options struct {
	// PrometheusRetentionTime: a series not updated for this long is left out
	// of both renderings and forgotten. Zero turns the Prometheus rendering
	// off (Vault's rule); the JSON rendering then keeps every series.
	PrometheusRetentionTime time.Duration
	// DisableHostname leaves the host name out of gauge names.
	DisableHostname bool
	// Hostname is the name gauges carry; empty means os.Hostname().
	Hostname string
	// MaxSeries bounds the number of series; zero means DefaultMaxSeries.
	MaxSeries int
	// Now is the clock; nil means time.Now (tests set it).
	Now func() time.Time
}

// Defaults as Vault's.
const (
	DefaultRetention = 24 * time.Hour
	DefaultMaxSeries = 10000
	// quantileWindow is how long a summary's observations feed its
	// quantiles (go-metrics' Prometheus sink: 10 s).
	quantileWindow = 10 * time.Second
	// maxWindow bounds the observations kept for the quantiles.
	maxWindow = 1024
)

type kind int

const (
	kindGauge kind = iota
	kindCounter
	kindSummary
)

func (k kind) String() string {
	return [...]string{"gauge", "counter", "summary"}[k]
}

type obs struct {
	at time.Time
	v  float64
}

// series is one name with one set of labels.
type series struct {
	name    string // dotted, with the host name for a gauge
	labels  []Label
	kind    kind
	value   float64 // a gauge's value
	count   uint64  // counter increments, summary observations
	sum     float64 // counter total, summary sum
	sumSq   float64
	min     float64
	max     float64
	window  []obs // a summary's recent observations, oldest first
	updated time.Time
}

// Registry holds the process's series. Its methods are safe for concurrent
// use, and do nothing on a nil *Registry.
type Registry struct {
	opts    Options
	host    string
	started time.Time

	mu      sync.Mutex
	series  map[string]*series
	dropped float64

	cmu        sync.Mutex
	collectors []func(*Registry)
}

// New returns an empty registry.
func New(opts Options) *Registry {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxSeries <= 0 {
		opts.MaxSeries = DefaultMaxSeries
	}
	host := opts.Hostname
	if host == "" && !opts.DisableHostname {
		host, _ = os.Hostname()
	}
	if host == "" {
		host = "localhost"
	}
	return &Registry{opts: opts, host: host, started: opts.Now(), series: map[string]*series{}}
}

// PrometheusEnabled reports whether the Prometheus rendering is on
// (prometheus_retention_time above zero).
func (r *Registry) PrometheusEnabled() bool {
	return r != nil && r.opts.PrometheusRetentionTime > 0
}

// OnScrape registers f to run at the start of every rendering, outside the
// registry's lock, to set the gauges of values that are read rather than
// pushed (WAL indexes, lag).
func (r *Registry) OnScrape(f func(*Registry)) {
	if r == nil {
		return
	}
	r.cmu.Lock()
	r.collectors = append(r.collectors, f)
	r.cmu.Unlock()
}

// SetGauge sets a gauge.
func (r *Registry) SetGauge(name string, v float64, labels ...Label) {
	if r == nil {
		return
	}
	if !r.opts.DisableHostname {
		name = withHost(name, r.host)
	}
	r.update(name, kindGauge, labels, func(s *series) { s.value = v })
}

// IncrCounter adds v to a counter.
func (r *Registry) IncrCounter(name string, v float64, labels ...Label) {
	if r == nil {
		return
	}
	r.update(name, kindCounter, labels, func(s *series) { s.observe(v) })
}

// AddSample adds an observation to a summary (a timing in milliseconds).
func (r *Registry) AddSample(name string, v float64, labels ...Label) {
	if r == nil {
		return
	}
	now := r.opts.Now()
	r.update(name, kindSummary, labels, func(s *series) {
		s.observe(v)
		s.window = append(s.window, obs{at: now, v: v})
		if len(s.window) >= 2*maxWindow {
			// Trimmed once every maxWindow samples, not on each: moving
			// the window on every sample cost 5% of a busy server's CPU.
			s.window = append(s.window[:0], s.window[len(s.window)-maxWindow:]...)
		}
	})
}

// MeasureSince adds the milliseconds since start to a summary.
func (r *Registry) MeasureSince(name string, start time.Time, labels ...Label) {
	if r == nil {
		return
	}
	r.AddSample(name, float64(r.opts.Now().Sub(start))/float64(time.Millisecond), labels...)
}

func (s *series) observe(v float64) {
	if s.count == 0 || v < s.min {
		s.min = v
	}
	if s.count == 0 || v > s.max {
		s.max = v
	}
	s.count++
	s.sum += v
	s.sumSq += v * v
}

func (r *Registry) update(name string, k kind, labels []Label, f func(*series)) {
	key := seriesKey(name, labels)
	now := r.opts.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.series[key]
	if !ok {
		if len(r.series) >= r.opts.MaxSeries {
			r.dropped++
			return
		}
		ls := append([]Label(nil), labels...)
		sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
		s = &series{name: name, labels: ls, kind: k}
		r.series[key] = s
	}
	if s.kind != k {
		return // one name, one kind: the first use decides
	}
	f(s)
	s.updated = now
}

// seriesKey is name plus the labels in a canonical order.
func seriesKey(name string, labels []Label) string {
	if len(labels) == 0 {
		return name
	}
	ls := append([]Label(nil), labels...)
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	var b strings.Builder
	b.WriteString(name)
	for _, l := range ls {
		b.WriteByte(0)
		b.WriteString(l.Name)
		b.WriteByte(0)
		b.WriteString(l.Value)
	}
	return b.String()
}

// withHost puts host after a name's first component: vault.x.y becomes
// vault.<host>.x.y, as go-metrics names Vault's gauges.
func withHost(name, host string) string {
	first, rest, ok := strings.Cut(name, ".")
	if !ok {
		return host + "." + name
	}
	return first + "." + host + "." + rest
}

// snapshot is a copy of the live series, sorted by name then labels.
type snapshot struct {
	at     time.Time
	uptime time.Duration
	series []series
}

// snap runs the collectors, forgets the series older than the retention and
// copies the rest.
func (r *Registry) snap() snapshot {
	r.cmu.Lock()
	cs := slices.Clone(r.collectors)
	r.cmu.Unlock()
	for _, f := range cs {
		f(r)
	}
	now := r.opts.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dropped > 0 {
		r.series[NameDroppedSeries] = &series{name: NameDroppedSeries, kind: kindCounter, count: 1, sum: r.dropped, min: r.dropped, max: r.dropped, updated: now}
	}
	out := snapshot{at: now, uptime: now.Sub(r.started), series: make([]series, 0, len(r.series))}
	for key, s := range r.series {
		if ret := r.opts.PrometheusRetentionTime; ret > 0 && now.Sub(s.updated) > ret {
			delete(r.series, key)
			continue
		}
		c := *s
		c.labels = append([]Label(nil), s.labels...)
		if s.kind == kindSummary {
			c.window = recent(s.window, now)
			s.window = append(s.window[:0], c.window...)
		}
		out.series = append(out.series, c)
	}
	sort.Slice(out.series, func(i, j int) bool {
		a, b := out.series[i], out.series[j]
		if pa, pb := promName(a.name), promName(b.name); pa != pb {
			return pa < pb
		}
		return labelString(a.labels) < labelString(b.labels)
	})
	return out
}

// recent is the newest maxWindow observations of the last quantileWindow,
// copied.
func recent(w []obs, now time.Time) []obs {
	i := sort.Search(len(w), func(i int) bool { return now.Sub(w[i].at) <= quantileWindow })
	return append([]obs(nil), w[max(i, len(w)-maxWindow):]...)
}

// quantile is the q-quantile of the window's values (nearest rank), NaN
// for an empty window.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// The installed registry of the process.
var installed atomic.Pointer[Registry]

// Install makes r the registry the package-level functions write to; nil
// uninstalls.
func Install(r *Registry) { installed.Store(r) }

// Default is the installed registry, or nil.
func Default() *Registry { return installed.Load() }

// SetGauge sets a gauge of the installed registry.
func SetGauge(name string, v float64, labels ...Label) { installed.Load().SetGauge(name, v, labels...) }

// IncrCounter adds v to a counter of the installed registry.
func IncrCounter(name string, v float64, labels ...Label) {
	installed.Load().IncrCounter(name, v, labels...)
}

// AddSample adds an observation to a summary of the installed registry.
func AddSample(name string, v float64, labels ...Label) {
	installed.Load().AddSample(name, v, labels...)
}

// MeasureSince adds the milliseconds since start to a summary of the
// installed registry.
func MeasureSince(name string, start time.Time, labels ...Label) {
	installed.Load().MeasureSince(name, start, labels...)
}
