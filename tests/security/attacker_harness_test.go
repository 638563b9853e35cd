package security

// The bus attacker of issue 11 and docs/security.md: a plain nats.go client
// that knows a NATS URL and nothing secret. It
//
//   - subscribes to ">" and records every message it sees (subject, reply
//     subject, headers, data) in its capture;
//   - joins the queue groups servers use or might use on the RPC subjects
//     coffer.<cluster>.rpc.<method>, with many members each, so that it
//     takes most requests sent to a group it shares with a server, and holds
//     what it takes;
//   - races every RPC request it sees with replies of its own: garbage,
//     replays of replies it captured, forged error replies ("revoked");
//   - replays, on demand, every captured request, every held request and
//     every captured WAL batch (with and without its Nats-Msg-Id);
//   - calls the JetStream API: deletes and re-creates the WAL stream,
//     publishes junk under the message ids it predicts from the public WAL
//     index;
//   - scans its capture for byte strings in raw, hex, base64 and base64url
//     form, also inside base64 and deflate layers.
//
// Each behaviour starts and stops on its own. The attacker connects with
// NoEcho: its own messages are neither captured nor raced by itself, and a
// request it sends to a group it belongs to goes to another member.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// attackerQueueMembers is how many subscriptions the attacker puts in each
// queue group it joins: NATS picks one member per message at random, so a
// server alone in a group with them gets about one request in this many.
const attackerQueueMembers = 200

// attackerRPCWildcard matches every RPC subject of every cluster.
const attackerRPCWildcard = "coffer.*.rpc.*"

// attackerMsg is one captured message.
type attackerMsg struct {
	At      time.Time
	Subject string
	Reply   string
	Header  nats.Header
	Data    []byte
}

// attackerRaceKind is a kind of reply the attacker races a request with.
type attackerRaceKind int

const (
	// attackerRaceGarbage: random bytes, and random bytes behind a header
	// that looks like a sealed reply.
	attackerRaceGarbage attackerRaceKind = iota
	// attackerRaceReplay: replies captured earlier to requests of the same
	// method (and one of another method).
	attackerRaceReplay
	// attackerRaceForgedError: error replies with code "revoked",
	// "unknown_secondary" and "token_used", in clear, in every format the
	// protocol has for errors (replication/envelope.go, ActivateReply).
	attackerRaceForgedError
)

// attackerAllRaces is every kind of racing reply.
var attackerAllRaces = []attackerRaceKind{attackerRaceGarbage, attackerRaceReplay, attackerRaceForgedError}

// attackerReply is the outcome of one request the attacker sent.
type attackerReply struct {
	Subject string
	Data    []byte // nil when Err
	Err     error
}

// attacker is the bus attacker. Its methods are safe for concurrent use.
type attacker struct {
	t   testing.TB
	url string
	nc  *nats.Conn
	js  jetstream.JetStream

	mu        sync.Mutex
	capture   []attackerMsg
	inboxes   map[string]string   // reply subject of an RPC request seen -> method
	replies   map[string][][]byte // method -> replies captured to others' requests
	racing    []attackerRaceKind  // nil: not racing
	raceSeq   int
	raced     map[string]int // method -> requests raced
	queueSubs []*nats.Subscription
	held      []attackerMsg   // requests the attacker's queue members took
	stolen    map[string]bool // reply subjects of held requests
	hijacking bool
	stealthy  bool            // leave the queue groups after a hijack
	hijacked  map[string]bool // reply subjects of activate requests already exploited
	loot      []attackerLoot  // what exploits obtained
	tried     []string        // paths the attacker tried to write
	log       []string        // what the attacker did, for failure messages
	closed    bool            // set at cleanup: no new exploit goroutine

	wg sync.WaitGroup // the exploit goroutines
}

