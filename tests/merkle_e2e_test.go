package tests

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"

	"github.com/cofferhq/coffer/replication"
)

// End-to-end tests of the merkle index (merkle/doc.go, core/merkle.go) and
// of the merkle-diff sync of a secondary (docs/replication.md, issue 5): real
// coffer processes, the vault/api client, signals.

// TestMerkleGapSync: a secondary paused with SIGSTOP while the primary writes
// far past its WAL stream's retention (wal_stream_max_msgs = 50) finds the
// gap once resumed, reconciles with a merkle diff and converges: the same
// merkle root and the same data key by key. The states it went through are
// read from its status, polled from the moment of SIGCONT.
func TestMerkleGapSync(t *testing.T) {
	const (
		oldKeys   = 60  // on both sides before the pause
		newWrites = 400 // separate writes while the secondary is paused
	)
	m := startMerklePair(t, "wal_stream_max_msgs = 50", func(P *api.Client) {
		for i := range oldKeys {
			kvPut(t, P, "secret", fmt.Sprintf("old-%03d", i), map[string]any{"v": fmt.Sprintf("old-%d", i)})
		}
	})
	waitConverged(t, m, replTimeout)
	st := perfStatus(t, m.sec.n.addr)
	before := u64(t, "secondary last_remote_wal", st["last_remote_wal"])
	priID := str(perfStatus(t, m.pri.n.addr)["cluster_id"])

	// Pause the secondary (resumed at cleanup too, so that it can be stopped).
	signal(t, m.sec.p, syscall.SIGSTOP)
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			_ = syscall.Kill(m.sec.p.cmd.Process.Pid, syscall.SIGCONT)
		}
	})

	// Far past the stream's 50 messages: 400 new keys, one request each, then
	// overwrites, metadata deletes (the key is gone) and soft deletes of keys
	// the secondary already has.
	ctx := context.Background()
	kv := m.P.KVv2("secret")
	start := time.Now()
	for i := range newWrites {
		kvPut(t, m.P, "secret", fmt.Sprintf("new-%03d", i), map[string]any{"v": fmt.Sprintf("new-%d", i)})
	}
	for i := 0; i < 15; i++ {
		kvPut(t, m.P, "secret", fmt.Sprintf("old-%03d", i), map[string]any{"v": "overwritten", "n": i})
	}
	for i := 15; i < 30; i++ {
		if err := kv.DeleteMetadata(ctx, fmt.Sprintf("old-%03d", i)); err != nil {
			t.Fatalf("delete metadata of old-%03d: %v", i, err)
		}
	}
	for i := 30; i < 40; i++ {
		if err := kv.Delete(ctx, fmt.Sprintf("old-%03d", i)); err != nil {
			t.Fatalf("soft delete of old-%03d: %v", i, err)
		}
	}
	t.Logf("%d writes and 25 deletes on the primary in %s with the secondary paused", newWrites+15, time.Since(start).Round(time.Millisecond))

	// The gap is real: the stream's oldest batch starts past what the
	// secondary applied, and the stream holds at most 50 batches.
	w := openWALStream(t, "nats://"+m.natsAddr, priID, natsSeed(t, m.natsSeed))
	testutil.Eventually(t, replTimeout, "the WAL stream dropped the batches the paused secondary needs next", func() error {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		info, err := w.stream.Info(ictx)
		if err != nil {
			return err
		}
		if info.State.Msgs > 50 {
			return fmt.Errorf("the stream holds %d messages, over wal_stream_max_msgs = 50", info.State.Msgs)
		}
		msg, err := w.stream.GetMsg(ictx, info.State.FirstSeq)
		if err != nil {
			return fmt.Errorf("first message (seq %d): %w", info.State.FirstSeq, err)
		}
		_, first, _, err := replication.PeekBatch(msg.Data)
		if err != nil {
			return err
		}
		if first <= before+1 {
			return fmt.Errorf("the oldest batch in the stream starts at %d; the secondary applied up to %d", first, before)
		}
		t.Logf("stream: %d messages from seq %d; the oldest batch starts at WAL index %d, the secondary applied %d",
			info.State.Msgs, info.State.FirstSeq, first, before)
		return nil
	})
	wantRoot := merkleRootAt(t, m.pri.n.addr)

	// Resume, polling the secondary's status from that moment on.
	poller := pollStates(m.sec.n.addr)
	signal(t, m.sec.p, syscall.SIGCONT)
	resumed = true
	resumedAt := time.Now()
	root, nkeys := waitConverged(t, m, replTimeout)
	took := time.Since(resumedAt)
	samples := poller.halt()
	trs := transitions(samples)
	var seq []string
	for _, s := range trs {
		seq = append(seq, fmt.Sprintf("%s@%s", s.state, s.at.Round(time.Millisecond)))
	}
	t.Logf("converged %s after SIGCONT on root %s (%d kv keys); %d status samples; states: %s",
		took.Round(time.Millisecond), root, nkeys, len(samples), strings.Join(seq, " -> "))
	if root != wantRoot {
		t.Fatalf("converged on root %s, but the primary's root after the writes was %s", root, wantRoot)
	}
	if len(samples) == 0 {
		t.Fatalf("no status sample from the secondary after SIGCONT (%d errors)", poller.errs)
	}

	// The states: a merkle diff and/or sync, then back to streaming.
	lastMerkle := -1
	for i, s := range trs {
		if s.state == "merkle-diff" || s.state == "merkle-sync" {
			lastMerkle = i
		}
	}
	if lastMerkle < 0 {
		t.Fatalf("the secondary never showed merkle-diff or merkle-sync after SIGCONT; states seen: %s", strings.Join(seq, " -> "))
	}
	if trs[len(trs)-1].state != "stream-wals" || lastMerkle == len(trs)-1 {
		t.Fatalf("the secondary did not go back to stream-wals after its merkle sync; states seen: %s", strings.Join(seq, " -> "))
	}
	var progress []string
	for _, s := range samples {
		if s.progress != "" && (len(progress) == 0 || progress[len(progress)-1] != s.progress) {
			progress = append(progress, s.progress)
		}
	}
	if len(progress) > 0 {
		t.Logf("merkle_sync_progress seen: %s ... %s (%d distinct)", progress[0], progress[len(progress)-1], len(progress))
	}
	for _, s := range samples {
		switch {
		case s.state == "merkle-sync" && s.progress == "":
			t.Fatalf("state merkle-sync at %s without merkle_sync_progress", s.at)
		case s.state == "merkle-sync":
			var p struct {
				Done  *uint64 `json:"sync_progress"`
				Total *uint64 `json:"sync_total_keys"`
			}
			if err := json.Unmarshal([]byte(s.progress), &p); err != nil || p.Done == nil || p.Total == nil {
				t.Fatalf("merkle_sync_progress %s: want {sync_progress, sync_total_keys} numbers (%v)", s.progress, err)
			}
			if *p.Total == 0 || *p.Done > *p.Total {
				t.Fatalf("merkle_sync_progress %s during a sync of %d+ differing keys", s.progress, newWrites)
			}
		case s.state == "revoked" || s.state == "idle":
			t.Fatalf("the secondary went %s during its gap sync; states seen: %s", s.state, strings.Join(seq, " -> "))
		}
	}
	if logCount(m.sec.p, "panic") > 0 {
		t.Fatalf("the secondary logged a panic:\n%s", m.sec.p.out.String())
	}

	// Streaming again: a new write arrives by the stream, and the key set is
	// what the primary has (old keys 15-29 gone, 30-39 soft-deleted).
	kvPut(t, m.P, "secret", "after-sync", map[string]any{"v": "streamed"})
	waitKV(t, m.S, "secret", "after-sync", "streamed", replTimeout)
	keys := kvKeys(t, m.S, "secret")
	if slices.Contains(keys, "old-020") || !slices.Contains(keys, "old-035") || !slices.Contains(keys, "new-399") {
		t.Fatalf("keys on the secondary after the sync: %d keys, want old-020 gone and old-035, new-399 there", len(keys))
	}
	if s, err := m.S.KVv2("secret").Get(ctx, "old-035"); err != nil || s.Data != nil || s.VersionMetadata == nil || s.VersionMetadata.DeletionTime.IsZero() {
		t.Fatalf("soft-deleted old-035 on the secondary: want its version deleted, got %+v, %v", s, err)
	}
	if err := kvHas(m.S, "secret", "old-003", "overwritten"); err != nil {
		t.Fatalf("overwritten key on the secondary: %v", err)
	}
	requireClean(t, "the primary after the secondary's sync", m.P)
}

