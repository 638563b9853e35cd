package security

import (
	"fmt"
	"slices"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
)

// TestRPCForgedRevocation is finding 2 of issue 11: one forged "revoked"
// reply stopped a secondary for good, and during activation the same forgery
// failed it. Here an attacker on the primary's bus answers every RPC first,
// from before activation to the end, with "revoked" in clear and signed with
// its own key, garbage and replays of replies it captured. The secondary
// activates, replicates and forwards writes, and its status never shows
// "revoked"; the primary's own, signed revocation still ends it.
func TestRPCForgedRevocation(t *testing.T) {
	pri := startDevServer(t, serverOpts{RootID: "root-dc1"})
	sec := startDevServer(t, serverOpts{RootID: "root-dc2"})
	P := pri.rootClient()
	if err := kvPut(P, "base", "1"); err != nil {
		t.Fatal(err)
	}
	enablePrimary(t, pri)
	atk := rpcStartAttacker(t, pri.natsAddr, true)
	tok := secondaryToken(t, pri, "dc2")
	if err := activate(sec, tok); err != nil {
		t.Fatalf("activation with forged refusals racing the primary: %v", err)
	}
	S := sec.client(pri.rootID)
	waitKV(t, S, "base", "1")
	states := recordStatus(t, sec.addr)

	// Forwarded writes (one RPC each) and heartbeats (every 2 s), all raced.
	for i := range 5 {
		v := fmt.Sprint(i)
		if err := kvPut(S, "fwd", v); err != nil {
			t.Fatalf("forwarded write %d with the attacker racing: %v", i, err)
		}
		waitKV(t, P, "fwd", v)
	}
	start := atk.rpcAnswered()
	testutil.Eventually(t, replTimeout, "the attacker raced 3 more heartbeats", func() error {
		if n := atk.rpcAnswered() - start; n < 3 {
			return fmt.Errorf("%d raced", n)
		}
		return nil
	})
	if err := kvPut(P, "after", "2"); err != nil {
		t.Fatal(err)
	}
	waitKV(t, S, "after", "2")
	states.stop()
	if seen := states.States(); slices.Contains(seen, "revoked") || len(seen) == 0 {
		t.Fatalf("secondary states under forged revocations: %v", seen)
	}

	// The real revocation, signed by the primary, is obeyed.
	if _, err := P.Logical().Write("sys/replication/performance/primary/revoke-secondary", map[string]any{"id": "dc2"}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, replTimeout, "the secondary obeys the primary's revocation", func() error {
		return stateIs(sec.addr, "revoked")
	})
}