// newAttacker connects to natsURL and starts capturing. It disconnects at
// cleanup. It reconnects forever: the NATS server may be restarted under it.
func newAttacker(t testing.TB, natsURL string) *attacker {
	t.Helper()
	a := &attacker{
		t: t, url: natsURL,
		inboxes: map[string]string{}, replies: map[string][][]byte{},
		raced: map[string]int{}, stolen: map[string]bool{}, hijacked: map[string]bool{},
	}
	nc, err := nats.Connect(natsURL, nats.Name("attacker"), nats.NoEcho(),
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("attacker: connect to %s without credentials: %v", natsURL, err)
	}
	t.Cleanup(func() {
		a.mu.Lock()
		a.closed = true
		a.mu.Unlock()
		nc.Close() // the exploits' requests fail at once
		a.wg.Wait()
	})
	a.nc = nc
	if a.js, err = jetstream.New(nc); err != nil {
		t.Fatalf("attacker: jetstream: %v", err)
	}
	sub, err := nc.Subscribe(">", a.onMsg)
	if err != nil {
		t.Fatalf("attacker: subscribe >: %v", err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatalf("attacker: pending limits: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("attacker: flush: %v", err)
	}
	return a
}

// attackerRPCMethod returns the method of an RPC subject coffer.<c>.rpc.<m>.
func attackerRPCMethod(subject string) (string, bool) {
	p := strings.Split(subject, ".")
	if len(p) == 4 && p[0] == "coffer" && p[2] == "rpc" {
		return p[3], true
	}
	return "", false
}

// attackerIsWAL reports whether subject is a WAL subject coffer.<c>.wal.
func attackerIsWAL(subject string) bool {
	p := strings.Split(subject, ".")
	return len(p) == 3 && p[0] == "coffer" && p[2] == "wal"
}

func attackerCopy(m *nats.Msg) attackerMsg {
	h := nats.Header{}
	for k, v := range m.Header {
		h[k] = append([]string(nil), v...)
	}
	return attackerMsg{At: time.Now(), Subject: m.Subject, Reply: m.Reply, Header: h, Data: bytes.Clone(m.Data)}
}

// onMsg records every message and races RPC requests.
func (a *attacker) onMsg(m *nats.Msg) {
	msg := attackerCopy(m)
	method, rpc := attackerRPCMethod(m.Subject)
	request := rpc && m.Reply != ""
	a.mu.Lock()
	a.capture = append(a.capture, msg)
	if request {
		a.inboxes[m.Reply] = method
	} else if meth, ok := a.inboxes[m.Subject]; ok {
		a.replies[meth] = append(a.replies[meth], msg.Data)
	}
	kinds := a.racing
	hijack := a.hijacking && !a.closed && request && method == "activate" && !a.hijacked[m.Reply]
	if hijack {
		a.hijacked[m.Reply] = true
		a.wg.Add(1)
	}
	a.mu.Unlock()
	if request && kinds != nil {
		a.race(method, m.Reply, kinds)
	}
	if hijack {
		go func() {
			defer a.wg.Done()
			a.hijackActivation(msg)
		}()
	}
}

// note records what the attacker did.
func (a *attacker) note(format string, args ...any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.log = append(a.log, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
}

// Log returns what the attacker did, one line each.
func (a *attacker) Log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.log, "\n")
}

// Messages returns a copy of the capture.
func (a *attacker) Messages() []attackerMsg {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]attackerMsg(nil), a.capture...)
}

// CountRPC returns how many requests of method the capture holds.
func (a *attacker) CountRPC(method string) int {
	n := 0
	for _, m := range a.Messages() {
		if meth, ok := attackerRPCMethod(m.Subject); ok && meth == method && m.Reply != "" {
			n++
		}
	}
	return n
}

// JoinQueueGroups subscribes attackerQueueMembers members in each group to
// every RPC subject. A name NATS refuses is noted and skipped.
func (a *attacker) JoinQueueGroups(groups ...string) {
	a.t.Helper()
	var subs []*nats.Subscription
	for _, g := range groups {
		for range attackerQueueMembers {
			sub, err := a.nc.QueueSubscribe(attackerRPCWildcard, g, a.onStolen)
			if err != nil {
				a.note("queue group %q refused: %v", g, err)
				break
			}
			if err := sub.SetPendingLimits(-1, -1); err != nil {
				a.t.Fatalf("attacker: pending limits: %v", err)
			}
			subs = append(subs, sub)
		}
	}
	if err := a.nc.Flush(); err != nil {
		a.t.Fatalf("attacker: flush: %v", err)
	}
	a.mu.Lock()
	a.queueSubs = append(a.queueSubs, subs...)
	a.mu.Unlock()
	a.note("joined queue groups %q on %s, %d members each", groups, attackerRPCWildcard, attackerQueueMembers)
}

// attackerQueueGroupGuesses are the queue group names a server of cluster
// could use: the shared "coffer" of today, and per-cluster variants.
func attackerQueueGroupGuesses(cluster string) []string {
	return []string{"coffer", "coffer-" + cluster, "coffer_" + cluster, "coffer." + cluster, cluster}
}

// LeaveQueueGroups unsubscribes every queue member.
func (a *attacker) LeaveQueueGroups() {
	a.mu.Lock()
	subs := a.queueSubs
	a.queueSubs = nil
	a.mu.Unlock()
	for _, s := range subs {
		_ = s.Unsubscribe()
	}
	_ = a.nc.Flush()
}

