package chaos

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// convergeBound is how long the set may take to converge after a fault is
// healed (with the load paused): a secondary cut past the stream's
// retention resyncs by merkle diff or full listing within it.
const convergeBound = 90 * time.Second

// TestChaos runs a campaign: COFFER_CHAOS_ROUNDS rounds (default 14: every
// kind of fault twice, the short campaign of make test) from
// COFFER_CHAOS_SEED (default: the time). Each round applies one fault while
// the workers write, heals it, pauses the load and waits until every
// secondary converged; then the checker holds the history against dc1.
func TestChaos(t *testing.T) {
	rounds, seed := 14, uint64(time.Now().UnixNano())
	if v := os.Getenv("COFFER_CHAOS_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("COFFER_CHAOS_ROUNDS=%q: want a positive number", v)
		}
		rounds = n
	}
	if v := os.Getenv("COFFER_CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("COFFER_CHAOS_SEED=%q: want a number", v)
		}
		seed = n
	}
	s := newSet(t)
	diskFull := s.nodes["dc2"].tmpfs && s.nodes["dr1"].tmpfs
	plan := schedule(seed, rounds, diskFull)
	var sched strings.Builder
	for i, f := range plan {
		fmt.Fprintf(&sched, "  round %d: %s\n", i+1, f)
	}
	t.Logf("chaos seed %d (COFFER_CHAOS_SEED=%d COFFER_CHAOS_ROUNDS=%d repeats it), schedule:\n%s", seed, seed, rounds, sched.String())
	report := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("chaos seed %d: %s\nschedule:\n%s\nthe processes' output: %s", seed, fmt.Sprintf(format, args...), sched.String(), s.keepLogs(seed))
	}

	l := startLoad(t, s, seed)
	counts := map[string]int{}
	var times []time.Duration
	for i, f := range plan {
		heal, err := s.apply(f)
		if err != nil {
			l.end()
			report("round %d (%s): %v", i+1, f, err)
		}
		time.Sleep(f.hold) // the fault's length, not a synchronisation
		heal()
		healed := time.Now()
		l.pause() // waits for the ops in flight (a client gives up after 5 s)
		_, err = s.waitConverged(convergeBound)
		took := time.Since(healed)
		if err != nil {
			l.resume()
			l.end()
			report("round %d (%s): %v", i+1, f, err)
		}
		l.resume()
		counts[f.kind+" "+f.target]++
		counts[f.kind]++
		times = append(times, took)
		t.Logf("round %d: %s: converged %s after the heal", i+1, f, took.Round(time.Millisecond))
	}
	l.end()
	if _, err := s.waitConverged(convergeBound); err != nil {
		report("after the last round: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	vs, err := check(ctx, s.root, l.h)
	if err != nil {
		report("checker: %v", err)
	}
	acked, indet, refused := 0, 0, 0
	why := map[string]int{} // indeterminate ops by cluster and error
	for _, o := range l.h.ops {
		switch {
		case o.ack:
			acked++
		case o.refused:
			refused++
		default:
			indet++
			why[o.via+": "+errClass(o.err)]++
		}
	}
	t.Logf("indeterminate ops by cluster and error: %v", why)
	slices.Sort(times)
	t.Logf("chaos seed %d: %d rounds %v; %d ops acknowledged, %d indeterminate, %d refused (not sent), %d reads sampled on dc2; converged p50 %s, max %s; %d violations",
		seed, rounds, counts, acked, indet, refused, len(l.h.samples), times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond), len(vs))
	if len(vs) > 0 {
		kinds := map[string]int{}
		for _, v := range vs {
			kinds[strings.Join(strings.Fields(v.what)[:3], " ")]++
		}
		t.Logf("violations by kind: %v", kinds)
		var b strings.Builder
		for _, v := range vs[:min(len(vs), 10)] {
			fmt.Fprintf(&b, "%s: %s\n%s", v.key, v.what, around(l.h, v.key))
		}
		report("%d violations; the first:\n%s", len(vs), b.String())
	}
}

// errClass names an op's error for the summary: the HTTP status, or what
// the connection did.
func errClass(e string) string {
	for _, c := range []string{"connection refused", "connection reset", "deadline exceeded", "EOF"} {
		if strings.Contains(e, c) {
			return c
		}
	}
	if i := strings.Index(e, "Code: "); i >= 0 {
		return "HTTP " + strings.TrimSuffix(strings.Fields(e[i:])[1], ".")
	}
	return e[max(0, len(e)-60):]
}
