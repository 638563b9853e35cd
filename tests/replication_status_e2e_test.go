package tests

import (
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
)

// Vault's status and health fields on each role: cluster_id shared by the
// set, the replication modes of sys/health, the merkle and WAL fields, the
// per-secondary and per-primary measures, lag in seconds and in entries.
// Then a frozen primary turns the secondary's connection state, and a
// thawed one turns it back.
func TestReplicationStatusFields(t *testing.T) {
	t.Parallel()
	rp := fwdPairT(t)
	for i := range 5 {
		if _, err := kvWrite(rp.p.root, fmt.Sprintf("status/%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	var ps, ss map[string]any
	testutil.Eventually(t, waitTimeout, "the secondary caught up and heartbeating", func() error {
		ps, ss = perfStatus(t, rp.p.addr), perfStatus(t, rp.s.addr)
		if ss["last_remote_wal"] != ps["last_wal"] || ss["connection_state"] != "ready" {
			return fmt.Errorf("secondary at %v (%v), primary at %v", ss["last_remote_wal"], ss["connection_state"], ps["last_wal"])
		}
		secs := entries(ps["secondaries"])
		if len(secs) != 1 || secs[0]["last_remote_wal"] != ps["last_wal"] {
			return fmt.Errorf("the primary sees %v", secs)
		}
		return nil
	})
	if ps["cluster_id"] == "" || ss["cluster_id"] != ps["cluster_id"] || ss["local_cluster_id"] == ps["cluster_id"] {
		t.Fatalf("cluster_id: primary %v, secondary %v (local %v): want the set's on both", ps["cluster_id"], ss["cluster_id"], ss["local_cluster_id"])
	}
	for _, st := range []map[string]any{ps, ss} {
		for _, f := range []string{"merkle_root", "corrupted_merkle_tree", "last_corruption_check_epoch", "ssct_generation_counter", "last_performance_wal"} {
			if _, ok := st[f]; !ok {
				t.Fatalf("%s status has no %s: %v", st["mode"], f, st)
			}
		}
		if st["corrupted_merkle_tree"] != false || st["last_corruption_check_epoch"] != "-62135596800" {
			t.Fatalf("%s: corruption fields before any check: %v %v", st["mode"], st["corrupted_merkle_tree"], st["last_corruption_check_epoch"])
		}
	}
	sec := entries(ps["secondaries"])[0]
	prim := entries(ss["primaries"])[0]
	for _, e := range []map[string]any{sec, prim} {
		for _, f := range []string{"clock_skew_ms", "last_heartbeat_duration_ms", "replication_primary_canary_age_ms"} {
			if _, err := strconv.ParseInt(str(e[f]), 10, 64); err != nil {
				t.Fatalf("%s = %v: want milliseconds as a string, as Vault prints them (%v)", f, e[f], e)
			}
		}
	}
	if num(t, "lag_entries", ss["lag_entries"]) != 0 || ss["lag_seconds"] == nil || ss["last_remote_commit_time"] == "" {
		t.Fatalf("lag on a caught-up secondary: entries %v, seconds %v, last commit %v", ss["lag_entries"], ss["lag_seconds"], ss["last_remote_commit_time"])
	}
	for addr, mode := range map[string]string{rp.p.addr: "primary", rp.s.addr: "secondary"} {
		h, err := client(t, addr, "").Sys().Health()
		if err != nil || h.ReplicationPerformanceMode != mode || h.ReplicationDRMode != "disabled" {
			t.Fatalf("sys/health on the %s: %+v %v", mode, h, err)
		}
	}
	if _, err := rp.p.root.Logical().Write("sys/replication/merkle-check", nil); err != nil {
		t.Fatal(err)
	}
	if st := perfStatus(t, rp.p.addr); st["last_corruption_check_epoch"] == "-62135596800" || st["corrupted_merkle_tree"] != false {
		t.Fatalf("after a merkle-check: %v %v", st["last_corruption_check_epoch"], st["corrupted_merkle_tree"])
	}

	// Frozen: the secondary's view turns once two heartbeat intervals (2 s
	// each) pass without an answer, not when an RPC times out (10 s).
	signal(t, rp.p.p, syscall.SIGSTOP)
	frozen := time.Now()
	testutil.Eventually(t, waitTimeout, "the secondary sees the primary gone", func() error {
		st := perfStatus(t, rp.s.addr)
		if st["connection_state"] != "transient_failure" || entries(st["primaries"])[0]["connection_status"] != "disconnected" {
			return fmt.Errorf("connection_state %v", st["connection_state"])
		}
		return nil
	})
	t.Logf("connection_state turned %s after the primary froze", time.Since(frozen).Round(100*time.Millisecond))
	signal(t, rp.p.p, syscall.SIGCONT)
	testutil.Eventually(t, waitTimeout, "the secondary sees the primary back", func() error {
		if st := perfStatus(t, rp.s.addr); st["connection_state"] != "ready" {
			return fmt.Errorf("connection_state %v", st["connection_state"])
		}
		return nil
	})
}
