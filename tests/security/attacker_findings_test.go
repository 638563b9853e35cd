package security

// One test per bus finding of issue 11 (1, 2, 8 and 10), each with the bus
// attacker doing the one thing the finding is about, against real processes.
// TestAttackerEndToEnd does all of it at once; these say which defence is
// missing when it fails.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Finding 1: a stranger on the bus joins the servers' queue group, takes
// the activate request, redeems the token with its own key, opens the
// bundle (root key, RPC key, dev root token), hands the real secondary its
// bundle so that nothing looks wrong, and forwards writes of its own.
func TestAttackerActivationHijack(t *testing.T) {
	p := newAttackerPair(t, func(a *attacker) {
		a.JoinQueueGroups("coffer")
		a.StartHijack(true)
	})
	a, P := p.a, p.P()
	secret := attackerSecretValue(t, "app")
	if err := kvPut(P, "app", secret); err != nil {
		t.Fatal(err)
	}
	p.enable(t)
	a.JoinQueueGroups(attackerQueueGroupGuesses(p.cluster)[1:]...)
	err := activate(p.sec, p.token)
	a.WaitExploits()

	if l := a.Loot(); len(l) > 0 {
		t.Errorf("the attacker redeemed the activation token with a key of its own and opened %v: the token must never travel on the bus, and the primary must answer only the key the token's holder bound", l)
	}
	a.requireNotFound(t, "activation", attackerTokenSecrets(t, p.token))
	attackerAbsent(t, "the primary", P, a.Tried())
	if err != nil {
		t.Fatalf("activation with the attacker in the servers' queue group: %v", err)
	}
	p.waitKV(t, "app", secret)
	attackerAbsent(t, "the secondary", p.S(), a.Tried())
}

// Finding 2, during activation: forged error replies ("revoked", "token
// used") race every request; activation must wait for the primary's real
// answer and succeed.
func TestAttackerForgedRevokedDuringActivation(t *testing.T) {
	p := newAttackerPair(t, func(a *attacker) { a.StartRacing(attackerRaceForgedError) })
	P := p.P()
	secret := attackerSecretValue(t, "app")
	if err := kvPut(P, "app", secret); err != nil {
		t.Fatal(err)
	}
	p.enable(t)
	if err := activate(p.sec, p.token); err != nil {
		t.Fatalf("activation while forged error replies race every request: %v (only a reply the primary authenticated may refuse an activation)", err)
	}
	p.waitKV(t, "app", secret)
	p.rec.neverRevoked(t, "activation under forged errors")
	if p.a.Raced("activate") == 0 {
		t.Fatal("the attacker raced no activate request: the test proves nothing")
	}
}

// Finding 2, while streaming: once activated, every RPC of the secondary is
// answered with forged "revoked" errors, by an attacker that also takes the
// requests out of every queue group it can join (so its forgery is the only
// answer where a server shares a group with it, and otherwise races the
// primary's); the secondary must never act on them and keep replicating.
func TestAttackerForgedRevokedWhileStreaming(t *testing.T) {
	p := newAttackerPair(t, nil)
	p.activate(t)
	P := p.P()
	p.a.JoinQueueGroups(attackerQueueGroupGuesses(p.cluster)...)
	p.a.StartRacing(attackerRaceForgedError)
	// Three heartbeats raced by the forgery (one every 2 s); a revoked
	// secondary stops sending them, and converge fails at once then.
	p.converge(t, "the attacker raced three heartbeats", func() error {
		if n := p.a.Raced("heartbeat"); n < 3 {
			return fmt.Errorf("%d raced", n)
		}
		return nil
	})
	v := attackerSecretValue(t, "after-forgery")
	if err := kvPut(P, "after-forgery", v); err != nil {
		t.Fatal(err)
	}
	p.waitKV(t, "after-forgery", v)
	p.rec.neverRevoked(t, "streaming under forged errors")
}

// Finding 8, replay: forwarded writes captured on the bus are replayed to
// the primary after it restarts (its replay memory was in memory); they must
// not be applied again.
func TestAttackerForwardReplayAfterRestart(t *testing.T) {
	p := newAttackerPair(t, nil)
	p.activate(t)
	S := p.S()
	first, second := attackerSecretValue(t, "v1"), attackerSecretValue(t, "v2")
	for _, v := range []string{first, second} {
		if err := kvPut(S, "fwd", v); err != nil {
			t.Fatalf("forwarded write through the secondary: %v", err)
		}
	}
	p.waitKV(t, "fwd", second)
	before := p.waitSame(t, "after two forwarded writes")
	if n := p.a.CountRPC("forward"); n < 2 {
		t.Fatalf("the attacker captured %d forward requests, want 2", n)
	}

	restarted := time.Now()
	p.pri.restart()
	p.attackerWaitServing(t, restarted)
	rs := p.a.ReplayRequests(context.Background(), "forward")
	after := p.waitSame(t, "after replaying the forward requests")
	if d := snapshotDiff(before, after); d != "" {
		t.Errorf("replaying %d forward requests captured before the primary restarted changed the data: %s (replies: %s)",
			len(rs), d, attackerReplies(rs))
	}
}