// TestMerkleCrashRecovery: the primary is killed with SIGKILL under a write
// load, at a random acknowledged write, many times over on the same bolt
// file. Each restart (the static seal unseals it) recovers a merkle index that
// merkle-check finds equal to a full recomputation, keeps every acknowledged
// write, and at the end its secondary converges on it.
func TestMerkleCrashRecovery(t *testing.T) {
	const (
		rounds  = 20
		writers = 4
		perKeys = 20 // keys per writer
	)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("COFFER_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("COFFER_CRASH_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (rerun with COFFER_CRASH_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x6d65726b6c65))

	m := startMerklePair(t, "", nil)
	waitConverged(t, m, replTimeout)

	// What each key holds: the value of its last acknowledged operation
	// ("" for deleted), and the one in flight when the primary died.
	type keyState struct{ acked, inflight string }
	state := map[string]*keyState{}
	for g := range writers {
		for k := range perKeys {
			state[fmt.Sprintf("w%d-k%02d", g, k)] = &keyState{}
		}
	}
	var serial atomic.Uint64 // makes every written value unique

	totalAcked, redoRounds := 0, 0
	start := time.Now()
	for round := 1; round <= rounds; round++ {
		killAt := 5 + rng.IntN(120)
		wseeds := make([]uint64, writers)
		for g := range wseeds {
			wseeds[g] = rng.Uint64()
		}
		P := client(t, m.pri.n.addr, m.pri.root)
		var acked atomic.Int64
		reached := make(chan struct{})
		var once sync.Once
		var wg sync.WaitGroup
		var mu sync.Mutex // guards state
		for g := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				wr := rand.New(rand.NewPCG(wseeds[g], uint64(g)))
				kv := P.KVv2("secret")
				for {
					key := fmt.Sprintf("w%d-k%02d", g, wr.IntN(perKeys))
					val := ""
					if wr.IntN(10) != 0 {
						val = fmt.Sprintf("r%d-%d", round, serial.Add(1))
					}
					mu.Lock()
					state[key].inflight = val
					mu.Unlock()
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					var err error
					if val == "" {
						err = kv.DeleteMetadata(ctx, key)
					} else {
						_, err = kv.Put(ctx, key, map[string]any{"v": val})
					}
					cancel()
					if err != nil {
						return // the primary is gone
					}
					mu.Lock()
					state[key].acked = val
					mu.Unlock()
					if acked.Add(1) == int64(killAt) {
						once.Do(func() { close(reached) })
					}
				}
			}()
		}
		select {
		case <-reached:
		case <-m.pri.p.done:
			t.Fatalf("round %d: the primary exited by itself: %v", round, m.pri.p.err)
		case <-time.After(replTimeout):
			t.Fatalf("round %d: %d writes acknowledged in %s, want %d", round, acked.Load(), replTimeout, killAt)
		}
		sigkill(t, m.pri.p)
		wg.Wait()
		n := acked.Load()
		totalAcked += int(n)

		m.pri.p = m.pri.n.start()
		waitHealthCode(t, m.pri.n.addr, 200)
		P = client(t, m.pri.n.addr, m.pri.root)
		if logCount(m.pri.p, "rebuilding it from storage") > 0 {
			t.Errorf("round %d: the restart rebuilt the index instead of recovering it from its pages:\n%s", round, m.pri.p.out.String())
		}
		// core/merkle.go logs the redo done by recovery (ops_redone=N).
		if logCount(m.pri.p, "merkle index recovered", "ops_redone=") > 0 && logCount(m.pri.p, "merkle index recovered", "ops_redone=0 ") == 0 {
			redoRounds++
		}
		requireClean(t, fmt.Sprintf("round %d (killed after %d acknowledged writes)", round, n), P)
		// Every acknowledged write survived; an unacknowledged one may have.
		for key, ks := range state {
			got := ""
			d, err := kvData(P, "secret", key)
			switch {
			case errors.Is(err, api.ErrSecretNotFound):
			case err != nil:
				t.Fatalf("round %d: read %s: %v", round, key, err)
			default:
				got = str(d["v"])
			}
			if got != ks.acked && got != ks.inflight {
				t.Fatalf("round %d: %s holds %q after the crash; acknowledged %q, in flight %q", round, key, got, ks.acked, ks.inflight)
			}
			ks.acked, ks.inflight = got, got
		}
	}
	t.Logf("%d rounds, %d acknowledged writes, in %s; %d restarts redid WAL entries past their pages' pageLSN",
		rounds, totalAcked, time.Since(start).Round(time.Millisecond), redoRounds)
	if redoRounds == 0 {
		t.Fatalf("no restart redid anything from the WAL: the kills never left a dirty page, the test proved nothing about recovery")
	}

	convStart := time.Now()
	root, nkeys := waitConverged(t, m, replTimeout)
	t.Logf("the secondary converged in %s on root %s with %d kv keys", time.Since(convStart).Round(time.Millisecond), root, nkeys)
	requireClean(t, "the primary at the end", m.P)
}

