package replmode

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/merkle"
)

// reindexState is sys/replication/reindex's background job and what the
// last one left. Its own lock: status reads it without waiting for a
// transition, and the job never takes m.mu.
type reindexState struct {
	mu  sync.Mutex
	job *reindexJob
	// stopped is set by Stop (seal, shutdown) and cleared by Start: no job
	// starts in between, so none outlives the index it rebuilds.
	stopped bool
	// last is the outcome of the last job of this process (nil: none yet).
	last *reindexOutcome
}

// reindexJob is one running reindex: the goroutine that runs it is stopped
// by cancel and has ended when done is closed.
type reindexJob struct {
	cancel   context.CancelFunc
	done     chan struct{}
	progress *merkle.Progress
	opts     merkle.RebuildOptions
	started  time.Time
}

// reindexOutcome is what a finished job reports in status (last_reindex).
type reindexOutcome struct {
	res      *merkle.RebuildResult // nil when it failed
	err      string
	finished time.Time
}

// reindexEndpoint serves sys/replication/reindex and its performance/ and
// dr/ variants (one index serves both kinds): Vault's diff, force and
// skip_flush. It starts the rebuild in the background and answers at once
// with a warning saying where to watch it.
func (m *Manager) reindexEndpoint(_ context.Context, d map[string]any) (*logical.Response, error) {
	var opts merkle.RebuildOptions
	var force bool
	for _, f := range []struct {
		name string
		dst  *bool
	}{{"diff", &opts.Diff}, {"force", &force}, {"skip_flush", &opts.SkipFlush}} {
		v, _, err := logical.FieldBool(d, f.name)
		if err != nil {
			return nil, err
		}
		*f.dst = v
	}
	if m.host.Merkle() == nil {
		return nil, logical.Errorf(http.StatusServiceUnavailable, "the merkle index is not running (the cluster is sealed or being activated): unseal it, then retry")
	}
	forced := false
	r := &m.reindex
	for {
		r.mu.Lock()
		if r.stopped {
			r.mu.Unlock()
			return nil, logical.Errorf(http.StatusServiceUnavailable, "replication is stopping (seal or shutdown): retry once the cluster is unsealed")
		}
		running := r.job
		if running == nil {
			m.startReindexLocked(opts)
			r.mu.Unlock()
			break
		}
		r.mu.Unlock()
		if !force {
			stage, done, total := running.progress.Snapshot()
			return nil, logical.InvalidRequest("a reindex is already running (started %s, stage %q, %d of %d keys): watch reindex_in_progress in sys/replication/status, or pass force=true to restart it",
				fmtTime(running.started), stage, done, total)
		}
		m.stopReindex() // force: the new one starts over
		forced = true
	}
	warn := "reindex started in the background: sys/replication/status shows reindex_in_progress, reindex_stage and reindex_building_progress of reindex_building_total, then last_reindex_epoch and last_reindex when it completes"
	if forced {
		warn = "force: the running reindex was stopped; " + warn
	}
	return &logical.Response{Warnings: []string{warn}}, nil
}

// startReindexLocked runs a rebuild with opts in a goroutine stopReindex
// stops. Caller holds m.reindex.mu.
func (m *Manager) startReindexLocked(opts merkle.RebuildOptions) {
	ctx, cancel := context.WithCancel(context.Background())
	job := &reindexJob{cancel: cancel, done: make(chan struct{}), progress: &merkle.Progress{}, opts: opts, started: time.Now()}
	opts.Progress = job.progress
	r := &m.reindex
	r.job = job
	go func() {
		defer close(job.done)
		res, err := m.host.RebuildMerkle(ctx, opts)
		out := &reindexOutcome{res: res, finished: time.Now().UTC()}
		switch {
		case err != nil && ctx.Err() != nil:
			out.err = "stopped before it completed (the cluster was sealed or shut down, or force restarted it): run it again"
		case err != nil:
			out.err = err.Error()
			m.log.Error().Err(err).Msg("sys/replication/reindex failed; the index in service is unchanged: retry it")
		case res.Diff != nil && res.Diff.Total() > 0:
			m.log.Warn().Int("missing", res.Diff.Missing).Int("changed", res.Diff.Changed).Int("stale", res.Diff.Stale).
				Strs("keys", res.Diff.Keys).Msg("reindex diff: the replaced merkle index disagreed with the data; the rebuilt one is in service (secondaries resync what differed)")
		}
		r.mu.Lock()
		if r.job == job {
			r.job = nil
		}
		r.last = out
		r.mu.Unlock()
	}()
}

// stopReindex stops a running reindex and waits for it (on seal and
// shutdown: Manager.Stop, and before a forced restart). With final (Stop,
// a wipe), no reindex starts again until allowReindex.
func (m *Manager) stopReindex(final ...bool) {
	r := &m.reindex
	r.mu.Lock()
	if len(final) > 0 && final[0] {
		r.stopped = true
	}
	job := r.job
	r.mu.Unlock()
	if job == nil {
		return
	}
	job.cancel()
	<-job.done
}

// allowReindex lets reindexes start again (Start, after an unseal).
func (m *Manager) allowReindex() {
	m.reindex.mu.Lock()
	m.reindex.stopped = false
	m.reindex.mu.Unlock()
}

// reindexStatus adds the reindex fields to a status: Vault's
// reindex_in_progress, and while one runs reindex_stage,
// reindex_building_progress and reindex_building_total; last_reindex_epoch
// (unix seconds, "0" when none is recorded); and Coffer's last_reindex, what
// the last one of this process did.
func (m *Manager) reindexStatus(st map[string]any) {
	r := &m.reindex
	r.mu.Lock()
	job, last := r.job, r.last
	r.mu.Unlock()
	st["reindex_in_progress"] = job != nil
	if job != nil {
		stage, done, total := job.progress.Snapshot()
		st["reindex_stage"] = stage
		st["reindex_building_progress"] = done
		st["reindex_building_total"] = total
	}
	st["last_reindex_epoch"] = m.lastReindexEpoch()
	if last == nil {
		return
	}
	lr := map[string]any{"finished": fmtTime(last.finished)}
	if last.err != "" {
		lr["error"] = last.err
	}
	if res := last.res; res != nil {
		lr["merkle_root"], lr["keys"], lr["pages"], lr["took_ms"] = res.Root, res.Keys, res.Pages, res.Took.Milliseconds()
		if res.Diff != nil {
			// Counts only: the status is served without a token; the keys
			// are in the server's log (above).
			lr["diff"] = map[string]any{"missing": res.Diff.Missing, "changed": res.Diff.Changed, "stale": res.Diff.Stale}
		}
	}
	st["last_reindex"] = lr
}

// lastReindexEpoch is Vault's last_reindex_epoch: when a reindex last
// completed, unix seconds as a string, "0" when none is recorded.
func (m *Manager) lastReindexEpoch() string {
	t := m.host.LastMerkleReindex(context.Background())
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.Unix(), 10)
}
