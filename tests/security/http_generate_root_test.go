package security

// Root token generation (sys/generate-root) needs no token: a threshold of
// key shares authorises it, so anyone who reaches the API may call it. What
// they must not get, and what the tests below hold the server to:
//
//   - a token from shares that are not this cluster's: shares are checked at
//     the threshold, a wrong set is a 400 that resets the progress, hands out
//     nothing and reads the same whichever share was wrong;
//   - the key holders' shares for an attempt of their own: a share counts
//     only for the attempt its nonce names, and an attempt in progress
//     cannot be replaced, only cancelled (which changes the nonce);
//   - the OTP of someone else's attempt: it is returned once, to whoever
//     started it, never in the status;
//   - a second token from one attempt: completing ends it, and so does a
//     cancel.

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
)

// genRootServer is a server initialized with 3 key shares and a threshold
// of 2, unsealed: shamir (the shares are unseal keys) or static (recovery
// keys). It returns the server and the shares in hex.
func genRootServer(t *testing.T, static bool) (*server, []string) {
	t.Helper()
	o := serverOpts{Bolt: true, NoNATS: true}
	req := &api.InitRequest{SecretShares: 3, SecretThreshold: 2}
	if static {
		o.SealKey = randomBytes(t, 32)
		req = &api.InitRequest{RecoveryShares: 3, RecoveryThreshold: 2}
	}
	s := startConfigServer(t, o)
	res, err := s.client("").Sys().Init(req)
	if err != nil {
		t.Fatalf("sys/init: %v", err)
	}
	s.rootID = res.RootToken
	shares := res.Keys
	if static {
		shares = res.RecoveryKeys
	} else {
		for _, k := range shares[:2] {
			if _, err := s.client("").Sys().Unseal(k); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitHealth(t, s.addr, http.StatusOK)
	return s, shares
}

// genRootUpdate sends one share for nonce as raw HTTP and returns the answer.
func (s *server) genRootUpdate(key, nonce string) httpAttackResponse {
	s.t.Helper()
	b, _ := json.Marshal(map[string]string{"key": key, "nonce": nonce})
	return s.raw(http.MethodPut, "/v1/sys/generate-root/update", "", strings.NewReader(string(b)))
}

// genRootStatus reads the attempt's status.
func (s *server) genRootStatus() *api.GenerateRootStatusResponse {
	s.t.Helper()
	st, err := s.client("").Sys().GenerateRootStatus()
	if err != nil {
		s.t.Fatalf("GenerateRootStatus: %v", err)
	}
	return st
}

// noToken fails unless r is a 400 that hands out no encoded token.
func noToken(t *testing.T, what string, r httpAttackResponse, substr string) {
	t.Helper()
	if r.code != http.StatusBadRequest || !strings.Contains(r.body, substr) {
		t.Fatalf("%s: %d %s; want a 400 mentioning %q", what, r.code, r.body, substr)
	}
	if strings.Contains(r.body, "encoded_token") || strings.Contains(r.body, "hvs.") {
		t.Fatalf("%s: the refusal carries a token: %s", what, r.body)
	}
}

// A wrong share at the threshold: 400, progress reset, no token, and the
// same answer whichever way the share was wrong.
func TestHTTPAttackGenerateRootWrongShare(t *testing.T) {
	for _, tc := range []struct {
		name   string
		static bool
	}{{"shamir unseal keys", false}, {"static seal recovery keys", true}} {
		t.Run(tc.name, func(t *testing.T) {
			s, shares := genRootServer(t, tc.static)
			init, err := s.client("").Sys().GenerateRootInit("", "")
			if err != nil {
				t.Fatal(err)
			}
			var answers []string
			// A share of the right size but random, and a real share cut short.
			for _, wrong := range []string{randomHex(t, 33), shares[2][:40]} {
				if r := s.genRootUpdate(shares[0], init.Nonce); r.code != http.StatusOK {
					t.Fatalf("a right share: %d %s", r.code, r.body)
				}
				r := s.genRootUpdate(wrong, init.Nonce)
				noToken(t, "a wrong share at the threshold", r, "progress reset")
				answers = append(answers, r.body)
				if st := s.genRootStatus(); !st.Started || st.Nonce != init.Nonce || st.Progress != 0 {
					t.Fatalf("status after a wrong set: %+v; want the attempt still open at 0", st)
				}
			}
			if answers[0] != answers[1] {
				t.Fatalf("the refusals differ with the wrong share, so they say something about it:\n%s\n%s", answers[0], answers[1])
			}
			// The key holders start over and finish.
			s.genRootUpdate(shares[1], init.Nonce)
			r := s.genRootUpdate(shares[2], init.Nonce)
			if r.code != http.StatusOK || !strings.Contains(r.body, `"complete":true`) {
				t.Fatalf("the right shares after a wrong set: %d %s", r.code, r.body)
			}
		})
	}
}

// Someone without shares cancels the key holders' attempt and starts their
// own, with an OTP they know: the key holders' shares name the first
// attempt's nonce and count for nothing, so no token reaches them.
func TestHTTPAttackGenerateRootNonceHijack(t *testing.T) {
	s, shares := genRootServer(t, false)
	sys := s.client("").Sys()
	theirs, err := sys.GenerateRootInit("", "")
	if err != nil {
		t.Fatal(err)
	}
	if st := s.genRootStatus(); st.OTP != "" {
		t.Fatalf("the status shows the attempt's OTP to anyone: %+v", st)
	}
	// An attempt in progress cannot be replaced behind the key holders' back.
	if _, err := sys.GenerateRootInit("", ""); err == nil || !strings.Contains(err.Error(), "already in progress") {
		t.Fatalf("a second start during an attempt: %v; want a 400", err)
	}
	if st := s.genRootStatus(); st.Nonce != theirs.Nonce {
		t.Fatalf("a refused start changed the nonce to %q", st.Nonce)
	}
	if err := sys.GenerateRootCancel(); err != nil {
		t.Fatal(err)
	}
	attacker, err := sys.GenerateRootInit("", "")
	if err != nil || attacker.Nonce == theirs.Nonce {
		t.Fatalf("the attacker's attempt: %+v %v", attacker, err)
	}
	for i, k := range shares[:2] {
		noToken(t, "a key holder's share for the first attempt", s.genRootUpdate(k, theirs.Nonce), "nonce")
		if st := s.genRootStatus(); st.Progress != 0 || st.Nonce != attacker.Nonce {
			t.Fatalf("after share %d with the first attempt's nonce: %+v; want the attacker's attempt at 0", i+1, st)
		}
	}
	noToken(t, "a share without a nonce", s.genRootUpdate(shares[0], ""), "nonce")
}

// Cancel ends the attempt and its progress; so does completing it: one
// attempt mints at most one token.
func TestHTTPAttackGenerateRootCancelAndReplay(t *testing.T) {
	s, shares := genRootServer(t, true)
	sys := s.client("").Sys()
	init, err := sys.GenerateRootInit("", "")
	if err != nil {
		t.Fatal(err)
	}
	if r := s.genRootUpdate(shares[0], init.Nonce); r.code != http.StatusOK {
		t.Fatalf("share 1: %d %s", r.code, r.body)
	}
	if r := s.raw(http.MethodDelete, "/v1/sys/generate-root/attempt", "", nil); r.code != http.StatusNoContent {
		t.Fatalf("DELETE sys/generate-root/attempt: %d %s", r.code, r.body)
	}
	if st := s.genRootStatus(); st.Started || st.Progress != 0 || st.Nonce != "" {
		t.Fatalf("status after cancel: %+v", st)
	}
	noToken(t, "the second share after a cancel", s.genRootUpdate(shares[1], init.Nonce), "no root token generation is in progress")

	init, err = sys.GenerateRootInit("", "")
	if err != nil {
		t.Fatal(err)
	}
	s.genRootUpdate(shares[0], init.Nonce)
	if r := s.genRootUpdate(shares[1], init.Nonce); !strings.Contains(r.body, `"complete":true`) {
		t.Fatalf("completing: %d %s", r.code, r.body)
	}
	for _, k := range shares {
		noToken(t, "a share for a completed attempt", s.genRootUpdate(k, init.Nonce), "no root token generation is in progress")
	}
}
