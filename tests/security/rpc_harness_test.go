package security

// What only the RPC attack tests (rpc_*_test.go) need: rpcAttacker, a bus
// attacker made of a plain nats.go connection that knows nothing secret and
// answers RPC requests with forgeries built with coffer's own replication
// package.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/replication"
	"github.com/nats-io/nats.go"
)

// rpcWait bounds the wait for the reply to a request of the attacker's own;
// a passing run never waits for it.
const rpcWait = 30 * time.Second

// rpcAttacker is a plain nats.go client on a NATS server: it captures every
// message on the bus, sits in the queue groups servers used to share, and,
// armed, answers every RPC request at once (before the primary can) with
// forged refusals, garbage and replays of replies it captured.
type rpcAttacker struct {
	nc  *nats.Conn
	key ed25519.PrivateKey

	mu       sync.Mutex
	captured [][]byte
	replies  [][]byte
	requests []*nats.Msg
	answered int
	// onRequest, when set, runs on every RPC request the attacker receives,
	// after its forged answers (armed) went out.
	onRequest func(m *nats.Msg)
	// own holds the inboxes of the attacker's own requests, which it does
	// not race.
	own map[string]bool
}

func rpcStartAttacker(t *testing.T, natsAddr string, armed bool) *rpcAttacker {
	t.Helper()
	nc, err := nats.Connect("nats://"+natsAddr, nats.Name("rpc-attacker"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	a := &rpcAttacker{nc: nc, key: key, own: map[string]bool{}}
	must := func(_ *nats.Subscription, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(nc.Subscribe(">", a.capture))
	must(nc.Subscribe("_INBOX.>", a.captureReply))
	for _, group := range []string{"coffer", "coffer-rpc", "rpc"} {
		must(nc.QueueSubscribe("coffer.*.rpc.>", group, a.request(false)))
	}
	if armed {
		must(nc.Subscribe("coffer.*.rpc.>", a.request(true)))
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *rpcAttacker) capture(m *nats.Msg) {
	a.mu.Lock()
	a.captured = append(a.captured, bytes.Clone(m.Data))
	a.mu.Unlock()
}

func (a *rpcAttacker) captureReply(m *nats.Msg) {
	a.mu.Lock()
	if len(a.replies) < 64 && len(m.Data) > 0 {
		a.replies = append(a.replies, bytes.Clone(m.Data))
	}
	a.mu.Unlock()
}

// request is the handler of an RPC subscription: armed, it answers first.
func (a *rpcAttacker) request(armed bool) nats.MsgHandler {
	return func(m *nats.Msg) {
		a.mu.Lock()
		a.requests = append(a.requests, m)
		replays := slices.Clone(a.replies)
		hook, own := a.onRequest, a.own[m.Reply]
		a.mu.Unlock()
		if own {
			return
		}
		if armed && m.Reply != "" {
			for _, r := range append(a.forgeries(m), replays...) {
				_ = a.nc.Publish(m.Reply, r)
			}
			_ = a.nc.Flush()
			a.mu.Lock()
			a.answered++
			a.mu.Unlock()
		}
		if hook != nil {
			hook(m)
		}
	}
}

// rpcAnswered is how many requests the armed attacker answered first.
func (a *rpcAttacker) rpcAnswered() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.answered
}

// holds reports which of secrets the capture holds, raw or in base64.
func (a *rpcAttacker) holds(secrets map[string][]byte) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var found []string
	for name, s := range secrets {
		forms := [][]byte{s, []byte(base64.StdEncoding.EncodeToString(s)), []byte(base64.RawURLEncoding.EncodeToString(s)),
			[]byte(base64.RawStdEncoding.EncodeToString(s)), []byte(base64.URLEncoding.EncodeToString(s))}
		for _, m := range a.captured {
			if slices.ContainsFunc(forms, func(f []byte) bool { return len(f) > 0 && bytes.Contains(m, f) }) {
				found = append(found, name)
				break
			}
		}
	}
	slices.Sort(found)
	return found
}

// forgeries are the armed attacker's answers to request m, sent before the
// primary's: refusals in clear and signed with its own key, a bundle of its
// own making sealed to the key in an activation request, garbage, nothing.
func (a *rpcAttacker) forgeries(m *nats.Msg) [][]byte {
	revoked := &replication.RPCError{Code: replication.CodeRevoked, Msg: "revoked (forged by the attacker)"}
	out := [][]byte{replication.PlainErrorReply(revoked), []byte("garbage"), nil}
	if !strings.HasSuffix(m.Subject, "."+replication.MethodActivate) {
		signed, _ := replication.SignErrorReply(a.key, m.Data, revoked)
		return append(out, signed)
	}
	used := &replication.RPCError{Code: replication.CodeTokenUsed, Msg: "already used (forged by the attacker)"}
	signed, _ := replication.SignActivateRefusal(a.key, replication.Digest(m.Data), used)
	out = append(out, signed, []byte(`{"v":1,"code":"token_used","error":"already used (forged by the attacker)"}`))
	req, err := replication.ParseActivateRequest(m.Data)
	if err != nil {
		return out
	}
	// A bundle of the attacker's making: its own root key, sealed to the
	// secondary's activation key; the secondary must not install it.
	own := make([]byte, 32)
	_, _ = rand.Read(own)
	fake := &replication.Bundle{PrimaryClusterID: strings.Split(m.Subject, ".")[1], SecondaryID: req.SecondaryID,
		RootKey: own, ReplicationKey: own, RPCKey: own, SigningPublicKey: a.key.Public().(ed25519.PublicKey),
		Stream: "COFFER_WAL_X", Subject: "coffer.x.wal"}
	if sealed, err := replication.SealBundle(fake, req.PublicKey); err == nil {
		if reply, err := replication.SignActivateReply(a.key, req.Digest, sealed); err == nil {
			out = append(out, reply)
		}
		legacy, _ := json.Marshal(map[string]any{"v": 1, "bundle": sealed})
		out = append(out, legacy)
	}
	return out
}

// rpcAsk sends req on subject with an inbox of its own and returns the first
// reply (nil when none comes within rpcWait).
func (a *rpcAttacker) rpcAsk(subject string, req []byte) []byte {
	inbox := nats.NewInbox()
	a.mu.Lock()
	a.own[inbox] = true
	a.mu.Unlock()
	sub, err := a.nc.SubscribeSync(inbox)
	if err != nil {
		return nil
	}
	defer sub.Unsubscribe()
	if a.nc.PublishRequest(subject, inbox, req) != nil {
		return nil
	}
	m, err := sub.NextMsg(rpcWait)
	if err != nil {
		return nil
	}
	return m.Data
}
