package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// Parts are the measurements Options.Only picks from.
var Parts = []string{"throughput", "lag", "forwarded", "catchup", "transit"}

// Options configures Run (`coffer bench`'s flags).
type Options struct {
	// Bin is the coffer binary the servers run.
	Bin string
	// Storages to measure: "inmem", "bolt".
	Storages []string
	// Rates are the write rates of the lag measurements, each run Duration.
	Rates    []int
	Duration time.Duration
	// Size is the bytes of each written value.
	Size int
	// Backlog is the writes of the catch-up measurement.
	Backlog int
	// BacklogKeys is how many distinct keys the backlog writes (0: one key
	// per write): fewer keys keep the secondary's merkle index small, so its
	// memory shows the streaming alone.
	BacklogKeys int
	// ThroughputFor and Clients: the write throughput measurements.
	ThroughputFor time.Duration
	Clients       int
	// Repeat is how many rounds of the throughput measurements run, each
	// replication off then on (0 or 1: one); the rows give the median.
	Repeat int
	// CPURate is the write rate (writes/s, open loop) at which the
	// primary's CPU per write is also measured, replication off and on,
	// each for ThroughputFor (0: not measured).
	CPURate int
	// Forwarded is the sequential writes of forwarded against direct.
	Forwarded int
	// Only names the Parts to run.
	Only map[string]bool
	// CompareNATS measures the NATS anchor in the same run.
	CompareNATS bool
	// Log receives the servers' output (nil: discarded).
	Log io.Writer
	// Pin runs the primary on CPU 0 and this process and every other
	// server on CPU 1 (SetOptions.Pin); the NATS anchor's servers, in this
	// process, on CPU 1 too.
	Pin bool
	// ProfileDir, when set, receives a CPU profile of every server
	// (<storage>-<set>-<server>.pprof; go tool pprof reads them).
	ProfileDir string
	// NATS names where the sets' NATS runs, each measured in turn:
	// "embedded" (in the primary's process, the default) and "apart" (in
	// this process: the primary's CPU is its own; SetOptions.NATSApart).
	NATS []string
	// External, when set, measures running clusters instead (Storages,
	// catch-up, the CPU times and replication off are then left out).
	External *External
}

// anchor holds the NATS figures, measured once per run.
type anchor struct {
	lag     map[int]LagResult
	consume float64
}

