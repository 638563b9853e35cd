package secondary_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/secondary"
	"github.com/nats-io/nats.go"
)

// busAttacker is a plain nats.go client on the primary's bus. It knows
// nothing secret: it signs with a key of its own. It captures everything on
// the bus, joins the RPC subjects plainly and in queue groups, and, when
// racing, answers every request at once (before the primary can) with
// forged refusals, garbage and replays of replies it captured earlier.
type busAttacker struct {
	nc  *nats.Conn
	key ed25519.PrivateKey

	mu       sync.Mutex
	captured [][]byte    // every message's data it saw, on any subject
	replies  [][]byte    // replies seen on inboxes, replayed to later requests
	requests []*nats.Msg // requests received by its plain RPC subscription
	answered atomic.Int64
}

func startBusAttacker(t *testing.T, b *bus.Bus, cluster string, race bool) *busAttacker {
	t.Helper()
	nc, err := nats.Connect(b.ClientURL(), nats.Name("attacker"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	a := &busAttacker{nc: nc, key: key}
	rpc := "coffer." + cluster + ".rpc.>"
	subs := []func() (*nats.Subscription, error){
		func() (*nats.Subscription, error) { return nc.Subscribe(">", a.capture) },
		func() (*nats.Subscription, error) { return nc.Subscribe("_INBOX.>", a.captureReply) },
		// Every queue group a server might use: the fixed one of old, and
		// guesses at per-cluster names.
		func() (*nats.Subscription, error) { return nc.QueueSubscribe(rpc, "coffer", a.capture) },
		func() (*nats.Subscription, error) { return nc.QueueSubscribe(rpc, "coffer-"+cluster, a.capture) },
		func() (*nats.Subscription, error) { return nc.QueueSubscribe(rpc, cluster, a.capture) },
	}
	if race {
		subs = append(subs, func() (*nats.Subscription, error) { return nc.Subscribe(rpc, a.answer) })
	}
	for _, sub := range subs {
		if _, err := sub(); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *busAttacker) capture(m *nats.Msg) {
	a.mu.Lock()
	a.captured = append(a.captured, bytes.Clone(m.Data))
	a.mu.Unlock()
}

func (a *busAttacker) captureReply(m *nats.Msg) {
	a.mu.Lock()
	if len(a.replies) < 64 {
		a.replies = append(a.replies, bytes.Clone(m.Data))
	}
	a.mu.Unlock()
}

// answer races the primary: forged refusals first, then garbage and replays.
func (a *busAttacker) answer(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	a.mu.Lock()
	a.requests = append(a.requests, m)
	replays := slices.Clone(a.replies)
	a.mu.Unlock()
	revoked := &replication.RPCError{Code: replication.CodeRevoked, Msg: "you are revoked (forged)"}
	forged := [][]byte{replication.PlainErrorReply(revoked)}
	if strings.HasSuffix(m.Subject, ".activate") {
		used := &replication.RPCError{Code: replication.CodeTokenUsed, Msg: "already used (forged)"}
		s, _ := replication.SignActivateRefusal(a.key, replication.Digest(m.Data), used)
		forged = append(forged, s, []byte(`{"v":1,"code":"token_used","error":"already used (forged)"}`))
	} else {
		s, _ := replication.SignErrorReply(a.key, m.Data, revoked)
		forged = append(forged, s)
	}
	forged = append(forged, []byte("garbage"), nil)
	for _, r := range append(forged, replays...) {
		_ = a.nc.Publish(m.Reply, r)
	}
	_ = a.nc.Flush()
	a.answered.Add(1)
}

// holds reports which of secrets the capture holds, in clear or in base64.
func (a *busAttacker) holds(secrets map[string][]byte) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var found []string
	for name, s := range secrets {
		forms := [][]byte{s, []byte(base64.StdEncoding.EncodeToString(s)), []byte(base64.RawURLEncoding.EncodeToString(s))}
		for _, m := range a.captured {
			if slices.ContainsFunc(forms, func(f []byte) bool { return bytes.Contains(m, f) }) {
				found = append(found, name)
				break
			}
		}
	}
	return found
}

// TestAttackerRacingEveryReply: a stranger answers every RPC first with a
// forged "revoked" (in clear, and signed with its own key), garbage and
// replays. Activation succeeds, the secondary keeps streaming and
// forwarding, and never shows "revoked".
func TestAttackerRacingEveryReply(t *testing.T) {
	b := embeddedBus(t)
	c := newCluster(t)
	clk := &clock{}
	cfg := primaryConfig(t, c, b, "dc1", clk)
	cfg.Forward = func(_ context.Context, _ string, payload []byte) ([]byte, *replication.RPCError) {
		return append([]byte("applied:"), payload...), nil
	}
	ps := startPrimaryWith(t, c, cfg, clk)
	ps.put(t, "logical/a/before", "1")
	atk := startBusAttacker(t, b, "dc1", true)

	ss := newSecondarySide(t, "dc2")
	tok := ps.token(t, "dc2")
	ss.activate(t, tok)
	converge(t, ps, ss)

	// The activation request replayed once the secondary streams: the same
	// answer, and its consumer is left alone.
	claims, err := replication.ParseToken(tok, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the secondary streams", func() bool { return ss.s.Status().State == secondary.StateStreaming })
	created := consumerCreated(t, b, "dc2")
	atk.mu.Lock()
	var activation []byte
	for _, m := range atk.requests {
		if strings.HasSuffix(m.Subject, ".activate") {
			activation = m.Data
		}
	}
	atk.mu.Unlock()
	if _, err := replication.OpenActivateReply(atk.ask(t, activation, claims.PublicKey), activation, claims.PublicKey); err != nil {
		t.Fatalf("the replayed activation request: %v, want the same bundle", err)
	}
	if again := consumerCreated(t, b, "dc2"); !again.Equal(created) {
		t.Fatalf("a replayed activation request re-created the secondary's consumer (%s, was %s)", again, created)
	}
	start := atk.answered.Load()
	for i := range 5 {
		ps.put(t, "logical/a/during", string(rune('a'+i)))
		out, err := ss.s.Forward(context.Background(), []byte("w"))
		if err != nil || string(out) != "applied:w" {
			t.Fatalf("forward with the attacker racing: %q, %v", out, err)
		}
	}
	// Heartbeats go on, each answered first by the attacker.
	eventually(t, 20*time.Second, "the attacker raced 20 more RPCs", func() bool { return atk.answered.Load() >= start+20 })
	ps.put(t, "logical/a/after", "2")
	converge(t, ps, ss)
	if st := ss.s.Status(); st.State != secondary.StateStreaming || !st.Connected {
		t.Fatalf("status with the attacker racing: %+v", st)
	}
	if slices.Contains(ss.seen(), secondary.StateRevoked) {
		t.Fatalf("the secondary showed revoked on forged replies: states %v", ss.seen())
	}

	// The real revocation still ends it: signed by the primary.
	if err := ps.p.RevokeSecondary(context.Background(), "dc2"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the real revocation is obeyed", func() bool { return ss.s.Status().State == secondary.StateRevoked })
}

// TestAttackerCannotRedeemActivation is the hijack of finding 1 on today's
// protocol: the attacker sits in every queue group of the activate subject
// and sees the request, yet learns neither the token nor its secret nor any
// bundle key, cannot make the primary answer a key of its own, and the
// secondary activates with the real primary.
func TestAttackerCannotRedeemActivation(t *testing.T) {
	ctx := context.Background()
	b := embeddedBus(t)
	ps := startPrimary(t, b, "dc1", bus.StreamConfig{})
	atk := startBusAttacker(t, b, "dc1", true)
	tok := ps.token(t, "dc2")
	claims, err := replication.ParseToken(tok, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	// Before the secondary sends anything: a request with a guessed token
	// id, then the right id, both MACed with a secret of its own.
	mine, _ := replication.NewActivationKey()
	guess := *claims
	guess.ID, guess.Secret = "guessed-jti", replication.NewActivationSecret()
	if bundle := atk.redeem(t, &guess, mine); bundle != nil {
		t.Fatal("the primary answered a guessed token id with a bundle")
	}
	guess.ID = claims.ID
	if bundle := atk.redeem(t, &guess, mine); bundle != nil {
		t.Fatal("the primary answered a request without the token's secret with a bundle")
	}

	ss := newSecondarySide(t, "dc2")
	s, bundle, err := secondary.Activate(ctx, ss.cfg, tok, "")
	if err != nil {
		t.Fatalf("activation with the attacker racing: %v", err)
	}
	defer s.Stop()

	// After: the captured request, replayed, gets the real answer, sealed to
	// the secondary's key; with the attacker's key swapped in, a refusal.
	// The attacker records what it sees in its subscription's callback,
	// which may run after the secondary had its answer: wait for the
	// secondary's request, the second with the token's id after the
	// attacker's own guess.
	var real []byte
	eventually(t, 10*time.Second, "the attacker saw the activation request", func() bool {
		atk.mu.Lock()
		defer atk.mu.Unlock()
		n := 0
		for _, m := range atk.requests {
			if strings.HasSuffix(m.Subject, ".activate") && bytes.Contains(m.Data, []byte(claims.ID)) {
				real, n = m.Data, n+1
			}
		}
		return n >= 2
	})
	sealed, err := replication.OpenActivateReply(atk.ask(t, real, claims.PublicKey), real, claims.PublicKey)
	if err != nil {
		t.Fatalf("the replayed request got no answer: %v", err)
	}
	if _, err := replication.OpenBundle(sealed, mine); !errors.Is(err, replication.ErrDecrypt) {
		t.Fatalf("the attacker opened the replayed answer: %v", err)
	}
	swapped := bytes.Clone(real)
	at := bytes.Index(swapped, []byte(claims.ID)) + len(claims.ID)
	copy(swapped[at:], mine.PublicKey().Bytes())
	var refusal *replication.RPCError
	if _, err := replication.OpenActivateReply(atk.ask(t, swapped, claims.PublicKey), swapped, claims.PublicKey); !errors.As(err, &refusal) {
		t.Fatalf("the request with the attacker's key: %v, want a refusal", err)
	}

	secrets := map[string][]byte{
		"token": []byte(tok), "token claims": []byte(strings.Split(tok, ".")[1]), "activation secret": claims.Secret,
		"root key": bundle.RootKey, "replication key": bundle.ReplicationKey, "rpc key": bundle.RPCKey,
	}
	if found := atk.holds(secrets); len(found) > 0 {
		t.Fatalf("the attacker's capture holds %v", found)
	}
	if st := ps.p.Status(); len(st.Secondaries) != 1 || st.Secondaries[0].State != "active" {
		t.Fatalf("primary registry: %+v", st.Secondaries)
	}
}

// redeem sends an activation request for c with the attacker's key mine and
// returns the bundle if the primary's signed answer is one (nil for a
// refusal).
func (a *busAttacker) redeem(t *testing.T, c *replication.TokenClaims, mine *ecdh.PrivateKey) *replication.Bundle {
	t.Helper()
	req, err := replication.SealActivateRequest(c, mine.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := replication.OpenActivateReply(a.ask(t, req, c.PublicKey), req, c.PublicKey)
	var refusal *replication.RPCError
	if errors.As(err, &refusal) {
		t.Logf("the primary refused the attacker: %v", refusal)
		return nil
	}
	bundle, err := replication.OpenBundle(sealed, mine)
	if err != nil {
		t.Fatalf("the primary's bundle does not open with the key it was sealed to: %v", err)
	}
	return bundle
}

// ask sends an activation request and returns the primary's signed answer
// to it (its own racing subscription answers too: those are skipped).
func (a *busAttacker) ask(t *testing.T, req []byte, pub ed25519.PublicKey) []byte {
	t.Helper()
	inbox := nats.NewInbox()
	sub, err := a.nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := a.nc.PublishRequest(replication.RPCSubject("dc1", replication.MethodActivate), inbox, req); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("no signed answer from the primary: %v", err)
		}
		_, err = replication.OpenActivateReply(m.Data, req, pub)
		var refusal *replication.RPCError
		if err == nil || (errors.As(err, &refusal) && refusal.Authenticated) {
			return m.Data
		}
	}
}

// consumerCreated is the creation time of secondary id's durable consumer.
func consumerCreated(t *testing.T, b *bus.Bus, id string) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var created time.Time
	testutil.Eventually(t, 10*time.Second, "the consumer of "+id+" exists", func() error {
		c, err := b.JetStream().Consumer(ctx, replication.StreamName("dc1"), replication.ConsumerName(id))
		if err == nil {
			created = c.CachedInfo().Created
		}
		return err
	})
	return created
}
