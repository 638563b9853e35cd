package security

// A replication pair under attack: the primary and secondary of the attack
// tests with the bus attacker on the primary's NATS, waits that fail at once
// when the secondary shows revoked, and what of an activation token must
// never be on the bus.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

// attackerPair is a primary dc1 and a secondary dc2 of the attack tests,
// with the bus attacker on the primary's NATS from before replication is
// enabled, and the secondary's status recorded from the start.
type attackerPair struct {
	pri, sec *server
	a        *attacker
	rec      *statusRecorder
	cluster  string // the primary's cluster id, once enabled
	token    string // the activation token, once issued
}

// newAttackerPair starts both clusters and connects the attacker; setup
// runs before anything else (join groups, start racing).
func newAttackerPair(t *testing.T, setup func(a *attacker)) *attackerPair {
	t.Helper()
	key := randomBytes(t, 32)
	p := &attackerPair{pri: newAttackerServer(t, "dc1", key), sec: newAttackerServer(t, "dc2", key)}
	p.a = newAttacker(t, p.pri.natsURL())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("what the attacker did:\n%s", p.a.Log())
		}
	})
	if setup != nil {
		setup(p.a)
	}
	p.rec = recordStatus(t, p.sec.addr)
	return p
}

// newAttackerServer starts a cluster of the attack tests: `coffer server
// -dev -config=FILE`, so that it keeps dev mode's open embedded NATS and
// shared dev root token while storing in bolt with the static seal key
// sealKey, and can therefore be restarted with its data and its streams. The
// clusters of one replication set share the seal key (docs/operations.md):
// the seal material replicates.
func newAttackerServer(t *testing.T, name string, sealKey []byte) *server {
	t.Helper()
	return startDevServer(t, serverOpts{Name: name, Bolt: true, SealKey: sealKey, NATSStore: true})
}

// attackerSecretValue is a random secret value: letters and digits only, so
// that JSON carries it unescaped and every encoding of it is searchable.
func attackerSecretValue(t testing.TB, what string) string {
	t.Helper()
	return what + "-" + randomHex(t, 16)
}

// P is a root client of the primary.
func (p *attackerPair) P() *api.Client { return p.pri.rootClient() }

// S is a client of the secondary with the primary's dev root token (valid
// there once activated: both run in dev mode).
func (p *attackerPair) S() *api.Client { return p.sec.client(p.pri.rootID) }

// enable enables the primary and issues the token of dc2.
func (p *attackerPair) enable(t *testing.T) {
	t.Helper()
	p.cluster = enablePrimary(t, p.pri)
	p.token = secondaryToken(t, p.pri, "dc2")
}

// activate enables the primary and activates dc2, failing t if activation fails.
func (p *attackerPair) activate(t *testing.T) {
	t.Helper()
	p.enable(t)
	if err := activate(p.sec, p.token); err != nil {
		t.Fatalf("secondary/enable: %v", err)
	}
}

// converge waits until cond holds, failing at once when the secondary's
// status has shown revoked: nothing but a forged reply revokes it in these
// tests, and a revoked secondary never converges.
func (p *attackerPair) converge(t *testing.T, what string, cond func() error) {
	t.Helper()
	testutil.Eventually(t, replTimeout, what, func() error {
		t.Helper()
		for _, q := range p.rec.Polls() {
			if q.State == "revoked" {
				t.Fatalf("%s: the secondary's status showed state revoked at %s, and revoked is final: nothing but the attacker could revoke it (an unauthenticated error reply changed its state)",
					what, q.At.Format("15:04:05.000"))
			}
		}
		return cond()
	})
}

// waitKV waits until secret/<key> = want on the secondary.
func (p *attackerPair) waitKV(t *testing.T, key, want string) {
	t.Helper()
	p.waitKVAfter(t, key, want, "")
}

// waitKVAfter is waitKV that names the attack the write followed.
func (p *attackerPair) waitKVAfter(t *testing.T, key, want, after string) {
	t.Helper()
	what := fmt.Sprintf("secret/%s = %q on the secondary", key, want)
	if after != "" {
		what = fmt.Sprintf("a write on the primary after %s (%s)", after, what)
	}
	S := p.S()
	p.converge(t, what, func() error {
		return kvHas(S, key, want)
	})
}

// waitSame waits until both clusters hold the same secret/ keys, values,
// versions and policies, and returns that snapshot.
func (p *attackerPair) waitSame(t *testing.T, what string) map[string]string {
	t.Helper()
	var snap map[string]string
	P, S := p.P(), p.S()
	p.converge(t, what+": the secondary holds what the primary holds", func() error {
		sp, err := sameData(P, S)
		if err != nil {
			return err
		}
		snap = sp
		return nil
	})
	return snap
}

// attackerAbsent fails t when any path the attacker tried to write exists on c.
func attackerAbsent(t *testing.T, where string, c *api.Client, paths []string) {
	t.Helper()
	for _, path := range paths {
		s, err := c.Logical().Read(path)
		if err == nil && s != nil {
			t.Errorf("%s holds %s, which the attacker wrote with keys it stole from the bus: %v", where, path, s.Data)
		}
	}
}

// attackerTokenSecrets returns what of an activation token must never be on
// the bus: the whole JWS, its claims and signature segments (raw and
// decoded), and every claim value that is not public by design (issuer,
// subject, jti, times, addresses, signing public key, version).
func attackerTokenSecrets(t *testing.T, token string) map[string][]byte {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Logf("the activation token is not a compact JWS: only the whole token is searched for")
		return map[string][]byte{"the activation token": []byte(token)}
	}
	out := map[string][]byte{
		"the activation token":                  []byte(token),
		"the activation token's claims segment": []byte(parts[1]),
		"the activation token's signature":      []byte(parts[2]),
	}
	claims, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Logf("the activation token's claims are not base64url (%v): searched for as they are", err)
		return out
	}
	out["the activation token's claims, decoded"] = claims
	if sig, err := base64.RawURLEncoding.DecodeString(parts[2]); err == nil {
		out["the activation token's signature, decoded"] = sig
	}
	var m map[string]any
	if err := json.Unmarshal(claims, &m); err != nil {
		t.Logf("the activation token's claims are not JSON (%v): its claims are searched for as a whole only", err)
		return out
	}
	public := map[string]bool{"iss": true, "sub": true, "jti": true, "exp": true, "iat": true, "nbf": true,
		"aud": true, "api": true, "bus": true, "pub": true, "v": true}
	for k, v := range m {
		s, ok := v.(string)
		if public[k] || !ok || len(s) < 8 {
			continue
		}
		out["the activation token's claim "+k] = []byte(s)
		for _, e := range []*base64.Encoding{base64.RawURLEncoding, base64.RawStdEncoding} {
			if raw, err := e.DecodeString(strings.TrimRight(s, "=")); err == nil && len(raw) >= 8 {
				out["the activation token's claim "+k+", decoded"] = raw
				break
			}
		}
	}
	return out
}
