package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cofferhq/coffer/bench"
)

func (c *cli) bench(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	o := bench.Options{}
	storages := fs.String("storage", "inmem", "storages to measure, comma-separated: inmem, bolt (fsync on)")
	natsWhere := fs.String("nats", "embedded", "where the set's NATS runs, comma-separated: embedded (in the primary's process), apart (in the bench's process, as an external NATS: the primary's CPU is then its own)")
	rates := fs.String("rates", "1000,5000", "write rates (writes/s) of the lag measurements, comma-separated")
	fs.DurationVar(&o.Duration, "duration", 20*time.Second, "length of each lag measurement")
	fs.IntVar(&o.Size, "size", 1024, "bytes per written value")
	fs.IntVar(&o.Backlog, "backlog", 50000, "writes of the catch-up backlog")
	fs.IntVar(&o.BacklogKeys, "backlog-keys", 0, "distinct keys the backlog writes (0: one per write)")
	fs.DurationVar(&o.ThroughputFor, "throughput-duration", 10*time.Second, "length of each write throughput measurement")
	fs.IntVar(&o.Clients, "clients", 16, "writers of the throughput measurements")
	fs.IntVar(&o.Repeat, "repeat", 1, "rounds of the throughput measurements, each replication off then on; the rows give the median round and every round's ratio")
	fs.IntVar(&o.CPURate, "cpu-rate", 2000, "write rate (writes/s, open loop) at which the primary's CPU per write is also measured, replication off and on, each for -throughput-duration (0: not measured)")
	fs.IntVar(&o.Forwarded, "forwarded", 1000, "sequential writes of the forwarded against direct measurement")
	only := fs.String("only", strings.Join(bench.Parts, ","), "measurements to run: "+strings.Join(bench.Parts, ", "))
	fs.BoolVar(&o.CompareNATS, "compare-nats", false, "measure the same load on a NATS KV bucket mirrored over a leafnode, in this run, beside every figure")
	logPath := fs.String("log", "", "file for the servers' output (default: discarded)")
	fs.BoolVar(&o.Pin, "pin", false, "run the primary on CPU 0, this process and the other servers on CPU 1 (taskset; for a 2-core machine)")
	fs.StringVar(&o.ProfileDir, "profile", "", "directory for a CPU profile (pprof) of every server, written as the sets stop, and its heap profile at its largest live heap")
	primary := fs.String("primary", "", "measure running clusters: the primary's API address (http://host:8200); writes go under <mount>/coffer-bench/")
	secondaries := fs.String("secondaries", "", "with -primary: the secondaries' API addresses, comma-separated")
	token := fs.String("token", os.Getenv("VAULT_TOKEN"), "with -primary: a token of the primary (default VAULT_TOKEN)")
	secToken := fs.String("secondary-token", "", "with -secondaries: a token of the secondaries (tokens are local to a cluster)")
	mount := fs.String("mount", "secret", "with -primary: the KV v2 mount to write under")
	fs.Usage = func() {
		fmt.Fprintln(c.stderr, "Usage: coffer bench [flags]\n\nStarts a replication set on loopback (a primary and two performance secondaries,\n"+
			"each a `coffer server` process) and measures replication lag at given write rates,\ncatch-up from a backlog, "+
			"write throughput with and without replication (and the primary's\nCPU time per 1,000 writes), and forwarded "+
			"against direct write latency. With -primary\n(and -secondaries) it measures running clusters instead: throughput, lag, forwarded.\ndocs/performance.md.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitLocal
	}
	var err error
	if o.Storages, o.Rates, o.Only, err = parseBenchLists(*storages, *rates, *only); err != nil {
		return c.local("%v", err)
	}
	for _, w := range strings.Split(*natsWhere, ",") {
		if w = strings.TrimSpace(w); w != "embedded" && w != "apart" {
			return c.local("-nats %q: use embedded, apart or both (embedded,apart)", w)
		}
		o.NATS = append(o.NATS, strings.TrimSpace(w))
	}
	if *primary != "" {
		o.External = &bench.External{Primary: *primary, Token: *token, SecondaryToken: *secToken, Mount: *mount}
		for _, a := range strings.Split(*secondaries, ",") {
			if a = strings.TrimSpace(a); a != "" {
				o.External.Secondaries = append(o.External.Secondaries, a)
			}
		}
	} else if *secondaries != "" {
		return c.local("-secondaries needs -primary: give the running primary's API address too")
	}
	if o.Bin, err = os.Executable(); err != nil {
		return c.local("coffer bench: %v", err)
	}
	if *logPath != "" {
		f, err := os.Create(*logPath)
		if err != nil {
			return c.local("coffer bench: %v", err)
		}
		defer f.Close()
		o.Log = f
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench.Run(ctx, c.stdout, o); err != nil {
		return c.remote("coffer bench: %v", err)
	}
	return exitOK
}

func parseBenchLists(storages, rates, only string) ([]string, []int, map[string]bool, error) {
	var ss []string
	for _, s := range strings.Split(storages, ",") {
		if s = strings.TrimSpace(s); s != "inmem" && s != "bolt" {
			return nil, nil, nil, fmt.Errorf("-storage %q: use inmem, bolt or both (inmem,bolt)", s)
		}
		ss = append(ss, strings.TrimSpace(s))
	}
	var rs []int
	for _, r := range strings.Split(rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 {
			return nil, nil, nil, fmt.Errorf("-rates %q: give positive writes/s, comma-separated", rates)
		}
		rs = append(rs, n)
	}
	parts := map[string]bool{}
	for _, p := range strings.Split(only, ",") {
		p = strings.TrimSpace(p)
		ok := false
		for _, k := range bench.Parts {
			ok = ok || k == p
		}
		if !ok {
			return nil, nil, nil, fmt.Errorf("-only %q: use %s", p, strings.Join(bench.Parts, ", "))
		}
		parts[p] = true
	}
	return ss, rs, parts, nil
}
