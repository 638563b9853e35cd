package security

// Finding 10 of issue 11, end to end: a stranger on the bus deletes the
// primary's WAL stream mid-run and publishes junk under the message ids of
// the batches to come (the WAL index is public in status). Replication must
// only be delayed: the primary re-creates its stream, its batches land, and
// the secondary converges and streams again.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/nats-io/nats.go/jetstream"
)

func TestShipStreamAttacks(t *testing.T) {
	pri := startDevServer(t, serverOpts{RootID: "root-p"})
	sec := startDevServer(t, serverOpts{RootID: "root-s"})
	P := pri.rootClient()
	mustKVPut(t, P, "base", "1")
	clusterID := enablePrimary(t, pri)
	tok := secondaryToken(t, pri, "dc2")
	if err := activate(sec, tok); err != nil {
		t.Fatalf("activate the secondary: %v", err)
	}
	S := sec.client(pri.rootID) // the primary's dev root token came with the bundle
	shipConverged(t, P, S, sec)
	x := shipStrangerOn(t, pri.natsAddr, clusterID)

	t.Run("stream deleted mid-run", func(t *testing.T) {
		oldLast, err := x.lastSeq(t)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			mustKVPut(t, P, fmt.Sprint("run-", i), strconv.Itoa(i))
			if i == 6 {
				if err := x.js.DeleteStream(shipCtx(t), x.stream); err != nil {
					t.Fatalf("delete the WAL stream: %v", err)
				}
			}
		}
		shipConverged(t, P, S, sec)
		st, err := x.js.Stream(shipCtx(t), x.stream)
		if err != nil {
			t.Fatalf("the WAL stream after the attack: %v", err)
		}
		if first := st.CachedInfo().State.FirstSeq; first <= oldLast {
			t.Errorf("the re-created stream starts at %d, not past the deleted one's last sequence %d", first, oldLast)
		}
		if !strings.Contains(pri.output(), "restored the WAL stream") {
			t.Error("the primary's log does not tell that it restored the WAL stream")
		}
	})

	t.Run("junk under predicted ids", func(t *testing.T) {
		last, err := strconv.ParseUint(jsonString(pri.replStatus()["last_wal"]), 10, 64)
		if err != nil {
			t.Fatalf("last_wal in the primary's status: %v", err)
		}
		for first := last + 1; first <= last+4; first++ {
			for end := first; end < first+8; end++ {
				for _, id := range []string{
					fmt.Sprintf("%s-%d-%d", clusterID, first, end),
					fmt.Sprintf("%s-%d-%d-%032x", clusterID, first, end, 0),
				} {
					ack, err := x.js.Publish(shipCtx(t), x.subject, []byte("junk"), jetstream.WithMsgID(id))
					if err != nil || ack.Duplicate || ack.Stream != x.stream {
						t.Fatalf("publish junk under %s: %+v, %v", id, ack, err)
					}
				}
			}
		}
		// One write: its batch is the one the junk went ahead of, and no
		// later batch would reveal a gap if it were dropped.
		mustKVPut(t, P, "after-junk", "j")
		shipConverged(t, P, S, sec)
	})

	if _, err := x.lastSeq(t); errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatal("the WAL stream is missing at the end")
	}
	testutil.Eventually(t, replTimeout, "the secondary streams", func() error {
		return stateIs(sec.addr, "stream-wals")
	})
}
