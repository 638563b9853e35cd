package security

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/replication"
	"github.com/nats-io/nats.go"
)

// TestRPCActivationHijack is finding 1 of issue 11, as it was reproduced
// against dev servers: a plain NATS client joins the queue group of the
// activate subject (and subscribes plainly), takes the activation token from
// the request, redeems it with a key of its own, and answers the secondary
// with forgeries. Now the request carries no token and no secret, the
// primary answers only the token's holder and signs its answer, so the
// secondary activates with the real primary, the attacker opens no bundle,
// and its capture of the whole bus holds neither the token, nor its secret,
// nor the primary's unseal key, nor the plaintext of a secret.
func TestRPCActivationHijack(t *testing.T) {
	pri := startDevServer(t, serverOpts{RootID: "root-dc1"})
	sec := startDevServer(t, serverOpts{RootID: "root-dc2"})
	password := "s3cr3t-" + rand.Text()
	if err := kvPut(pri.rootClient(), "app", password); err != nil {
		t.Fatal(err)
	}
	enablePrimary(t, pri)
	tok := secondaryToken(t, pri, "dc2")

	atk := rpcStartAttacker(t, pri.natsAddr, true)
	h := &rpcHijacker{atk: atk}
	atk.mu.Lock()
	atk.onRequest = h.onRequest
	atk.mu.Unlock()

	if err := activate(sec, tok); err != nil {
		t.Fatalf("activation with the attacker on the bus: %v", err)
	}
	S := sec.client(pri.rootID) // the primary's dev root token comes with the bundle
	waitKV(t, S, "app", password)
	h.wg.Wait()

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tries == 0 {
		t.Fatal("the attacker never saw an activation request")
	}
	if h.stolenToken != "" || h.openedBundle {
		t.Fatalf("hijacked: token taken from the bus %v, a bundle opened with the attacker's key %v", h.stolenToken != "", h.openedBundle)
	}
	claims := rpcClaims(t, tok)
	secret, err := base64.StdEncoding.DecodeString(claims.Secret)
	if err != nil || len(secret) != replication.ActivationSecretSize {
		t.Fatalf("the token's activation secret %q: %v", claims.Secret, err)
	}
	found := atk.holds(map[string][]byte{
		"the activation token":         []byte(tok),
		"the token's claims":           []byte(strings.Split(tok, ".")[1]),
		"the token's signature":        []byte(strings.Split(tok, ".")[2]),
		"the activation secret":        secret,
		"the primary's unseal key":     pri.devUnsealKey(),
		"the plaintext of secret/app":  []byte(password),
		"the secondary's own root key": sec.devUnsealKey(),
	})
	if len(found) > 0 {
		t.Fatalf("the attacker's capture of the bus holds %v", found)
	}
	if st := sec.replStatus(); st["state"] == "revoked" || st["mode"] != "secondary" {
		t.Fatalf("secondary status: %v", st)
	}
}

type rpcTokenClaims struct {
	ID     string `json:"jti"`
	Secret string `json:"sec"`
}

// rpcClaims decodes a token's claims (the operator holds the token).
func rpcClaims(t *testing.T, tok string) rpcTokenClaims {
	t.Helper()
	parts := strings.Split(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c rpcTokenClaims
	if err == nil {
		err = json.Unmarshal(raw, &c)
	}
	if err != nil {
		t.Fatalf("token claims: %v", err)
	}
	return c
}

// rpcHijacker runs finding 1's exploit on every activation request the
// attacker receives, in the background.
type rpcHijacker struct {
	atk *rpcAttacker
	wg  sync.WaitGroup

	mu           sync.Mutex
	tries        int
	stolenToken  string
	openedBundle bool
}

func (h *rpcHijacker) onRequest(m *nats.Msg) {
	if !strings.HasSuffix(m.Subject, "."+replication.MethodActivate) {
		return
	}
	data := m.Data
	h.wg.Go(func() { h.hijack(m.Subject, data) })
}

// hijack tries to redeem the request's token with its own key: with the
// token in the request (protocol 1) as the review did; else by sending the
// request again with its own key in place of the secondary's, and as it
// came. It tries to open every answer with its own key.
func (h *rpcHijacker) hijack(subject string, data []byte) {
	mine, _ := replication.NewActivationKey()
	var tries [][]byte
	var v1 struct {
		Token string `json:"token"`
	}
	if json.Unmarshal(data, &v1) == nil && v1.Token != "" {
		h.mu.Lock()
		h.stolenToken = v1.Token
		h.mu.Unlock()
		req, _ := json.Marshal(map[string]any{"v": 1, "token": v1.Token, "public_key": mine.PublicKey().Bytes()})
		tries = append(tries, req)
	}
	if req, err := replication.ParseActivateRequest(data); err == nil {
		swapped := []byte(string(data))
		at := strings.Index(string(swapped), req.TokenID) + len(req.TokenID)
		copy(swapped[at:], mine.PublicKey().Bytes())
		tries = append(tries, swapped, data)
	}
	for _, req := range tries {
		if reply := h.atk.rpcAsk(subject, req); reply != nil && h.opens(reply, mine) {
			h.mu.Lock()
			h.openedBundle = true
			h.mu.Unlock()
		}
	}
	h.mu.Lock()
	h.tries++
	h.mu.Unlock()
}

// opens reports whether reply holds a bundle that mine opens: as the JSON
// of protocol 1, or anywhere in a signed reply of protocol 2.
func (h *rpcHijacker) opens(reply []byte, mine *ecdh.PrivateKey) bool {
	var v1 struct {
		Bundle []byte `json:"bundle"`
	}
	if json.Unmarshal(reply, &v1) == nil && len(v1.Bundle) > 0 {
		if _, err := replication.OpenBundle(v1.Bundle, mine); err == nil {
			return true
		}
	}
	if len(reply) > 34+64 {
		if _, err := replication.OpenBundle(reply[34:len(reply)-64], mine); err == nil {
			return true
		}
	}
	return false
}
