package security

// A secondary's operators are trusted with the data, not with the primary
// (docs/security.md), nor with the other secondaries. Since batch version 5
// a secondary trusts a batch on a tag of its own (an HMAC) instead of the
// primary's signature (docs/replication.md, "Batch tags"). An insider holds
// what every secondary holds (the replication key, which seals any batch)
// and a tag key of its own: here it tries to make another secondary apply
// a batch the primary never shipped, under every tag it can make.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
	"github.com/nats-io/nats.go"
)

// insiderBundle redeems an activation token of the insider's own secondary
// over the bus, as any secondary would, and returns what the primary hands
// it.
func insiderBundle(t *testing.T, nc *nats.Conn, token string) *replication.Bundle {
	t.Helper()
	claims, err := replication.ParseToken(token, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	priv, err := replication.NewActivationKey()
	if err != nil {
		t.Fatal(err)
	}
	req, err := replication.SealActivateRequest(claims, priv.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	reply, err := nc.Request(replication.RPCSubject(claims.Issuer, replication.MethodActivate), req, 10*time.Second)
	if err != nil {
		t.Fatalf("activate the insider: %v", err)
	}
	sealed, err := replication.OpenActivateReply(reply.Data, req, claims.PublicKey)
	if err != nil {
		t.Fatalf("activate the insider: %v", err)
	}
	b, err := replication.OpenBundle(sealed, priv)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestShipInsiderCannotTagForAnother: secondary dc3, activated for real, seals
// batches that delete secret/victim's metadata on dc2, each at the index dc2
// expects next: tagged under its own key with dc2's tag id, with dc2's real
// tag copied from a batch the primary shipped, with its own tag only, and
// signed with a key of its own each time. dc2 applies none: secret/victim
// still reads there after later writes arrived, and the real write at that
// index is applied.
func TestShipInsiderCannotTagForAnother(t *testing.T) {
	pri := startDevServer(t, serverOpts{RootID: "root-dc1"})
	sec := startDevServer(t, serverOpts{RootID: "root-dc2", Name: "dc2"})
	P := pri.rootClient()
	mustKVPut(t, P, "victim", "1")
	cluster := enablePrimary(t, pri)
	if err := activate(sec, secondaryToken(t, pri, "dc2")); err != nil {
		t.Fatal(err)
	}
	S := sec.client(pri.rootID)
	waitKV(t, S, "victim", "1")
	shipConverged(t, P, S, sec)

	nc, err := nats.Connect(pri.natsURL(), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	insider := insiderBundle(t, nc, secondaryToken(t, pri, "dc3"))
	mine, err := replication.NewTagKey("dc3", insider.RPCKey)
	if err != nil {
		t.Fatal(err)
	}
	claimed := mine
	claimed.ID = dc2TagID(t)
	mounts, err := P.Sys().ListMounts()
	if err != nil || mounts["secret/"] == nil {
		t.Fatalf("list mounts: %v", err)
	}
	victimMeta := "logical/" + mounts["secret/"].UUID + "/metadata/victim"
	_, signer, _ := ed25519.GenerateKey(rand.Reader)
	stranger := shipStrangerOn(t, pri.natsAddr, cluster)

	forge := func(how string) []byte {
		next := lastRemoteWAL(t, sec) + 1
		b := &replication.Batch{ClusterID: cluster, Epoch: insider.Epoch, Generation: insider.Generation, First: next, Last: next,
			Entries: []*wal.Entry{{Index: next, Ops: []wal.Op{{Kind: storage.DeleteOperation, Class: wal.Replicated, Key: victimMeta}}}}}
		switch how {
		case "own key, dc2's id":
			return sealInsider(t, b, insider.ReplicationKey, signer, claimed)
		case "own tag only":
			return sealInsider(t, b, insider.ReplicationKey, signer, mine)
		}
		// dc2's tag block (and signature) from the last batch the primary shipped.
		real := stranger.lastMsg(t)
		msg := sealInsider(t, b, insider.ReplicationKey, signer)
		return append(msg[:len(msg)-2-ed25519.SignatureSize], real[len(real)-tagBlock(t, real)-ed25519.SignatureSize:]...)
	}
	for i, how := range []string{"own key, dc2's id", "dc2's tag copied", "own tag only"} {
		msg := forge(how)
		stranger.publish(t, msg)
		// A real write after it: once dc2 serves it, it handled the forgery.
		v := strconv.Itoa(i)
		mustKVPut(t, P, "after", v)
		waitKV(t, S, "after", v)
		if err := kvHas(S, "victim", "1"); err != nil {
			t.Fatalf("insider's batch (%s) applied on dc2: %v", how, err)
		}
	}
	// Refused for what the insider cannot make, the primary's signature,
	// not for a mistake of the forger's (epoch, generation, cluster).
	if n := strings.Count(sec.output(), "failed verification"); n != 3 || !strings.Contains(sec.output(), "bad signature") {
		t.Fatalf("dc2 refused %d batches as failing verification, want 3, each for its signature:\n%s", n, sec.output())
	}
	shipConverged(t, P, S, sec)
}

// sealInsider seals b as the insider can: with the replication key, its
// own signing key and the tags given.
func sealInsider(t *testing.T, b *replication.Batch, key []byte, signer ed25519.PrivateKey, tags ...replication.TagKey) []byte {
	t.Helper()
	msg, err := replication.SealBatchTagged(b, key, nil, signer, tags)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// dc2TagID is the tag id of secondary dc2: public (a hash of its id).
func dc2TagID(t *testing.T) [replication.TagIDLen]byte {
	t.Helper()
	k, err := replication.NewTagKey("dc2", make([]byte, replication.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k.ID
}

// tagBlock is the length of a version 5 batch's tags and their count.
func tagBlock(t *testing.T, msg []byte) int {
	t.Helper()
	if len(msg) < 2+ed25519.SignatureSize || msg[0] != 5 {
		t.Fatalf("not a version 5 batch: % x", msg[:min(len(msg), 8)])
	}
	at := len(msg) - ed25519.SignatureSize - 2
	return 2 + 24*(int(msg[at])<<8|int(msg[at+1]))
}

// lastRemoteWAL is a secondary's last_remote_wal.
func lastRemoteWAL(t *testing.T, s *server) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(jsonString(s.replStatus()["last_remote_wal"]), 10, 64)
	if err != nil {
		t.Fatalf("last_remote_wal of %s: %v", s.name, err)
	}
	return n
}

// lastMsg is the last message of the WAL stream.
func (s *shipStranger) lastMsg(t *testing.T) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, s.subject)
	if err != nil {
		t.Fatal(err)
	}
	return m.Data
}

// publish puts msg on the WAL subject, as anyone on the bus can.
func (s *shipStranger) publish(t *testing.T, msg []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.js.Publish(ctx, s.subject, msg); err != nil {
		t.Fatal(fmt.Errorf("publish on %s: %w", s.subject, err))
	}
}
