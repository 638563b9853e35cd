package security

// Issue 12, "never two primaries": a restored copy of a primary's storage
// started beside the original shipped batches that secondaries applied,
// leaving them with a state neither primary had; a primary whose storage went
// back in time re-used WAL indexes that secondaries skipped as replays. Now a
// primary ships and answers only while it holds the set's generation, claimed
// by compare-and-set on the bus (docs/replication.md, "Generations").

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/replication"
)

// generationPair is a primary and its activated secondary, dev servers on
// bolt with one static seal key, on a NATS server of the test's own.
func generationPair(t *testing.T) (opts serverOpts, pri, sec *server) {
	t.Helper()
	_, opts, pri, sec = generationPairBus(t)
	return opts, pri, sec
}

// generationPairBus is generationPair with the NATS server.
func generationPairBus(t *testing.T) (ns *bus.Bus, opts serverOpts, pri, sec *server) {
	t.Helper()
	ns = bustest.StartConfig(t, bus.Config{Listen: testutil.FreeAddr(t), StoreDir: t.TempDir()})
	opts = serverOpts{Name: "dc1", Bolt: true, SealKey: randomBytes(t, 32), ExternalNATS: ns.ClientURL()}
	pri = startDevServer(t, opts)
	so := opts
	so.Name = "dc2"
	sec = startDevServer(t, so)
	enablePrimary(t, pri)
	if err := activate(sec, secondaryToken(t, pri, "dc2")); err != nil {
		t.Fatalf("activate: %v", err)
	}
	return ns, opts, pri, sec
}

// copyFile copies a stopped server's bolt file.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func (s *server) dbPath() string { return filepath.Join(s.dir, "coffer.db") }

// stopClean stops a server with SIGTERM, asserting a clean exit.
func (s *server) stopClean() {
	s.t.Helper()
	if code := s.p.stop(); code != 0 {
		s.t.Fatalf("%s exited %d on SIGTERM", s.name, code)
	}
}

func TestRestoredCopyOfThePrimaryCannotShip(t *testing.T) {
	opts, pri, sec := generationPair(t)
	P, S := pri.rootClient(), sec.client(pri.rootID)
	mustKVPut(t, P, "x", "A0")
	waitKV(t, S, "x", "A0")

	// A backup of the primary's storage, taken while it was stopped.
	pri.stopClean()
	copyOpts := opts
	copyOpts.Name = "dc1" // the same cluster, the same keys, the same stream
	cp := newServer(t, copyOpts, true)
	copyFile(t, pri.dbPath(), cp.dbPath())
	cp.rootID = pri.rootID
	pri.start()
	mustKVPut(t, P, "x", "A1")
	waitKV(t, S, "x", "A1")

	// The backup is started beside the running original.
	cp.startAny()
	C := cp.client(pri.rootID)
	_ = kvPut(C, "x", "B1") // may be taken locally before the copy knows: never shipped
	testutil.Eventually(t, replTimeout, "the copy fenced", func() error {
		st := cp.replStatus()
		if jsonString(st["state"]) != "fenced" {
			return fmt.Errorf("copy status %v, want state fenced", st)
		}
		return nil
	})
	err := kvPut(C, "y", "B2")
	if !isStatus(err, http.StatusServiceUnavailable) || !strings.Contains(err.Error(), pri.addr) ||
		!strings.Contains(err.Error(), "demote") {
		t.Fatalf("a write on the fenced copy: %v, want 503 naming the holder's address %s and what to run", err, pri.addr)
	}
	mustKVPut(t, P, "x", "A2")
	waitKV(t, S, "x", "A2")
	mustKVPut(t, P, "after", "A3")
	waitKV(t, S, "after", "A3")
	if _, err := sameData(P, S); err != nil {
		t.Fatalf("the secondary does not equal the original primary: %v", err)
	}
	if err := kvHas(S, "y", "B2"); err == nil {
		t.Fatal("the copy's write reached the secondary")
	}
	// The original never noticed anything but the copy's presence.
	if st := pri.replStatus(); jsonString(st["state"]) != "running" {
		t.Fatalf("the original primary's status %v, want running", st)
	}
	// The operator's view: coffer replication status on the copy.
	out, err := exec.Command(cofferBin, "replication", "status", "-address=http://"+cp.addr).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "fenced") || !strings.Contains(string(out), "Set Held By") || !strings.Contains(string(out), "Generation") {
		t.Fatalf("coffer replication status on the fenced copy: %v\n%s", err, out)
	}
	t.Logf("coffer replication status on the fenced copy:\n%s", out)
	// A restart does not unfence the copy.
	cp.stopClean()
	cp.startAny()
	testutil.Eventually(t, replTimeout, "the restarted copy still fenced", func() error {
		if s := jsonString(cp.replStatus()["state"]); s != "fenced" {
			return fmt.Errorf("state %q", s)
		}
		return nil
	})
}

