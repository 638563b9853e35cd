//go:build unix

package wal

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/storage"
	"github.com/rs/zerolog"
)

// The crash test re-executes this test binary as a child that writes through
// the WAL on a bolt file with fsync on, and kills it with SIGKILL at random
// moments. These environment variables put the binary in child mode.
const (
	envCrashDB    = "COFFER_WAL_CRASH_DB"
	envCrashRound = "COFFER_WAL_CRASH_ROUND"
	envCrashSeed  = "COFFER_WAL_CRASH_SEED" // set by hand to replay a parent run
	crashWriters  = 32
	crashRounds   = 24
)

// crashGroup names one write of the crash test: round, writer and sequence.
func crashGroup(round, writer, seq int) string {
	return fmt.Sprintf("r%03d-w%02d-%06d", round, writer, seq)
}

// crashOps is the write a group makes; the shape cycles with the sequence
// number: one put; two puts; a put, a local key and an ignored key; three puts
// and a delete. Values are derived from the key, so the parent can check them.
func crashOps(gid string) []*storage.TxnOp {
	seq, err := strconv.Atoi(gid[strings.LastIndexByte(gid, '-')+1:])
	if err != nil {
		panic("bad crash group " + gid)
	}
	ops := []*storage.TxnOp{put("data/"+gid+".a", crashValue("data/"+gid+".a"))}
	switch seq % 4 {
	case 1:
		ops = append(ops, put("data/"+gid+".b", crashValue("data/"+gid+".b")))
	case 2:
		ops = append(ops,
			put("sys/token/"+gid, crashValue("sys/token/"+gid)),
			put("merkle/crash/"+gid, crashValue("merkle/crash/"+gid)))
	case 3:
		ops = append(ops,
			put("data/"+gid+".b", crashValue("data/"+gid+".b")),
			put("data/"+gid+".c", crashValue("data/"+gid+".c")),
			del("data/"+gid+".gone"))
	}
	return ops
}

func crashValue(key string) string {
	return "value-of:" + key + ":" + strings.Repeat("x", 64)
}

// groupOf returns the group a stored key belongs to.
func groupOf(key string) string {
	for _, p := range []string{"data/", "sys/token/", "merkle/crash/"} {
		if rest, ok := strings.CutPrefix(key, p); ok {
			if i := strings.IndexByte(rest, '.'); i >= 0 {
				rest = rest[:i]
			}
			return rest
		}
	}
	return ""
}

// TestCrashChild is the child side of TestCrashRecovery; it does nothing in a
// normal run. It writes until it is killed, printing "ack <index> <keys...>"
// after each acknowledged write.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(envCrashDB)
	if path == "" {
		t.Skip("child of TestCrashRecovery only")
	}
	round, err := strconv.Atoi(os.Getenv(envCrashRound))
	if err != nil {
		t.Fatalf("bad %s: %v", envCrashRound, err)
	}
	ctx := context.Background()
	b := openBolt(t, path, false)
	l, err := Open(ctx, b, Options{}, zerolog.New(os.Stderr))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open wal:", err)
		os.Exit(3)
	}
	var outMu sync.Mutex
	say := func(line string) {
		outMu.Lock()
		defer outMu.Unlock()
		// One write per line: a pipe write under PIPE_BUF is atomic, so a kill
		// never leaves half a line, and nothing sits in a user-space buffer.
		if _, err := os.Stdout.WriteString(line); err != nil {
			os.Exit(4)
		}
	}
	say("ready\n")
	for w := 0; w < crashWriters; w++ {
		go func() {
			for seq := 0; ; seq++ {
				ops := crashOps(crashGroup(round, w, seq))
				idx, err := l.Write(ctx, ops)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child: write:", err)
					os.Exit(5)
				}
				keys := make([]string, len(ops))
				for i, op := range ops {
					keys[i] = op.Entry.Key
				}
				say(fmt.Sprintf("ack %d %s\n", idx, strings.Join(keys, " ")))
			}
		}()
	}
	// The parent kills us long before this; it only bounds an orphan's life.
	<-time.After(2 * time.Minute)
	os.Exit(6)
}