// Run measures and prints one table: a row per figure and storage, the
// NATS anchor beside it when asked.
func Run(ctx context.Context, w io.Writer, o Options) error {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Pin {
		// Every thread of this process (-a), before the servers start.
		if out, err := exec.Command("taskset", "-a", "-p", "-c", "1", strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
			return fmt.Errorf("-pin: taskset: %v: %s (needs util-linux's taskset and 2 CPUs)", err, out)
		}
	}
	dir, err := os.MkdirTemp("", "coffer-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var an *anchor
	if o.CompareNATS {
		if an, err = measureAnchor(ctx, o, dir); err != nil {
			return fmt.Errorf("NATS anchor: %w", err)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tstorage\tcoffer\tnats anchor")
	if o.External != nil {
		if err := measureExternal(ctx, tw, o, an); err != nil {
			return err
		}
		return tw.Flush()
	}
	if len(o.NATS) == 0 {
		o.NATS = []string{"embedded"}
	}
	for _, st := range o.Storages {
		for _, where := range o.NATS {
			sdir, err := os.MkdirTemp(dir, st+"-")
			if err != nil {
				return err
			}
			so := SetOptions{Bin: o.Bin, Dir: sdir, Storage: st, Log: o.Log, ProfileDir: o.ProfileDir, Pin: o.Pin, NATSApart: where == "apart"}
			if err := measureStorage(ctx, tw, o, so, an); err != nil {
				return fmt.Errorf("%s: %w", so.label(), err)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	}
	return tw.Flush()
}

// measureStorage runs the measurements on one storage: replication off,
// then a set of a primary and two secondaries.
func measureStorage(ctx context.Context, w io.Writer, o Options, so SetOptions, an *anchor) error {
	st := so.label()
	ao := so
	ao.Dir += "/" + so.dirName() + "-alone"
	so.Secondaries, so.Replication = 2, true
	so.Dir += "/" + so.dirName() + "-set"
	set, err := StartSet(ctx, so)
	if err != nil {
		return err
	}
	defer set.Close()
	if o.Only["throughput"] {
		alone, err := StartSet(ctx, ao)
		if err != nil {
			return err
		}
		rounds, err := measureRounds(ctx, alone, set, o)
		alone.Close()
		if err != nil {
			return err
		}
		writeThroughput(w, o, st, rounds)
	}
	t := &CofferTarget{Primary: set.Primary.Client}
	for _, s := range set.Secondaries {
		t.Secondaries = append(t.Secondaries, s.Client)
	}
	if err := measureTarget(ctx, w, o, st, t, func() *cpuWatch { return startCPU(set) }, an); err != nil {
		return err
	}
	if o.Only["transit"] {
		if err := measureTransit(ctx, w, o, st, set); err != nil {
			return err
		}
	}
	if o.Only["catchup"] {
		c, err := CatchUp(ctx, set, 1, o.Backlog, o.BacklogKeys, o.Size)
		if err != nil {
			return err
		}
		anc := ""
		if an != nil {
			anc = fmt.Sprintf("ordered consumer: %.0f msgs/s (coffer %.2fx)", an.consume, c.Rate()/an.consume)
		}
		keys := ""
		if o.BacklogKeys > 0 {
			keys = fmt.Sprintf(" to %d keys", o.BacklogKeys)
		}
		cpu := ""
		if c.CPU > 0 && c.Entries > 0 {
			cpu = fmt.Sprintf(", secondary's CPU %.1f µs per entry (%.0f%% of the time)",
				float64(c.CPU.Microseconds())/float64(c.Entries), 100*c.CPU.Seconds()/c.Took.Seconds())
		}
		fmt.Fprintf(w, "catch-up from a backlog of %d writes%s\t%s\t%.0f WAL entries/s (%d in %s)%s, secondary's peak anonymous memory %d MiB\t%s\n",
			o.Backlog, keys, st, c.Rate(), c.Entries, round(c.Took), cpu, c.PeakAnon>>20, anc)
	}
	return nil
}

// measureTarget runs the lag and forwarded measurements on t; cpu, when
// set, watches the processes' CPU during each lag run.
func measureTarget(ctx context.Context, w io.Writer, o Options, st string, t *CofferTarget, cpu func() *cpuWatch, an *anchor) error {
	if o.Only["lag"] {
		for _, rate := range o.Rates {
			var c *cpuWatch
			if cpu != nil {
				c = cpu()
			}
			r := Lag(ctx, t, rate, o.Duration, o.Size)
			writeLag(w, st, r, an)
			if c != nil {
				fmt.Fprintf(w, "  CPU during it (%% of one core)\t%s\t%s\t\n", st, c.shares())
			}
		}
	}
	if o.Only["forwarded"] && len(t.Secondaries) > 0 {
		direct, err := Sequential(ctx, t.Put, o.Forwarded, o.Size)
		if err != nil {
			return err
		}
		fwd, err := Sequential(ctx, t.PutVia(t.Secondaries[0]), o.Forwarded, o.Size)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "write latency, sequential, direct\t%s\t%s\t\n", st, direct)
		fmt.Fprintf(w, "write latency, sequential, forwarded by a secondary\t%s\t%s (p99 %.2fx direct)\t\n", st, fwd, float64(fwd.P99)/float64(direct.P99))
	}
	return nil
}

// writeLag prints one lag measurement's rows.
func writeLag(w io.Writer, st string, r LagResult, an *anchor) {
	anc := ""
	if an != nil {
		if a, ok := an.lag[r.Rate]; ok && len(a.Lag) > 0 {
			anc = a.Lag[0].String()
			if a.Lag[0].P99 > 0 && len(r.Lag) > 0 {
				anc += fmt.Sprintf(" (coffer p99 %.2fx)", float64(r.Lag[0].P99)/float64(a.Lag[0].P99))
			}
		}
	}
	for i, d := range r.Lag {
		th := r.Thirds[i]
		fmt.Fprintf(w, "lag at %d writes/s (%.0f done), secondary %d\t%s\t%s; p50 by third %s %s %s\t%s\n",
			r.Rate, r.Achieved, i+1, st, d, ms(th[0].P50), ms(th[1].P50), ms(th[2].P50), anc)
		anc = ""
	}
	if r.Errors > 0 || r.Late > 0 || r.Lost > 0 {
		fmt.Fprintf(w, "  load at %d writes/s\t%s\t%d errors, %d writes started over 1 s late, %d probes lost\t\n", r.Rate, st, r.Errors, r.Late, r.Lost)
	}
}

// pairRun is one round of the throughput measurements: replication off, then
// on, each closed loop and, with CPURate, at that rate.
type pairRun struct {
	off, on     throughput
	offAt, onAt cpuAt
}

// measureRounds runs o.Repeat rounds (at least one) on the primary alone
// and on the set, one after the other in each round: on a shared machine
// what the other processes do drifts, and alternating spreads the drift
// over both sides.
func measureRounds(ctx context.Context, alone, set *Set, o Options) ([]pairRun, error) {
	rounds := make([]pairRun, max(o.Repeat, 1))
	for i := range rounds {
		r := &rounds[i]
		var err error
		if r.off, err = measureThroughput(ctx, alone, o); err != nil {
			return nil, err
		}
		if r.on, err = measureThroughput(ctx, set, o); err != nil {
			return nil, err
		}
		if o.CPURate > 0 {
			if r.offAt, err = measureCPUAt(ctx, alone, o); err != nil {
				return nil, err
			}
			if r.onAt, err = measureCPUAt(ctx, set, o); err != nil {
				return nil, err
			}
		}
	}
	return rounds, nil
}

// writeThroughput prints the throughput rows: one round's figures, or the
// median round's (by each row's ratio) with every round's ratio after it.
func writeThroughput(w io.Writer, o Options, st string, rounds []pairRun) {
	row := func(ratio func(pairRun) float64, format func(pairRun) string) string {
		sorted := slices.Clone(rounds)
		slices.SortFunc(sorted, func(a, b pairRun) int { return cmp.Compare(ratio(a), ratio(b)) })
		out := format(sorted[len(sorted)/2])
		if len(rounds) > 1 {
			var rs []string
			for _, r := range rounds {
				rs = append(rs, fmt.Sprintf("%.2f", ratio(r)))
			}
			out += fmt.Sprintf("; median of %d rounds, each: %s", len(rounds), strings.Join(rs, " "))
		}
		return out
	}
	fmt.Fprintf(w, "write throughput, %d clients, replication off / two secondaries\t%s\t%s\t\n", o.Clients, st,
		row(func(r pairRun) float64 { return r.on.rate / r.off.rate }, func(r pairRun) string {
			return fmt.Sprintf("%.0f / %.0f writes/s (%.2f)", r.off.rate, r.on.rate, r.on.rate/r.off.rate)
		}))
	fmt.Fprintf(w, "primary CPU per 1,000 writes, replication off / two secondaries\t%s\t%s\t\n", st,
		row(func(r pairRun) float64 { return r.on.cpu.Seconds() / r.off.cpu.Seconds() }, func(r pairRun) string {
			return fmt.Sprintf("%s / %s (%.2f)", round(r.off.cpu), round(r.on.cpu), r.on.cpu.Seconds()/r.off.cpu.Seconds())
		}))
	if o.CPURate <= 0 {
		return
	}
	fmt.Fprintf(w, "primary CPU per 1,000 writes at %d writes/s (open loop), replication off / two secondaries\t%s\t%s\t\n", o.CPURate, st,
		row(func(r pairRun) float64 { return r.onAt.cpu.Seconds() / r.offAt.cpu.Seconds() }, func(r pairRun) string {
			perBatch := ""
			if r.onAt.batches > 0 {
				perBatch = fmt.Sprintf(", %.1f writes per batch shipped", float64(r.onAt.writes)/float64(r.onAt.batches))
			}
			return fmt.Sprintf("%.1f / %.1f ms (%.2f; %.0f / %.0f writes/s done%s)",
				ms1(r.offAt.cpu), ms1(r.onAt.cpu), r.onAt.cpu.Seconds()/r.offAt.cpu.Seconds(), r.offAt.rate, r.onAt.rate, perBatch)
		}))
}

// throughput is one write throughput run and the primary's CPU per 1,000
// writes during it.
type throughput struct {
	rate float64
	cpu  time.Duration
}

func measureThroughput(ctx context.Context, s *Set, o Options) (throughput, error) {
	t := &CofferTarget{Primary: s.Primary.Client}
	c0, err := ProcessCPU(s.Primary.PID())
	if err != nil {
		return throughput{}, err
	}
	start := time.Now()
	rate, errs := Throughput(ctx, t.Put, o.Clients, o.ThroughputFor, o.Size)
	took := time.Since(start)
	c1, err := ProcessCPU(s.Primary.PID())
	if err != nil {
		return throughput{}, err
	}
	if errs > 0 {
		return throughput{}, fmt.Errorf("%d writes failed during the throughput run", errs)
	}
	writes := rate * took.Seconds()
	return throughput{rate: rate, cpu: time.Duration(float64(c1-c0) / writes * 1000)}, nil
}

// cpuAt is the primary's CPU per 1,000 writes under an open-loop load at
// a fixed rate, and the rate it took.
type cpuAt struct {
	rate    float64
	cpu     time.Duration
	batches uint64 // shipped meanwhile (0: replication off)
	writes  int64
}

// measureCPUAt writes at o.CPURate (open loop) for o.ThroughputFor and
// returns the primary's CPU per 1,000 writes, counted until every secondary
// has applied the last write (the shipping of every write counts). At one
// rate, replication off and on compare the same work: a closed-loop run
// compares a faster primary alone with a slower one, whose group commits
// hold fewer writes each.
func measureCPUAt(ctx context.Context, s *Set, o Options) (cpuAt, error) {
	t := &CofferTarget{Primary: s.Primary.Client}
	c0, err := ProcessCPU(s.Primary.PID())
	if err != nil {
		return cpuAt{}, err
	}
	b0, err := batchesShipped(ctx, s.Primary.Client)
	if err != nil {
		return cpuAt{}, err
	}
	var acked, errs, late atomic.Int64
	lctx, cancel := context.WithTimeout(ctx, o.ThroughputFor)
	start := time.Now()
	openLoop(lctx, t, o.CPURate, o.Size, &acked, &errs, &late)
	took := time.Since(start)
	cancel()
	if errs.Load() > 0 {
		return cpuAt{}, fmt.Errorf("%d writes failed during the run at %d writes/s", errs.Load(), o.CPURate)
	}
	if len(s.Secondaries) > 0 {
		last, err := statusWAL(ctx, s.Primary.Client, "last_wal")
		if err != nil {
			return cpuAt{}, err
		}
		for _, n := range s.Secondaries {
			if err := poll(ctx, time.Minute, func() error { return reached(ctx, n.Client, last) }); err != nil {
				return cpuAt{}, fmt.Errorf("%s did not apply the run's writes: %w", n.Name, err)
			}
		}
	}
	c1, err := ProcessCPU(s.Primary.PID())
	if err != nil {
		return cpuAt{}, err
	}
	b1, err := batchesShipped(ctx, s.Primary.Client)
	if err != nil {
		return cpuAt{}, err
	}
	n := acked.Load()
	if n == 0 {
		return cpuAt{}, fmt.Errorf("no write succeeded at %d writes/s", o.CPURate)
	}
	return cpuAt{rate: float64(n) / took.Seconds(), cpu: (c1 - c0) * 1000 / time.Duration(n), batches: b1 - b0, writes: n}, nil
}

// ms1 is d in milliseconds.
func ms1(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func round(d time.Duration) string { return d.Round(time.Millisecond).String() }

// cpuWatch reads the CPU time of a set's processes and of this one.
type cpuWatch struct {
	set   *Set
	start time.Time
	at    []time.Duration // primary, secondaries..., this process
}

func (s *Set) pids() []int {
	out := []int{s.Primary.PID()}
	for _, n := range s.Secondaries {
		out = append(out, n.PID())
	}
	return append(out, os.Getpid())
}

func startCPU(s *Set) *cpuWatch {
	c := &cpuWatch{set: s, start: time.Now()}
	for _, pid := range s.pids() {
		d, _ := ProcessCPU(pid)
		c.at = append(c.at, d)
	}
	return c
}

// shares renders each process's CPU since start as a percentage of one core.
func (c *cpuWatch) shares() string {
	wall := time.Since(c.start).Seconds()
	names := []string{"primary"}
	for i := range c.set.Secondaries {
		names = append(names, fmt.Sprintf("secondary %d", i+1))
	}
	names = append(names, "bench")
	var parts []string
	for i, pid := range c.set.pids() {
		d, err := ProcessCPU(pid)
		if err != nil {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.0f%%", names[i], 100*(d-c.at[i]).Seconds()/wall))
	}
	return strings.Join(parts, ", ")
}