func TestPrimaryStorageRollbackResyncsSecondaries(t *testing.T) {
	_, pri, sec := generationPair(t)
	P, S := pri.rootClient(), sec.client(pri.rootID)
	for i := 1; i <= 5; i++ {
		mustKVPut(t, P, fmt.Sprintf("k%d", i), "v1")
	}
	waitKV(t, S, "k5", "v1")

	pri.stopClean()
	backup := filepath.Join(t.TempDir(), "backup.db")
	copyFile(t, pri.dbPath(), backup)
	pri.start()
	mustKVPut(t, P, "k1", "v2")
	mustKVPut(t, P, "k6", "new")
	waitKV(t, S, "k6", "new")
	before, err := kvSnapshot(S)
	if err != nil {
		t.Fatal(err)
	}
	gen1 := jsonString(sec.replStatus()["generation"])

	// The primary's storage goes back to the backup: k1=v1, no k6.
	pri.stopClean()
	copyFile(t, backup, pri.dbPath())
	pri.start()
	testutil.Eventually(t, replTimeout, "the rolled-back primary claims a new generation", func() error {
		st := pri.replStatus()
		if jsonString(st["state"]) != "running" || jsonString(st["generation"]) == gen1 {
			return fmt.Errorf("primary status %v, want running in a generation after %s", st, gen1)
		}
		return nil
	})
	mustKVPut(t, P, "k7", "after")
	var after map[string]string
	testutil.Eventually(t, replTimeout, "the secondary equal to the rolled-back primary", func() error {
		after, err = sameData(P, S)
		return err
	})
	var moved []string
	for k, v := range before {
		if after[k] != v {
			moved = append(moved, fmt.Sprintf("%s: %q -> %q", k, v, after[k]))
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			moved = append(moved, fmt.Sprintf("%s: absent -> %q", k, v))
		}
	}
	sort.Strings(moved)
	t.Logf("keys the resync moved on the secondary: %d\n%s", len(moved), strings.Join(moved, "\n"))
	want := []string{
		`secret/k1: "v=v2 version=2" -> "v=v1 version=1"`,
		`secret/k6: "v=new version=1" -> ""`,
		`secret/k7: absent -> "v=after version=1"`,
	}
	if strings.Join(moved, "\n") != strings.Join(want, "\n") {
		t.Fatalf("moved keys:\n%s\nwant:\n%s", strings.Join(moved, "\n"), strings.Join(want, "\n"))
	}
	if g := jsonString(sec.replStatus()["generation"]); g == gen1 {
		t.Fatalf("the secondary's generation is still %s", g)
	}
}

// The same rollback when nothing on the bus shows it (the stream and the
// claim bucket were lost with the NATS store): the secondary's heartbeat
// reports a position past the primary's WAL, and the primary claims the next
// generation.
func TestPrimaryStorageRollbackSeenBySecondaries(t *testing.T) {
	ns, _, pri, sec := generationPairBus(t)
	P, S := pri.rootClient(), sec.client(pri.rootID)
	mustKVPut(t, P, "k1", "v1")
	waitKV(t, S, "k1", "v1")
	pri.stopClean()
	backup := filepath.Join(t.TempDir(), "backup.db")
	copyFile(t, pri.dbPath(), backup)
	pri.start()
	for i := range 30 {
		mustKVPut(t, P, fmt.Sprintf("later%02d", i), "x")
	}
	waitKV(t, S, "later29", "x")
	gen1 := jsonString(sec.replStatus()["generation"])
	id := jsonString(pri.replStatus()["cluster_id"])

	pri.stopClean()
	copyFile(t, backup, pri.dbPath())
	ctx := context.Background()
	for _, name := range []string{replication.StreamName(id), "KV_" + replication.GenerationBucket(id)} {
		if err := ns.DeleteStream(ctx, name); err != nil {
			t.Fatalf("delete %s: %v", name, err)
		}
		if _, _, _, err := ns.StreamState(ctx, name); err == nil {
			t.Fatalf("%s still there", name)
		}
	}
	pri.start()
	testutil.Eventually(t, 2*replTimeout, "the rolled-back primary in a new generation", func() error {
		st := pri.replStatus()
		if jsonString(st["state"]) != "running" || jsonString(st["generation"]) == gen1 {
			return fmt.Errorf("primary status %v, want running past generation %s", st, gen1)
		}
		return nil
	})
	testutil.Eventually(t, replTimeout, "the secondary equal to the rolled-back primary", func() error {
		_, err := sameData(P, S)
		return err
	})
	if err := kvHas(S, "later00", "x"); err == nil {
		t.Fatal("a key the rolled-back primary does not have is still on the secondary")
	}
}
