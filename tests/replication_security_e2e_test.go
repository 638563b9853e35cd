package tests

// End-to-end tests of performance replication (docs/replication.md), under
// attack: bad activation tokens, revocation, and messages forged on the WAL
// subject with a plain NATS client.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
)

// TestReplicationSecurity: bad activation tokens, revocation, and messages
// forged on the WAL subject.
func TestReplicationSecurity(t *testing.T) {
	pri := devReplServer(t, "root-dc1")
	wit := devReplServer(t, "root-dc2") // stays active: the witness
	tgt := devReplServer(t, "root-dc3") // refused, then activated, then revoked
	P := pri.root
	kvPut(t, P, "secret", "base", map[string]any{"v": "1"})
	enablePrimary(t, P)
	dc2Token := secondaryToken(t, P, "dc2", "")
	if err := activateSecondary(wit.root, dc2Token); err != nil {
		t.Fatalf("activate the witness: %v", err)
	}
	W := client(t, wit.addr, pri.rootID)
	waitKV(t, W, "secret", "base", "1", waitTimeout)
	T := client(t, tgt.addr, pri.rootID)

	t.Run("activation tokens", func(t *testing.T) {
		err := activateSecondary(tgt.root, "garbage")
		refused(t, "garbage token", err, 400, "malformed")

		expTok := secondaryToken(t, P, "dc-exp", "1s")
		exp, err := strconv.ParseInt(str(jwtClaims(t, expTok)["exp"]), 10, 64)
		if err != nil {
			t.Fatalf("exp claim: %v", err)
		}
		testutil.Eventually(t, waitTimeout, "the clock passes the token's expiry", func() error {
			if now := time.Now().Unix(); now <= exp {
				return fmt.Errorf("now %d, exp %d", now, exp)
			}
			return nil
		})
		refused(t, "expired token", activateSecondary(tgt.root, expTok), 400, "expired")

		refused(t, "token that already activated dc2", activateSecondary(tgt.root, dc2Token), 400, "already used")

		revTok := secondaryToken(t, P, "dc-rev", "")
		revokeSecondary(t, P, "dc-rev")
		refused(t, "revoked token", activateSecondary(tgt.root, revTok), 400, "revoked")

		_, err = P.Logical().Write(pathSecondaryToken, map[string]any{"id": "dc2"})
		refused(t, "second token for the active dc2", err, 400, "revoke")

		// The refusals left the target as it was.
		if _, err := tgt.root.Auth().Token().LookupSelf(); err != nil {
			t.Fatalf("the target's own root token after refused activations: %v", err)
		}
		if m := str(perfStatus(t, tgt.addr)["mode"]); m != "disabled" {
			t.Fatalf("target mode after refused activations: %q", m)
		}

		if err := activateSecondary(tgt.root, secondaryToken(t, P, "dc3", "")); err != nil {
			t.Fatalf("activate dc3 with a good token: %v", err)
		}
		waitKV(t, T, "secret", "base", "1", waitTimeout)
	})

	t.Run("revoke", func(t *testing.T) {
		kvPut(t, P, "secret", "before-revoke", map[string]any{"v": "b"})
		waitKV(t, T, "secret", "before-revoke", "b", waitTimeout)
		waitKV(t, W, "secret", "before-revoke", "b", waitTimeout)

		revokeSecondary(t, P, "dc3")
		kvPut(t, P, "secret", "after-revoke", map[string]any{"v": "a"})
		waitKV(t, W, "secret", "after-revoke", "a", waitTimeout)
		_, err := kvData(T, "secret", "after-revoke")
		notFound(t, "a write after revocation on the revoked secondary", err)

		testutil.Eventually(t, waitTimeout, "the revoked secondary's status shows it", func() error {
			if s := str(perfStatus(t, tgt.addr)["state"]); s != "revoked" {
				return fmt.Errorf("state %q", s)
			}
			return nil
		})
		kvPut(t, P, "secret", "after-revoke2", map[string]any{"v": "a2"})
		waitKV(t, W, "secret", "after-revoke2", "a2", waitTimeout)
		for _, k := range []string{"after-revoke", "after-revoke2"} {
			_, err := kvData(T, "secret", k)
			notFound(t, k+" on the revoked secondary", err)
		}
		if err := kvHas(T, "secret", "before-revoke", "b"); err != nil {
			t.Fatalf("the revoked secondary's old data: %v", err)
		}
		// A write on the revoked secondary goes nowhere.
		_, err = T.KVv2("secret").Put(context.Background(), "from-revoked", map[string]any{"v": "x"})
		switch statusOf(err) {
		case 400: // refused: no forwarding
			refused(t, "a write on the revoked secondary", err, 400, "primary")
		default: // forwarding: its RPC is refused
			refused(t, "a write forwarded by the revoked secondary", err, 503, "revoked")
		}
		_, perr := kvData(P, "secret", "from-revoked")
		notFound(t, "a write on the revoked secondary, on the primary", perr)
		if logCount(tgt.p, "revoked") == 0 {
			t.Fatal("the revoked secondary logged nothing about its revocation")
		}
		known := strs(perfStatus(t, pri.addr)["known_secondaries"])
		if slices.Contains(known, "dc3") || !slices.Contains(known, "dc2") {
			t.Fatalf("primary known_secondaries after revoking dc3: %v", known)
		}
	})

	t.Run("forged WAL messages", func(t *testing.T) {
		cid := str(perfStatus(t, pri.addr)["cluster_id"])
		w := openWALStream(t, "nats://"+pri.natsAddr, cid)

		kvPut(t, P, "secret", "victim", map[string]any{"v": "old"})
		waitKV(t, W, "secret", "victim", "old", waitTimeout)
		old := w.last(t) // the batch with victim=old (or one after it)
		kvPut(t, P, "secret", "victim", map[string]any{"v": "new"})
		waitKV(t, W, "secret", "victim", "new", waitTimeout)
		keysBefore := kvKeys(t, W, "secret")
		cur := w.last(t).Data
		if len(cur) < 21+64 || (cur[0] < 1 || cur[0] > 5) {
			t.Fatalf("the newest WAL message (%d bytes, version %d) is not a batch of docs/replication.md", len(cur), cur[0])
		}

		forge := func(what string, data []byte, logWords ...string) {
			t.Helper()
			n := logCount(wit.p, logWords...)
			seq := w.publish(t, data)
			testutil.Eventually(t, waitTimeout, what+" (stream seq "+strconv.FormatUint(seq, 10)+") logged by the secondary", func() error {
				if logCount(wit.p, logWords...) > n {
					return nil
				}
				return fmt.Errorf("no new log line with %q", logWords)
			})
		}
		random := randomBytes(t, 300)
		random[0] = 0xfe // never a version byte: the message cannot pass as a batch
		forge("random bytes", random, "rejected")

		hdr := bytes.Clone(cur[:21]) // version, epoch: a batch claiming the next index
		hdr[0] = 1                   // the v1 header layout (no guard) is still accepted by readers
		next := binary.BigEndian.Uint64(cur[13:21]) + 1
		binary.BigEndian.PutUint64(hdr[5:13], next)
		binary.BigEndian.PutUint64(hdr[13:21], next)
		forge("a batch header with a random body", append(hdr, randomBytes(t, 300)...), "rejected")

		altered := bytes.Clone(cur)
		altered[len(altered)/2] ^= 0x01
		forge("a real batch with one byte altered", altered, "rejected")

		forge("an old batch replayed with a new Nats-Msg-Id", old.Data, "replay")

		// Nothing of it applied; streaming goes on.
		kvPut(t, P, "secret", "marker", map[string]any{"v": "m"})
		waitKV(t, W, "secret", "marker", "m", waitTimeout)
		if err := kvHas(W, "secret", "victim", "new"); err != nil {
			t.Fatalf("victim on the secondary after the replay: %v", err)
		}
		md, err := W.KVv2("secret").GetMetadata(context.Background(), "victim")
		if err != nil || md.CurrentVersion != 2 {
			t.Fatalf("victim metadata on the secondary after the replay: %+v, %v", md, err)
		}
		want := append(slices.Clone(keysBefore), "marker")
		slices.Sort(want)
		if got := kvKeys(t, W, "secret"); !slices.Equal(got, want) {
			t.Fatalf("keys on the secondary %v, want %v", got, want)
		}
		if got := kvKeys(t, P, "secret"); !slices.Equal(got, want) {
			t.Fatalf("keys on the primary %v, want %v", got, want)
		}
		if s := str(perfStatus(t, wit.addr)["state"]); s != "stream-wals" {
			t.Fatalf("witness state after forged messages: %q", s)
		}
	})
}
