package bench

import (
	"context"
	"fmt"
	"io"
)

// External names running clusters to measure instead of a set Run starts:
// a primary and its performance secondaries, by API address, with a token
// for each side (tokens are local to a cluster). Writes go under
// "<Mount>/coffer-bench/" on a KV v2 mount.
type External struct {
	Primary        string
	Secondaries    []string
	Token          string
	SecondaryToken string
	Mount          string
}

// measureExternal runs what can be measured on running clusters: write
// throughput (replication as it is), lag and forwarded against direct. The
// comparison with replication off, the CPU times and catch-up need a set
// coffer bench starts itself (it starts a primary alone, reads the
// processes' CPU and freezes a secondary).
func measureExternal(ctx context.Context, w io.Writer, o Options, an *anchor) error {
	e := o.External
	p, err := newClient(e.Primary, e.Token)
	if err != nil {
		return err
	}
	t := &CofferTarget{Primary: p, Mount: e.Mount, Prefix: "coffer-bench/"}
	for _, a := range e.Secondaries {
		c, err := newClient(a, e.SecondaryToken)
		if err != nil {
			return err
		}
		t.Secondaries = append(t.Secondaries, c)
	}
	if err := t.Put(ctx, "check", []byte("x")); err != nil {
		return fmt.Errorf("write on the primary %s: %w (the token needs create/update/read on %s/coffer-bench/*, a KV v2 mount)", e.Primary, err, t.mount())
	}
	const st = "running"
	if o.Only["throughput"] {
		rate, errs := Throughput(ctx, t.Put, o.Clients, o.ThroughputFor, o.Size)
		fmt.Fprintf(w, "write throughput, %d clients\t%s\t%.0f writes/s (%d failed)\t\n", o.Clients, st, rate, errs)
	}
	if len(t.Secondaries) == 0 {
		return nil
	}
	return measureTarget(ctx, w, o, st, t, nil, an)
}