// TestCrashRecovery: a child writing through the WAL with many concurrent
// writers is killed with SIGKILL at random moments, 24 rounds on the same bolt
// file. After each kill the parent reopens the file and checks that every
// acknowledged write is present, the WAL index has no gap, and no write,
// acknowledged or not, is half-applied.
func TestCrashRecovery(t *testing.T) {
	if os.Getenv(envCrashDB) != "" {
		t.Skip("already in the child")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(envCrashSeed); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d (replay with %s=%d)", seed, envCrashSeed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	path := filepath.Join(t.TempDir(), "crash.db")

	acked := map[string]uint64{} // group -> acknowledged index, across rounds
	for round := 0; round < crashRounds; round++ {
		// target 0 kills the child as soon as it is writing; otherwise after that many acks.
		target := 0
		if rng.IntN(8) != 0 {
			target = 1 + rng.IntN(400)
		}
		n := runCrashChild(t, path, round, target, acked)
		last := verifyCrashState(t, path, acked)
		t.Logf("round %2d: killed after %4d acks (target %3d); last index %d", round, n, target, last)
		if t.Failed() {
			t.Fatalf("round %d failed (seed %d)", round, seed)
		}
	}
}

// runCrashChild starts the child, kills it once it has acknowledged target
// writes, and records every ack it printed (including those printed between
// the target and the kill) in acked. It returns the number of acks of the round.
func runCrashChild(t *testing.T, path string, round, target int, acked map[string]uint64) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envCrashDB+"="+path, envCrashRound+"="+strconv.Itoa(round))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			_ = cmd.Process.Kill() // SIGKILL
		}
	}
	defer kill()

	sc := bufio.NewScanner(stdout)
	acks, ready := 0, false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "ready":
			ready = true
		case strings.HasPrefix(line, "ack "):
			f := strings.Fields(line)
			idx, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil || len(f) < 3 {
				t.Fatalf("round %d: malformed ack line %q", round, line)
			}
			gid := groupOf(f[2])
			if _, dup := acked[gid]; dup {
				t.Fatalf("round %d: group %s acknowledged twice", round, gid)
			}
			acked[gid] = idx
			acks++
		default:
			continue
		}
		if ready && acks >= target {
			kill()
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !killed || !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("round %d: child ended by itself (%v) after %d acks, before the kill; stderr:\n%s", round, err, acks, stderr.String())
	}
	return acks
}

// verifyCrashState reopens the file and checks the invariants. It returns LastIndex.
func verifyCrashState(t *testing.T, path string, acked map[string]uint64) uint64 {
	t.Helper()
	ctx := context.Background()
	b := openBolt(t, path, false)
	defer b.Close()
	l, err := Open(ctx, b, Options{}, testLogger(t))
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer l.Close()

	// 1. Every index 1..LastIndex is present, in order: no gap.
	last := l.LastIndex()
	entries := readAll(t, l)
	if uint64(len(entries)) != last {
		t.Fatalf("WAL holds %d entries for last index %d: gap", len(entries), last)
	}
	for i, e := range entries {
		if e.Index != uint64(i+1) {
			t.Fatalf("entry at position %d has index %d: gap", i, e.Index)
		}
	}
	if after, err := b.Get(ctx, logKey(last+1)); err != nil || after != nil {
		t.Fatalf("entry %d past the last index: %v, %v", last+1, after, err)
	}

	// 2. Each entry is one whole group, applied in full.
	walGroup := map[string]uint64{}
	wantKeys := map[string]bool{}
	for _, e := range entries {
		if len(e.Ops) == 0 {
			t.Fatalf("entry %d has no op", e.Index)
		}
		gid := groupOf(e.Ops[0].Key)
		if prev, dup := walGroup[gid]; dup {
			t.Fatalf("group %s logged twice, at %d and %d", gid, prev, e.Index)
		}
		walGroup[gid] = e.Index
		var want []Op
		for _, op := range crashOps(gid) {
			class := DefaultClassify(op.Entry.Key)
			if op.Operation == storage.PutOperation {
				wantKeys[op.Entry.Key] = true
				got, err := b.Get(ctx, op.Entry.Key)
				if err != nil {
					t.Fatal(err)
				}
				if got == nil || string(got.Value) != string(op.Entry.Value) {
					t.Fatalf("entry %d: key %s not applied (got %v): half-applied write", e.Index, op.Entry.Key, got)
				}
			} else {
				mustAbsent(t, b, op.Entry.Key)
			}
			if class == Ignored {
				continue
			}
			o := Op{Kind: op.Operation, Class: class, Key: op.Entry.Key}
			if op.Operation == storage.PutOperation {
				o.Value = op.Entry.Value
			}
			want = append(want, o)
		}
		if fmt.Sprint(e.Ops) != fmt.Sprint(want) {
			t.Fatalf("entry %d ops\n %v\nwant\n %v", e.Index, e.Ops, want)
		}
	}

	// 3. No stored key without its WAL entry.
	for _, prefix := range []string{"data/", "sys/token/", "merkle/crash/"} {
		for _, k := range sortedKeys(t, b, prefix) {
			if !wantKeys[k] {
				t.Fatalf("key %s is stored but no WAL entry wrote it: half-applied write", k)
			}
			delete(wantKeys, k)
		}
	}
	if len(wantKeys) != 0 {
		t.Fatalf("%d keys logged but not stored", len(wantKeys))
	}

	// 4. Every acknowledged write is there, at the index it was acknowledged with.
	for gid, idx := range acked {
		if got, ok := walGroup[gid]; !ok || got != idx {
			t.Fatalf("acknowledged group %s at index %d: WAL has it at %d (present %v)", gid, idx, got, ok)
		}
	}
	return last
}
