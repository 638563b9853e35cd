package tests

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/bolt"
	"github.com/hashicorp/vault/api"
)

// reindexAt starts a reindex at path (sys/replication/reindex or a
// performance/ or dr/ variant) with data, waits until status shows it
// completed (last_reindex.finished moved, reindex_in_progress false), and
// returns last_reindex. It fails the test on an error.
func reindexAt(t *testing.T, c *api.Client, path string, data map[string]any) map[string]any {
	t.Helper()
	addr := strings.TrimPrefix(c.Address(), "http://")
	before := str(lastReindex(t, addr)["finished"])
	s, err := c.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if s == nil || len(s.Warnings) == 0 {
		t.Fatalf("%s: no warning saying where to watch it: %+v", path, s)
	}
	var last map[string]any
	testutil.Eventually(t, replTimeout, path+" completes in the background", func() error {
		st := perfStatus(t, addr)
		last, _ = st["last_reindex"].(map[string]any)
		if st["reindex_in_progress"] != false || last == nil || str(last["finished"]) == before {
			return fmt.Errorf("reindex_in_progress %v, last_reindex %v", st["reindex_in_progress"], last)
		}
		return nil
	})
	if e := str(last["error"]); e != "" {
		t.Fatalf("%s failed: %s", path, e)
	}
	if len(str(last["merkle_root"])) != 64 {
		t.Fatalf("%s: last_reindex without a merkle_root: %v", path, last)
	}
	return last
}

func lastReindex(t *testing.T, addr string) map[string]any {
	m, _ := perfStatus(t, addr)["last_reindex"].(map[string]any)
	return m
}

// injectRaw writes n replicated keys straight into a stopped server's bolt
// file, below its WAL and merkle index.
func injectRaw(t *testing.T, dbPath string, n int) {
	t.Helper()
	b, err := bolt.Open(bolt.Options{Path: dbPath, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open %s: %v", dbPath, err)
	}
	defer b.Close()
	for c := 0; c < n; c += 10000 {
		var ops []*storage.TxnOp
		for i := c; i < min(c+10000, n); i++ {
			ops = append(ops, &storage.TxnOp{Operation: storage.PutOperation,
				Entry: &storage.Entry{Key: fmt.Sprintf("logical/00000000-bulk/k%07d", i), Value: []byte(fmt.Sprint("v", i))}})
		}
		if err := b.Transaction(context.Background(), ops); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestReindexInBackground: sys/replication/reindex returns at once and runs
// in the background; status shows its stage and building progress meanwhile,
// a second request without force is refused, and it ends with the root a full
// recomputation gives (merkle-check clean). Its performance/ and dr/ variants
// and skip_flush and diff do the same, with the same root, and find nothing
// to report.
func TestReindexInBackground(t *testing.T) {
	n, p, rootToken := staticServer(t)
	root := client(t, n.addr, rootToken)
	for i := range 50 {
		kvPut(t, root, "secret", fmt.Sprintf("k-%03d", i), map[string]any{"v": fmt.Sprint(i)})
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d on SIGTERM, want 0", code)
	}
	injectRaw(t, n.dbPath, 150000) // enough keys to watch a build
	p = n.start()
	waitHealthCode(t, n.addr, 200)
	if st := perfStatus(t, n.addr); st["last_reindex_epoch"] != "0" || st["reindex_in_progress"] != false {
		t.Fatalf("before any reindex: last_reindex_epoch %v, reindex_in_progress %v", st["last_reindex_epoch"], st["reindex_in_progress"])
	}
	before := time.Now().Unix()
	if _, err := root.Logical().Write("sys/replication/reindex", nil); err != nil {
		t.Fatal(err)
	}
	_, err := root.Logical().Write("sys/replication/reindex", nil)
	if statusOf(err) != 400 {
		t.Fatalf("a second reindex while one runs, without force: want 400, got %v", err)
	}
	var seen []string
	var built int64
	testutil.Eventually(t, 2*time.Minute, "the reindex completes", func() error {
		st := perfStatus(t, n.addr)
		if st["reindex_in_progress"] == true {
			if s := str(st["reindex_stage"]); !slices.Contains(seen, s) {
				seen = append(seen, s)
			}
			if str(st["reindex_stage"]) == "building" {
				built = max(built, numOr0(st["reindex_building_total"]))
			}
			return fmt.Errorf("stage %v, %v of %v", st["reindex_stage"], st["reindex_building_progress"], st["reindex_building_total"])
		}
		if lastReindex(t, n.addr) == nil {
			return fmt.Errorf("no last_reindex yet")
		}
		return nil
	})
	if len(seen) == 0 {
		t.Fatal("status never showed the reindex in progress")
	}
	if slices.Contains(seen, "building") && built < 150000 {
		t.Fatalf("reindex_building_total %v while building, want the 150000 bulk keys at least", built)
	}
	t.Logf("stages seen in status: %v", seen)
	st := perfStatus(t, n.addr)
	r1 := str(st["merkle_root"])
	if last := lastReindex(t, n.addr); str(last["merkle_root"]) != r1 || numOr0(last["keys"]) < 150000 {
		t.Fatalf("last_reindex %v, status merkle_root %s", last, r1)
	}
	var epoch int64
	if _, err := fmt.Sscan(str(st["last_reindex_epoch"]), &epoch); err != nil || epoch < before {
		t.Fatalf("last_reindex_epoch %v, want unix seconds from %d on", st["last_reindex_epoch"], before)
	}
	requireClean(t, "after the background reindex", root)

	for _, c := range []struct {
		path string
		data map[string]any
	}{
		{"sys/replication/performance/reindex", map[string]any{"diff": true}},
		{"sys/replication/dr/reindex", map[string]any{"skip_flush": true}},
		{"sys/replication/reindex", map[string]any{"force": true, "diff": true, "skip_flush": true}},
	} {
		last := reindexAt(t, root, c.path, c.data)
		if str(last["merkle_root"]) != r1 {
			t.Fatalf("%s %v: root %v, want %s", c.path, c.data, last["merkle_root"], r1)
		}
		if d, ok := last["diff"].(map[string]any); c.data["diff"] == true && (!ok || numOr0(d["missing"])+numOr0(d["changed"])+numOr0(d["stale"]) != 0) {
			t.Fatalf("%s diff=true: diff %v, want nothing differing", c.path, last["diff"])
		}
		requireClean(t, c.path, root)
	}
	// The skip_flush pages reach storage: a restart recovers the same root.
	p = n.restart(p)
	waitHealthCode(t, n.addr, 200)
	if got := merkleRootAt(t, n.addr); got != r1 {
		t.Fatalf("merkle_root after a restart %s, want %s", got, r1)
	}
	if logCount(p, "rebuilding it from storage") != 0 {
		t.Fatalf("the restart rebuilt the index (a skip_flush reindex left its marker):\n%s", p.out.String())
	}
}

// numOr0 is a JSON number as an integer, 0 when it is none.
func numOr0(v any) int64 {
	n, _ := strconv.ParseInt(fmt.Sprint(v), 10, 64)
	return n
}