// Finding 8, held back: the attacker's queue members take a forwarded write
// away from the primary, the client is told what happened to it, and then
// the attacker delivers it. A client told the write was not applied must
// never see it applied.
func TestAttackerForwardHeldBack(t *testing.T) {
	p := newAttackerPair(t, nil)
	p.activate(t)
	p.a.JoinQueueGroups(attackerQueueGroupGuesses(p.cluster)...)
	v := attackerSecretValue(t, "held")
	werr := kvPut(p.S(), "held", v)
	held := p.a.HeldCount("forward")
	rs := p.a.ReleaseHeld(context.Background())
	p.a.LeaveQueueGroups()
	t.Logf("the write through the secondary: %v; the attacker held %d forward request(s) and released them: %s", werr, held, attackerReplies(rs))

	// Whatever the release did has happened once a later write has
	// replicated (the primary answered every released request, or the
	// attacker stopped waiting).
	marker := attackerSecretValue(t, "marker")
	if err := kvPut(p.P(), "marker", marker); err != nil {
		t.Fatal(err)
	}
	p.waitKV(t, "marker", marker)
	applied := kvHas(p.P(), "held", v) == nil
	switch {
	case werr == nil && !applied:
		t.Errorf("the client was told its write succeeded, but secret/held is not on the primary")
	case werr != nil && applied && !strings.Contains(strings.ToLower(werr.Error()), "unknown"):
		t.Errorf("the client was told %q, yet secret/held was applied on the primary once the attacker delivered the request it held back: a client whose forwarded write timed out must be told its outcome is unknown, or the late request refused", werr)
	}
}

// Finding 10, predicted ids: the next WAL indexes are public, so the
// attacker publishes junk under the message ids of the next batches first.
// The primary must not take JetStream's "duplicate" for its own batch.
func TestAttackerPredictedMsgIDs(t *testing.T) {
	p := newAttackerPair(t, nil)
	p.activate(t)
	st, err := readReplStatus(p.pri.addr)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	if _, err := fmt.Sscan(jsonString(st["last_wal"]), &last); err != nil {
		t.Fatalf("last_wal of the primary's status: %v in %v", err, st)
	}
	n, err := p.a.PublishPredicted(context.Background(), p.cluster, last, 30)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		key := fmt.Sprintf("after-junk-%d", i)
		v := attackerSecretValue(t, key)
		if err := kvPut(p.P(), key, v); err != nil {
			t.Fatal(err)
		}
		p.waitKVAfter(t, key, v, fmt.Sprintf("%d junk messages under the predicted ids of the next batches", n))
	}
	t.Logf("%d junk messages under predicted ids did not stop replication", n)
}

// Finding 10, deleted stream: the attacker deletes the WAL stream, then
// deletes it again and re-creates it with settings of its own. Shipping
// must resume each time by itself.
func TestAttackerDeletedStream(t *testing.T) {
	p := newAttackerPair(t, nil)
	p.activate(t)
	ctx := context.Background()
	stream, subject := walStream(p.cluster), walSubject(p.cluster)
	steps := []struct {
		what   string
		attack func() error
	}{
		{"deleted", func() error { return p.a.DeleteStream(ctx, stream) }},
		{"re-created by the attacker", func() error {
			if err := p.a.DeleteStream(ctx, stream); err != nil {
				return err
			}
			return p.a.RecreateStream(ctx, stream, subject)
		}},
	}
	for i, s := range steps {
		if err := s.attack(); err != nil {
			t.Fatalf("the WAL stream %s %s: %v", stream, s.what, err)
		}
		key := fmt.Sprintf("after-stream-attack-%d", i)
		v := attackerSecretValue(t, key)
		if err := kvPut(p.P(), key, v); err != nil {
			t.Fatal(err)
		}
		p.waitKVAfter(t, key, v, "the WAL stream "+s.what)
	}
	p.waitSame(t, "after the attacks on the WAL stream")
}

// attackerReplies summarises the outcomes of the attacker's requests.
func attackerReplies(rs []attackerReply) string {
	var out []string
	for _, r := range rs {
		switch {
		case r.Err != nil:
			out = append(out, "error: "+r.Err.Error())
		case len(r.Data) >= 2 && r.Data[0] == 1 && r.Data[1] == 3:
			out = append(out, fmt.Sprintf("plain error %s", r.Data[2:]))
		case len(r.Data) >= 2 && r.Data[0] == 1:
			out = append(out, fmt.Sprintf("sealed reply of kind %d (%d bytes)", r.Data[1], len(r.Data)))
		default:
			out = append(out, fmt.Sprintf("%d bytes", len(r.Data)))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, "; ")
}