// onStolen holds a request one of the attacker's queue members took: it
// answers nothing (the racing replies sent from the ">" copy aside).
func (a *attacker) onStolen(m *nats.Msg) {
	msg := attackerCopy(m)
	a.mu.Lock()
	a.held = append(a.held, msg)
	if m.Reply != "" {
		a.stolen[m.Reply] = true
	}
	a.mu.Unlock()
}

// Held returns the requests the attacker's queue members took.
func (a *attacker) Held() []attackerMsg {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]attackerMsg(nil), a.held...)
}

// HeldCount returns how many requests of method the attacker holds.
func (a *attacker) HeldCount(method string) int {
	n := 0
	for _, m := range a.Held() {
		if meth, _ := attackerRPCMethod(m.Subject); meth == method {
			n++
		}
	}
	return n
}

// StartRacing makes the attacker answer every RPC request it sees with one
// reply of each kind, before the real responder can: the kind that goes
// first rotates from one request to the next.
func (a *attacker) StartRacing(kinds ...attackerRaceKind) {
	a.mu.Lock()
	a.racing = append([]attackerRaceKind{}, kinds...)
	a.mu.Unlock()
	a.note("racing every RPC request with %v", kinds)
}

// StopRacing stops answering requests.
func (a *attacker) StopRacing() {
	a.mu.Lock()
	a.racing = nil
	a.mu.Unlock()
	a.note("stopped racing")
}

// Raced returns how many requests of method the attacker raced.
func (a *attacker) Raced(method string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.raced[method]
}

func (a *attacker) race(method, reply string, kinds []attackerRaceKind) {
	a.mu.Lock()
	a.raceSeq++
	first := a.raceSeq
	a.raced[method]++
	var replays [][]byte
	own := a.replies[method]
	for i := max(0, len(own)-2); i < len(own); i++ {
		replays = append(replays, own[i])
	}
	for meth, rs := range a.replies {
		if meth != method && len(rs) > 0 {
			replays = append(replays, rs[len(rs)-1])
			break
		}
	}
	a.mu.Unlock()
	var out [][]byte
	for i := range kinds {
		switch kinds[(first+i)%len(kinds)] {
		case attackerRaceGarbage:
			out = append(out, attackerGarbage(64), append([]byte{1, 1}, attackerGarbage(60)...))
		case attackerRaceReplay:
			out = append(out, replays...)
		case attackerRaceForgedError:
			out = append(out, attackerForgedErrors(method)...)
		}
	}
	for _, d := range out {
		_ = a.nc.Publish(reply, d)
	}
}

func attackerGarbage(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// attackerForgedErrors are error replies anyone can build: the envelope's
// plain error (version 1, kind 3, JSON RPCError) with the codes that stop a
// secondary, and the JSON error of an activate reply. Their text says they
// are forged, for the reader of a failure only. The format the method
// expects goes first, as the first reply is the one a careless requester
// takes.
func attackerForgedErrors(method string) [][]byte {
	var envelope, plain [][]byte
	for _, code := range []string{"revoked", "unknown_secondary"} {
		body := fmt.Sprintf(`{"v":1,"code":%q,"error":"this secondary was revoked (forged by the bus attacker)"}`, code)
		envelope = append(envelope, append([]byte{1, 3}, body...))
	}
	for _, code := range []string{"revoked", "token_used"} {
		plain = append(plain, fmt.Appendf(nil, `{"v":1,"code":%q,"error":"refused (forged by the bus attacker)"}`, code))
	}
	if method == "activate" {
		return append(plain, envelope...)
	}
	return append(envelope, plain...)
}

// request sends data on subject and waits for the first reply until ctx
// ends. ctx must have a deadline.
func (a *attacker) request(ctx context.Context, subject string, data []byte) attackerReply {
	m, err := a.nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		return attackerReply{Subject: subject, Err: err}
	}
	return attackerReply{Subject: subject, Data: m.Data}
}

// attackerReplayWait bounds the wait for the reply to one replayed request:
// a server may well answer nothing to what it refuses.
const attackerReplayWait = 2 * time.Second

// requestAll sends every message as a request, 16 at a time, and returns
// the outcomes in order.
func (a *attacker) requestAll(ctx context.Context, msgs []attackerMsg) []attackerReply {
	out := make([]attackerReply, len(msgs))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, m := range msgs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rctx, cancel := context.WithTimeout(ctx, attackerReplayWait)
			defer cancel()
			out[i] = a.request(rctx, m.Subject, m.Data)
		}()
	}
	wg.Wait()
	return out
}

