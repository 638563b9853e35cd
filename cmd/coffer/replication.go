package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// replicationCommands are `coffer replication ...`.
var replicationCommands = map[string]command{
	"status": {"Print performance (or, with -dr, DR) replication status: the generation, who holds the set, each secondary's lag", (*cli).replicationStatus},
}

// replicationStatus prints sys/replication/performance/status: the cluster's
// role and position, then one row per secondary (on a primary) with how far
// it is behind, or the primary it follows (on a secondary). With -watch it
// redraws in place every interval, as watch(1) does, until interrupted.
func (c *cli) replicationStatus(args []string) int {
	f := c.newFlags("replication status", "replication status [-dr] [-watch=2s] [-address=ADDR] [-format=table|json]")
	dr := f.Bool("dr", false, "show DR replication instead of performance replication")
	watch := f.Duration("watch", 0, "redraw the status in place every interval (e.g. 2s) until interrupted")
	client, code := f.open(args, 0, 0)
	if client == nil {
		return code
	}
	if *watch < 0 || (*watch > 0 && *watch < 100*time.Millisecond) {
		return c.local("-watch %s: give an interval of at least 100ms", *watch)
	}
	path := "sys/replication/performance/status"
	if *dr {
		path = "sys/replication/dr/status"
	}
	read := func() (map[string]any, int) {
		s, err := client.Logical().Read(path)
		if err != nil {
			return nil, c.remote("Error reading replication status: %s", apiError(err))
		}
		if s == nil || s.Data == nil {
			return nil, c.remote("Error reading replication status: empty response")
		}
		return s.Data, exitOK
	}
	if *watch == 0 {
		d, code := read()
		if d == nil {
			return code
		}
		if f.format == "json" {
			return f.outputJSON(d)
		}
		fmt.Fprint(c.stdout, renderReplicationStatus(d))
		return exitOK
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t := time.NewTicker(*watch)
	defer t.Stop()
	for {
		d, code := read()
		// Home the cursor and clear the screen, then draw the frame.
		fmt.Fprint(c.stdout, "\x1b[H\x1b[2J")
		fmt.Fprintf(c.stdout, "Every %s: coffer replication status (%s)   %s\n\n", *watch, client.Address(), time.Now().Format(time.TimeOnly))
		if d != nil {
			fmt.Fprint(c.stdout, renderReplicationStatus(d))
		} else if code != exitOK {
			fmt.Fprintln(c.stdout, "(the status could not be read; retrying)")
		}
		select {
		case <-ctx.Done():
			return exitOK
		case <-t.C:
		}
	}
}

// renderReplicationStatus is the status as tables.
func renderReplicationStatus(d map[string]any) string {
	var b strings.Builder
	rows := [][]string{
		{"Mode", str(d["mode"])},
		{"Cluster ID", str(d["cluster_id"])},
		{"State", str(d["state"])},
		{"Last WAL", str(d["last_wal"])},
		{"Merkle Root", str(d["merkle_root"])},
		{"Generation", str(d["generation"])},
	}
	for _, k := range [][2]string{{"set_holder", "Set Held By"}, {"set_holder_api_addr", "Holder API Address"}, {"fenced_reason", "Fenced Because"}, {"claim_reason", "Claim Waits Because"}, {"last_error", "Last Error"}} {
		if v := str(d[k[0]]); v != "" && v != "<nil>" {
			rows = append(rows, []string{k[1], v})
		}
	}
	if d["mode"] == "secondary" {
		rows = append(rows, []string{"Secondary ID", str(d["secondary_id"])}, []string{"Last Remote WAL", str(d["last_remote_wal"])},
			[]string{"Lag", fmt.Sprintf("%s entries, %s", str(d["lag_entries"]), seconds(d["lag_seconds"]))},
			[]string{"Primary Cluster Address", str(d["primary_cluster_addr"])}, []string{"Connection State", str(d["connection_state"])})
	}
	if d["mode"] == "primary" {
		rows = append(rows, []string{"Primary Cluster Address", str(d["primary_cluster_addr"])}, []string{"Last Shipped WAL", str(d["last_shipped_wal"])})
	}
	b.WriteString(table([]string{"Key", "Value"}, rows))
	if p, ok := d["merkle_sync_progress"].(map[string]any); ok {
		fmt.Fprintf(&b, "\n%s\n", progressBar(num(p["sync_progress"]), num(p["sync_total_keys"]), 40))
	}
	if secs, ok := d["secondaries"].([]any); ok && len(secs) > 0 {
		last := num(d["last_wal"])
		var srows [][]string
		for _, x := range secs {
			m, _ := x.(map[string]any)
			lag := "n/a"
			if r := num(m["last_remote_wal"]); last >= r {
				lag = fmt.Sprint(last - r)
			}
			srows = append(srows, []string{str(m["node_id"]), str(m["api_address"]), str(m["connection_status"]),
				str(m["last_heartbeat"]), str(m["last_remote_wal"]), lag, seconds(m["lag_seconds"])})
		}
		b.WriteString("\n")
		b.WriteString(table([]string{"Secondary", "API Address", "Connection", "Last Heartbeat", "Last Remote WAL", "Lag (WAL entries)", "Lag (time)"}, srows))
	}
	if prims, ok := d["primaries"].([]any); ok && len(prims) > 0 {
		var prows [][]string
		for _, x := range prims {
			m, _ := x.(map[string]any)
			prows = append(prows, []string{str(m["api_address"]), str(m["cluster_address"]), str(m["connection_status"]), str(m["last_heartbeat"])})
		}
		b.WriteString("\n")
		b.WriteString(table([]string{"Primary API Address", "Cluster Address", "Connection", "Last Heartbeat"}, prows))
	}
	return b.String()
}

// seconds renders a lag_seconds value ("n/a" when absent).
func seconds(v any) string {
	var f float64
	switch n := v.(type) {
	case json.Number:
		f, _ = n.Float64()
	case float64:
		f = n
	default:
		return "n/a"
	}
	return (time.Duration(f * float64(time.Second))).Round(time.Millisecond).String()
}

// progressBar draws done/total as [#####.....] 42% (420/1000 keys).
func progressBar(done, total uint64, width int) string {
	if total == 0 {
		return "sync: waiting for the key count"
	}
	done = min(done, total)
	filled := int(done * uint64(width) / total)
	return fmt.Sprintf("sync [%s%s] %d%% (%d/%d keys)", strings.Repeat("#", filled), strings.Repeat(".", width-filled),
		done*100/total, done, total)
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func num(v any) uint64 {
	switch n := v.(type) {
	case json.Number:
		u, _ := n.Int64()
		return uint64(max(u, 0))
	case float64:
		return uint64(max(n, 0))
	}
	return 0
}