// TestMerklePageCorruption: a merkle page damaged on disk while the server is
// stopped. A flipped byte fails the page's CRC: the server rebuilds its index
// at startup. A damaged page with a valid CRC is loaded, reported by
// merkle-check, and mended by sys/replication/reindex.
func TestMerklePageCorruption(t *testing.T) {
	n, p, rootToken := staticServer(t)
	root := client(t, n.addr, rootToken)
	for i := range 300 {
		kvPut(t, root, "secret", fmt.Sprintf("k-%03d", i), map[string]any{"v": strconv.Itoa(i)})
	}
	// A token with every capability on sys/replication/* but sudo.
	if err := root.Sys().PutPolicy("checker", `path "sys/replication/*" { capabilities = ["create", "update", "read"] }`); err != nil {
		t.Fatal(err)
	}
	tok, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"checker"}})
	if err != nil {
		t.Fatal(err)
	}
	checker := client(t, n.addr, tok.Auth.ClientToken)
	r0 := merkleRootAt(t, n.addr)
	requireClean(t, "before any corruption", root)
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d on SIGTERM, want 0", code)
	}
	pages := storedKeys(t, n.dbPath, "merkle/pages/")
	if len(pages) < 100 {
		t.Fatalf("%d merkle pages in storage after a clean stop with 600+ replicated keys: %v", len(pages), pages)
	}

	t.Run("checksum", func(t *testing.T) {
		page := "merkle/pages/" + pages[len(pages)/2]
		mangleStoredValue(t, n.dbPath, page, func(v []byte) []byte {
			v[len(v)/2] ^= 0x5a
			return v
		})
		p = n.start()
		waitHealthCode(t, n.addr, 200)
		if logCount(p, "rebuilding it from storage") == 0 {
			t.Fatalf("no \"rebuilding it from storage\" in the log after corrupting %s:\n%s", page, p.out.String())
		}
		if got := merkleRootAt(t, n.addr); got != r0 {
			t.Fatalf("merkle_root after the rebuild %s, before the corruption %s", got, r0)
		}
		requireClean(t, "after the rebuild at startup", root)
		if got := reindex(t, root); got != r0 {
			t.Fatalf("sys/replication/reindex returned merkle_root %s, want %s", got, r0)
		}
		requireClean(t, "after reindex", root)

		// Reindex needs sudo.
		_, err := checker.Logical().Write("sys/replication/reindex", nil)
		if statusOf(err) != 403 {
			t.Fatalf("sys/replication/reindex without sudo: want 403, got %v", err)
		}
		if code := p.stop(); code != 0 {
			t.Fatalf("exit %d on SIGTERM, want 0", code)
		}
	})

	t.Run("valid checksum", func(t *testing.T) {
		// Alter the first item's value hash and recompute the CRC: the page
		// loads, so the index now disagrees with the data.
		name := pages[len(pages)/3]
		bucket, err := strconv.ParseUint(name, 16, 16)
		if err != nil {
			t.Fatalf("page name %q: %v", name, err)
		}
		mangleStoredValue(t, n.dbPath, "merkle/pages/"+name, func(v []byte) []byte {
			_, k := binary.Uvarint(v[13:])
			v[13+k+8] ^= 0x01 // version 1 | bucket 4 | pageLSN 8 | count | fp 8 | value hash 16
			body := v[:len(v)-4]
			binary.BigEndian.PutUint32(v[len(body):], crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
			return v
		})
		p = n.start()
		waitHealthCode(t, n.addr, 200)
		if logCount(p, "rebuilding it from storage") != 0 {
			t.Fatalf("the server rebuilt its index although the page's checksum is valid:\n%s", p.out.String())
		}
		if got := merkleRootAt(t, n.addr); got == r0 {
			t.Fatalf("merkle_root %s unchanged by a loaded bad page", got)
		}
		rep := merkleCheck(t, root)
		if rep["corrupted_root"] != true {
			t.Fatalf("merkle-check: corrupted_root %v, want true: %v", rep["corrupted_root"], rep)
		}
		pageIdx, sub := strconv.Itoa(int(bucket/16)), strconv.Itoa(int(bucket%16))
		pr, ok := mapAt(rep, "corrupted_tree_map", "1", "corrupted_index_tuples_map", pageIdx)
		if !ok {
			t.Fatalf("merkle-check does not report level-3 page %s (bucket %s): %v", pageIdx, name, rep)
		}
		subs, _ := mapAt(pr, "subpages")
		if !slices.Contains(strs(subs), sub) {
			t.Fatalf("merkle-check page %s: subpages %v, want %v", pageIdx, subs, sub)
		}
		if f := reportFindings(rep); len(f) != 3 { // corrupted_root, subtree root, the page
			t.Fatalf("merkle-check findings %v, want only bucket %s", f, name)
		}
		if got := reindex(t, root); got != r0 {
			t.Fatalf("sys/replication/reindex returned merkle_root %s, want %s", got, r0)
		}
		requireClean(t, "after reindex", root)
		if got := merkleRootAt(t, n.addr); got != r0 {
			t.Fatalf("merkle_root after reindex %s, want %s", got, r0)
		}

		// The mended pages are what the next start loads.
		p = n.restart(p)
		waitHealthCode(t, n.addr, 200)
		if got := merkleRootAt(t, n.addr); got != r0 {
			t.Fatalf("merkle_root after a restart %s, want %s", got, r0)
		}
		requireClean(t, "after reindex and a restart", root)
		if logCount(p, "rebuilding it from storage") != 0 {
			t.Fatalf("the restart after reindex rebuilt the index:\n%s", p.out.String())
		}
	})
}

// reindex runs sys/replication/reindex with c (sudo), waits for it to
// complete in the background, and returns the root it put in service.
func reindex(t *testing.T, c *api.Client) string {
	t.Helper()
	return reindexAt(t, c, "sys/replication/reindex", nil)["merkle_root"].(string)
}