// ReplayRequests sends again every distinct RPC request of the capture (of
// the given methods, or all), each with a reply subject of the attacker's,
// and returns the replies.
func (a *attacker) ReplayRequests(ctx context.Context, methods ...string) []attackerReply {
	seen := map[[32]byte]bool{}
	var msgs []attackerMsg
	for _, m := range a.Messages() {
		meth, ok := attackerRPCMethod(m.Subject)
		if !ok || m.Reply == "" || (len(methods) > 0 && !attackerContains(methods, meth)) {
			continue
		}
		if h := sha256.Sum256(append([]byte(m.Subject+"\x00"), m.Data...)); !seen[h] {
			seen[h] = true
			msgs = append(msgs, m)
		}
	}
	a.note("replaying %d captured requests (methods %q)", len(msgs), methods)
	return a.requestAll(ctx, msgs)
}

// ReleaseHeld sends the distinct requests the attacker holds (members of
// several groups may hold copies of one) to their subjects, as requests of
// its own, and forgets them.
func (a *attacker) ReleaseHeld(ctx context.Context) []attackerReply {
	a.mu.Lock()
	held := a.held
	a.held = nil
	a.mu.Unlock()
	seen := map[[32]byte]bool{}
	var msgs []attackerMsg
	for _, m := range held {
		if h := sha256.Sum256(append([]byte(m.Subject+"\x00"), m.Data...)); !seen[h] {
			seen[h] = true
			msgs = append(msgs, m)
		}
	}
	a.note("releasing %d held requests", len(msgs))
	return a.requestAll(ctx, msgs)
}

func attackerContains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}

// ReplayWAL publishes every distinct WAL batch of the capture to its WAL
// subject again through JetStream, keeping its Nats-Msg-Id or not. It
// returns how many JetStream stored and how many it called duplicates.
func (a *attacker) ReplayWAL(ctx context.Context, keepID bool) (stored, dups int, errs []error) {
	seen := map[[32]byte]bool{}
	for _, m := range a.Messages() {
		if !attackerIsWAL(m.Subject) {
			continue
		}
		h := sha256.Sum256(m.Data)
		if seen[h] {
			continue
		}
		seen[h] = true
		out := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: nats.Header{}}
		for k, v := range m.Header {
			if keepID || k != jetstream.MsgIDHeader {
				out.Header[k] = append([]string(nil), v...)
			}
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ack, err := a.js.PublishMsg(pctx, out)
		cancel()
		switch {
		case err != nil:
			errs = append(errs, err)
		case ack.Duplicate:
			dups++
		default:
			stored++
		}
	}
	a.note("replayed %d WAL batches (keep Nats-Msg-Id %v): %d stored, %d duplicates, %d errors", len(seen), keepID, stored, dups, len(errs))
	return stored, dups, errs
}

// DeleteStream deletes a JetStream stream.
func (a *attacker) DeleteStream(ctx context.Context, name string) error {
	err := a.js.DeleteStream(ctx, name)
	a.note("deleted stream %s: %v", name, err)
	return err
}

// RecreateStream creates stream name on subject with the attacker's own
// settings (memory storage, at most 1,000 messages), as if it had been
// there all along.
func (a *attacker) RecreateStream(ctx context.Context, name, subject string) error {
	_, err := a.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: name, Subjects: []string{subject}, Storage: jetstream.MemoryStorage,
		MaxMsgs: 1000, Duplicates: 2 * time.Minute,
	})
	a.note("re-created stream %s on %s: %v", name, subject, err)
	return err
}

// PublishPredicted publishes junk on the WAL subject of cluster under every
// message id <cluster>-<first>-<last> with after < first <= last <=
// after+span: the ids the shipper would give the next batches. It returns
// how many were stored.
func (a *attacker) PublishPredicted(ctx context.Context, cluster string, after uint64, span int) (int, error) {
	subject := walSubject(cluster)
	n := 0
	for first := after + 1; first <= after+uint64(span); first++ {
		for last := first; last <= after+uint64(span); last++ {
			id := fmt.Sprintf("%s-%d-%d", cluster, first, last)
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := a.js.Publish(pctx, subject, append([]byte{2}, attackerGarbage(120)...), jetstream.WithMsgID(id))
			cancel()
			if err != nil {
				a.note("junk under predicted id %s: %v", id, err)
				return n, fmt.Errorf("publish junk under %s: %w", id, err)
			}
			n++
		}
	}
	a.note("published %d junk messages under predicted ids %s-%d-%d .. -%d", n, cluster, after+1, after+1, after+uint64(span))
	return n, nil
}
