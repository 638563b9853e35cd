package replmode

import (
	"strconv"
	"sync"
	"time"

	"github.com/cofferhq/coffer/merkle"
	"github.com/cofferhq/coffer/primary"
	"github.com/cofferhq/coffer/secondary"
)

// The fields of Vault's replication status that Coffer fills from what it
// measures (docs/replication.md, "Status"):
//
//   - cluster_id is the replication set's id, the same on every cluster of
//     the set: the primary's cluster id (a secondary's own id is
//     local_cluster_id).
//   - last_performance_wal is last_wal (Coffer's WAL is one log).
//   - corrupted_merkle_tree and last_corruption_check_epoch come from the
//     last sys/replication/merkle-check of this process ("-62135596800",
//     Vault's value, before the first).
//   - ssct_generation_counter is 0: Coffer issues no server-side consistent
//     tokens.
//   - Per secondary (on a primary) and per primary (on a secondary):
//     clock_skew_ms, last_heartbeat_duration_ms and
//     replication_primary_canary_age_ms as strings, as Vault prints them; the
//     canary age is the lag in time (replication.LagOf), also given as
//     lag_seconds beside the lag in entries (lag_entries).

// neverChecked is Vault's last_corruption_check_epoch before any check: the
// zero time's Unix seconds.
const neverChecked = "-62135596800"

// checkRecord is the outcome of the last merkle-check.
type checkRecord struct {
	mu        sync.Mutex
	at        time.Time
	corrupted bool
}

func (r *checkRecord) note(rep *merkle.CheckReport, now time.Time) {
	if rep == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.at, r.corrupted = now, rep.CorruptedRoot
}

func (r *checkRecord) fields(st map[string]any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st["corrupted_merkle_tree"] = r.corrupted
	st["last_corruption_check_epoch"] = neverChecked
	if !r.at.IsZero() {
		st["last_corruption_check_epoch"] = strconv.FormatInt(r.at.Unix(), 10)
	}
}

// commonFields adds the fields every role's status has.
func (m *Manager) commonFields(st map[string]any) {
	if w, ok := st["last_wal"]; ok {
		st["last_performance_wal"] = w
	}
	st["ssct_generation_counter"] = 0
	m.check.fields(st)
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// secondaryFields are a primary's per-secondary measures.
func secondaryFields(e map[string]any, s primary.SecondaryStatus, lastWAL uint64) {
	e["clock_skew_ms"] = ms(s.ClockSkew)
	e["last_heartbeat_duration_ms"] = ms(s.HeartbeatRTT)
	e["replication_primary_canary_age_ms"] = ms(s.Lag)
	e["lag_seconds"] = s.Lag.Seconds()
	e["lag_entries"] = lastWAL - min(s.LastRemoteWAL, lastWAL)
	if f := s.Filter; f != nil {
		e["paths_filter"] = map[string]any{"mode": f.Mode, "paths": f.Paths, "id": f.ID(), "merkle_root": s.FilterRoot}
	}
}

// followerFields are a secondary's measures of its primary.
func followerFields(st, prim map[string]any, ss secondary.Status) {
	st["cluster_id"], st["local_cluster_id"] = ss.PrimaryClusterID, st["cluster_id"]
	prim["clock_skew_ms"] = "0" // the primary measures the skew; a secondary sees only its answers
	prim["last_heartbeat_duration_ms"] = ms(ss.HeartbeatRTT)
	prim["replication_primary_canary_age_ms"] = ms(ss.Lag)
	st["lag_seconds"] = ss.Lag.Seconds()
	st["lag_entries"] = ss.PrimaryLastWAL - min(ss.LastRemoteWAL, ss.PrimaryLastWAL)
	st["primary_last_wal"] = ss.PrimaryLastWAL
	if !ss.LastRemoteCommit.IsZero() {
		st["last_remote_commit_time"] = fmtTime(ss.LastRemoteCommit)
	}
}
