package security

// Issue 12, performance failover: a secondary is promoted, the old primary
// demoted, and the other secondary and the old primary follow the new
// primary with update-primary, without a wipe: the merkle diff moves only the
// keys that differ.

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/internal/testutil"
)

const (
	pathPromote       = "sys/replication/performance/secondary/promote"
	pathDemote        = "sys/replication/performance/primary/demote"
	pathUpdatePrimary = "sys/replication/performance/secondary/update-primary"
)

func TestPerformanceFailoverWithoutWipe(t *testing.T) {
	ns := bustest.StartConfig(t, bus.Config{Listen: testutil.FreeAddr(t), StoreDir: t.TempDir()})
	opts := serverOpts{Bolt: true, SealKey: randomBytes(t, 32), ExternalNATS: ns.ClientURL()}
	named := func(n string) serverOpts { o := opts; o.Name = n; return o }
	pri := startDevServer(t, named("dc1"))
	s1 := startDevServer(t, named("dc2"))
	s2 := startDevServer(t, named("dc3"))
	enablePrimary(t, pri)
	for _, s := range []*server{s1, s2} {
		if err := activate(s, secondaryToken(t, pri, s.name)); err != nil {
			t.Fatalf("activate %s: %v", s.name, err)
		}
	}
	root := pri.rootID // the dev root token, on every cluster of the set
	P, S1, S2 := pri.rootClient(), s1.client(root), s2.client(root)
	for i := range 100 {
		mustKVPut(t, P, fmt.Sprintf("b%02d", i), "v")
	}
	waitKV(t, S1, "b99", "v")
	waitKV(t, S2, "b99", "v")

	// dc3 misses a write: it is down while the primary takes it.
	s2.stopClean()
	mustKVPut(t, P, "x1", "missed by dc3")
	waitKV(t, S1, "x1", "missed by dc3")

	if _, err := S1.Logical().Write(pathPromote, nil); err != nil {
		t.Fatalf("promote dc2: %v", err)
	}
	if _, err := P.Logical().Write(pathDemote, nil); err != nil {
		t.Fatalf("demote dc1: %v", err)
	}
	if st := pri.replStatus(); jsonString(st["mode"]) != "secondary" || jsonString(st["state"]) != "demoted" {
		t.Fatalf("the demoted primary's status %v", st)
	}
	if err := kvPut(P, "z", "on the demoted primary"); !isStatus(err, http.StatusServiceUnavailable) || !strings.Contains(err.Error(), "update-primary") {
		t.Fatalf("a write on the demoted primary: %v, want 503 saying it waits for update-primary", err)
	}
	testutil.Eventually(t, replTimeout, "dc2 a running primary", func() error {
		if st := s1.replStatus(); jsonString(st["mode"]) != "primary" || jsonString(st["state"]) != "running" {
			return fmt.Errorf("dc2 status %v", st)
		}
		return nil
	})
	mustKVPut(t, S1, "y1", "written on the new primary")

	// dc3 comes back and follows the new primary, keeping its data.
	s2.start()
	S2 = s2.client(root)
	s1.rootID = root // dc2's own dev root token went with its activation
	tok := secondaryToken(t, s1, "dc3")
	if _, err := S2.Logical().Write(pathUpdatePrimary, map[string]any{"token": tok}); err != nil {
		t.Fatalf("update-primary on dc3: %v", err)
	}
	waitKV(t, S2, "x1", "missed by dc3")
	waitKV(t, S2, "y1", "written on the new primary")
	testutil.Eventually(t, replTimeout, "dc3 streaming from dc2", func() error { return stateIs(s2.addr, "stream-wals") })
	moved, err := strconv.Atoi(jsonString(s2.replStatus()["last_sync_keys"]))
	if err != nil {
		t.Fatalf("last_sync_keys of dc3: %v", err)
	}
	t.Logf("update-primary on dc3: the merkle diff moved %d storage keys (of about 200: 100 secrets with their metadata)", moved)
	if moved == 0 || moved > 20 {
		t.Fatalf("the merkle diff moved %d keys, want the few that differ", moved)
	}

	// The old primary follows the new one too.
	if _, err := P.Logical().Write(pathUpdatePrimary, map[string]any{"token": secondaryToken(t, s1, "dc1")}); err != nil {
		t.Fatalf("update-primary on dc1: %v", err)
	}
	mustKVPut(t, S1, "after", "failover")
	for _, c := range []*server{s2, pri} {
		waitKV(t, c.client(root), "after", "failover")
	}
	for name, c := range map[string]*server{"dc1": pri, "dc3": s2} {
		testutil.Eventually(t, replTimeout, name+" equal to the new primary", func() error {
			_, err := sameData(S1, c.client(root))
			return err
		})
	}
}
