package bench

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// CofferTarget writes KV v2 on a primary and reads on its secondaries,
// through vault/api.
type CofferTarget struct {
	Primary     *api.Client
	Secondaries []*api.Client
	// Mount is the KV v2 mount ("secret" when empty); Prefix is put before
	// every key (running clusters: "coffer-bench/").
	Mount, Prefix string
}

func (c *CofferTarget) mount() string {
	if c.Mount == "" {
		return "secret"
	}
	return c.Mount
}

// Put writes {"v": base64(value)} at <mount>/<prefix><key> on the primary.
func (c *CofferTarget) Put(ctx context.Context, key string, v []byte) error {
	return c.PutVia(c.Primary)(ctx, key, v)
}

// PutVia is Put through another cluster (a secondary forwards it).
func (c *CofferTarget) PutVia(cl *api.Client) func(ctx context.Context, key string, v []byte) error {
	return func(ctx context.Context, key string, v []byte) error {
		_, err := cl.KVv2(c.mount()).Put(ctx, c.Prefix+key, map[string]any{"v": base64.StdEncoding.EncodeToString(v)})
		return err
	}
}

// Readers is the number of secondaries.
func (c *CofferTarget) Readers() int { return len(c.Secondaries) }

// Has reads secret/<key> on secondary i.
func (c *CofferTarget) Has(ctx context.Context, i int, key string) (bool, error) {
	s, err := c.Secondaries[i].Logical().ReadWithContext(ctx, c.mount()+"/data/"+c.Prefix+key)
	if err != nil {
		return false, err
	}
	return s != nil && s.Data["data"] != nil, nil
}

// statusWAL reads a WAL index field of sys/replication/performance/status.
func statusWAL(ctx context.Context, c *api.Client, field string) (uint64, error) {
	s, err := c.Logical().ReadWithContext(ctx, "sys/replication/performance/status")
	if err != nil {
		return 0, err
	}
	if s == nil {
		return 0, fmt.Errorf("no replication status")
	}
	n, ok := s.Data[field].(json.Number)
	if !ok {
		return 0, fmt.Errorf("replication status has no %s: %v", field, s.Data)
	}
	v, err := n.Int64()
	return uint64(v), err
}

// batchesShipped is the primary's count of batches shipped, from its
// metrics (coffer.replication.batches_shipped; 0 before the first).
func batchesShipped(ctx context.Context, c *api.Client) (uint64, error) {
	resp, err := c.Logical().ReadRawWithDataWithContext(ctx, "sys/metrics", map[string][]string{"format": {"prometheus"}})
	if err != nil {
		return 0, fmt.Errorf("read the primary's metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("read the primary's metrics: %w", err)
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, "coffer_replication_batches_shipped "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return uint64(f), err
		}
	}
	return 0, nil
}

// CatchUpResult is one catch-up from a backlog.
type CatchUpResult struct {
	Entries uint64        // WAL entries the secondary applied to catch up
	Took    time.Duration // from its resume to its last_remote_wal reaching the primary's last_wal
	// PeakAnon is the most anonymous memory (heap, stacks: RssAnon, not
	// the storage's file pages) the secondary held while catching up,
	// sampled every 20 ms; 0 where /proc does not tell.
	PeakAnon int64
	// CPU is the user and system time the secondary used meanwhile (0
	// where /proc does not tell): Took much longer than CPU means it waited.
	CPU time.Duration
}

// Rate is WAL entries per second.
func (c CatchUpResult) Rate() float64 { return float64(c.Entries) / c.Took.Seconds() }

// CatchUp freezes secondary sec of s, writes backlog writes of size bytes
// to keys distinct keys (0: one each) on the primary (16 clients), resumes the secondary and times how long it
// takes to apply the whole backlog.
func CatchUp(ctx context.Context, s *Set, sec, backlog, keys, size int) (CatchUpResult, error) {
	n := s.Secondaries[sec]
	t := &CofferTarget{Primary: s.Primary.Client}
	from, err := statusWAL(ctx, n.Client, "last_remote_wal")
	if err != nil {
		return CatchUpResult{}, err
	}
	if err := n.Pause(); err != nil {
		return CatchUpResult{}, err
	}
	// A catch-up figure must not pass on a freeze that never took, or that
	// something undid while the backlog was written.
	frozen := func(when string) error {
		return poll(ctx, 5*time.Second, func() error {
			if stopped, err := ProcessStopped(n.PID()); err != nil || !stopped {
				return errors.Join(fmt.Errorf("%s is not frozen %s: the catch-up would measure nothing", n.Name, when), err)
			}
			return nil
		})
	}
	if err := frozen("before the backlog"); err != nil {
		_ = n.Resume()
		return CatchUpResult{}, err
	}
	if err := writeN(ctx, t.Put, backlog, keys, size); err != nil {
		_ = n.Resume()
		return CatchUpResult{}, err
	}
	if err := frozen("after the backlog"); err != nil {
		_ = n.Resume()
		return CatchUpResult{}, err
	}
	last, err := statusWAL(ctx, s.Primary.Client, "last_wal")
	if err != nil {
		_ = n.Resume()
		return CatchUpResult{}, err
	}
	// The backlog is all in the stream once another secondary has it: the
	// figure is then the frozen secondary's alone, not the shipper's.
	for i, o := range s.Secondaries {
		if i == sec {
			continue
		}
		if err := poll(ctx, 10*time.Minute, func() error { return reached(ctx, o.Client, last) }); err != nil {
			_ = n.Resume()
			return CatchUpResult{}, fmt.Errorf("the backlog did not reach %s: %w", o.Name, err)
		}
		break
	}
	cpu0, cpuErr := ProcessCPU(n.PID()) // frozen: it does not change before the resume
	start := time.Now()
	if err := n.Resume(); err != nil {
		return CatchUpResult{}, err
	}
	peak, stop := samplePeak(n.PID())
	err = poll(ctx, 10*time.Minute, func() error { return reached(ctx, n.Client, last) })
	took := time.Since(start)
	stop()
	res := CatchUpResult{Entries: last - from, Took: took, PeakAnon: *peak}
	if cpu1, err1 := ProcessCPU(n.PID()); cpuErr == nil && err1 == nil {
		res.CPU = cpu1 - cpu0
	}
	return res, err
}

// reached reports nil once the secondary behind c has applied the primary's
// WAL up to last.
func reached(ctx context.Context, c *api.Client, last uint64) error {
	at, err := statusWAL(ctx, c, "last_remote_wal")
	if err == nil && at < last {
		err = fmt.Errorf("at %d of %d", at, last)
	}
	return err
}

// writeN writes n values with 16 clients, to keys distinct keys (0: n).
func writeN(ctx context.Context, put func(context.Context, string, []byte) error, n, keys, size int) error {
	if keys <= 0 {
		keys = n
	}
	jobs := make(chan int)
	errc := make(chan error, 16)
	val := value(size)
	for range 16 {
		go func() {
			var first error
			for i := range jobs {
				if err := put(ctx, fmt.Sprintf("backlog/%d", i%keys), val); err != nil && first == nil {
					first = err
				}
			}
			errc <- first
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	var first error
	for range 16 {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}
