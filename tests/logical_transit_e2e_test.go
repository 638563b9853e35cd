package tests

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// mustWrite writes a path and returns the response's data.
func mustWrite(t *testing.T, c *api.Client, path string, data map[string]any) map[string]any {
	t.Helper()
	s, err := c.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("%s on %s: %v", path, c.Address(), err)
	}
	if s == nil {
		return nil
	}
	return s.Data
}

func transitEnc(t *testing.T, c *api.Client, key, pt string) string {
	t.Helper()
	ct := str(mustWrite(t, c, "transit/encrypt/"+key, map[string]any{"plaintext": b64(pt)})["ciphertext"])
	if !strings.HasPrefix(ct, "vault:v") {
		t.Fatalf("encrypt with %s answered ciphertext %q", key, ct)
	}
	return ct
}

func transitDec(c *api.Client, key, ct string) (string, error) {
	s, err := c.Logical().Write("transit/decrypt/"+key, map[string]any{"ciphertext": ct})
	if err != nil {
		return "", err
	}
	raw, err := base64.StdEncoding.DecodeString(str(s.Data["plaintext"]))
	return string(raw), err
}

// Transit through vault/api on one node: key types, bad input answered with
// Vault's codes and messages a person can act on.
func TestTransitRefusals(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	if err := root.Sys().Mount("transit", &api.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"aes128-gcm96", "aes256-gcm96", "chacha20-poly1305", "ed25519", "ecdsa-p256", "rsa-2048", "hmac"} {
		mustWrite(t, root, "transit/keys/k-"+typ, map[string]any{"type": typ})
		r, err := root.Logical().Read("transit/keys/k-" + typ)
		if err != nil || r == nil || r.Data["type"] != typ {
			t.Fatalf("read key of type %s: %v %v", typ, r, err)
		}
	}
	_, err := root.Logical().Write("transit/keys/bad", map[string]any{"type": "rot13"})
	refused(t, "an unknown key type", err, http.StatusBadRequest, "rot13")

	ct := transitEnc(t, root, "k-aes256-gcm96", "secret text")
	if pt, err := transitDec(root, "k-aes256-gcm96", ct); err != nil || pt != "secret text" {
		t.Fatalf("decrypt: %q %v", pt, err)
	}
	raw := []byte(ct)
	raw[len(raw)-3] ^= 0x01 // one base64 character of the tag
	if raw[len(raw)-3] == '=' || raw[len(raw)-3] == ct[len(ct)-3] {
		raw[len(raw)-3] = 'A'
	}
	_, err = transitDec(root, "k-aes256-gcm96", string(raw))
	refused(t, "a tampered ciphertext", err, http.StatusBadRequest, "")
	_, err = transitDec(root, "k-aes256-gcm96", "not-a-ciphertext")
	refused(t, "a malformed ciphertext", err, http.StatusBadRequest, "")

	mustWrite(t, root, "transit/keys/k-aes256-gcm96/rotate", nil)
	mustWrite(t, root, "transit/keys/k-aes256-gcm96/config", map[string]any{"min_decryption_version": 2})
	_, err = transitDec(root, "k-aes256-gcm96", ct)
	refused(t, "a ciphertext below min_decryption_version", err, http.StatusBadRequest, "min")
	if pt, err := transitDec(root, "k-aes256-gcm96", transitEnc(t, root, "k-aes256-gcm96", "v2")); err != nil || pt != "v2" {
		t.Fatalf("decrypt of a v2 ciphertext: %q %v", pt, err)
	}
	_, err = root.Logical().Delete("transit/keys/k-hmac")
	refused(t, "deleting a key without deletion_allowed", err, http.StatusBadRequest, "deletion_allowed")

	// batch_input: one bad item fails alone (Vault answers 400 then, unless
	// partial_failure_response_code says otherwise).
	s, err := root.Logical().Write("transit/decrypt/k-aes256-gcm96", map[string]any{"partial_failure_response_code": 200, "batch_input": []any{
		map[string]any{"ciphertext": transitEnc(t, root, "k-aes256-gcm96", "one")},
		map[string]any{"ciphertext": "vault:v2:AAAA"},
	}})
	if err != nil {
		t.Fatalf("batch decrypt: %v", err)
	}
	res := entries(s.Data["batch_results"])
	if len(res) != 2 || res[0]["plaintext"] != b64("one") || str(res[1]["error"]) == "" {
		t.Fatalf("batch decrypt results %v", res)
	}
}

// The rest of transit's endpoints through vault/api: list, rewrap,
// datakey (plaintext and wrapped), hmac and its verify, sign and verify in a
// batch, random, hash, and a delete allowed by deletion_allowed.
func TestTransitEndpoints(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	if err := root.Sys().Mount("transit", &api.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, root, "transit/keys/k", map[string]any{"type": "chacha20-poly1305"})
	mustWrite(t, root, "transit/keys/rsa", map[string]any{"type": "rsa-4096"})
	if l, err := root.Logical().List("transit/keys"); err != nil || l == nil || len(strs(l.Data["keys"])) != 2 {
		t.Fatalf("list keys: %v %v", l, err)
	}
	ct := transitEnc(t, root, "k", "rewrap me")
	mustWrite(t, root, "transit/keys/k/rotate", nil)
	rw := str(mustWrite(t, root, "transit/rewrap/k", map[string]any{"ciphertext": ct})["ciphertext"])
	if !strings.HasPrefix(rw, "vault:v2:") {
		t.Fatalf("rewrap answered %q", rw)
	}
	if pt, err := transitDec(root, "k", rw); err != nil || pt != "rewrap me" {
		t.Fatalf("decrypt of the rewrapped ciphertext: %q %v", pt, err)
	}
	dk := mustWrite(t, root, "transit/datakey/plaintext/k", map[string]any{"bits": 512})
	raw, _ := base64.StdEncoding.DecodeString(str(dk["plaintext"]))
	if len(raw) != 64 {
		t.Fatalf("datakey of 512 bits: %d bytes", len(raw))
	}
	wrapped := mustWrite(t, root, "transit/datakey/wrapped/k", nil)
	if wrapped["plaintext"] != nil || !strings.HasPrefix(str(wrapped["ciphertext"]), "vault:v2:") {
		t.Fatalf("wrapped datakey: %v", wrapped)
	}
	if s, err := root.Logical().Write("transit/decrypt/k", map[string]any{"ciphertext": wrapped["ciphertext"]}); err != nil || len(str(s.Data["plaintext"])) != 44 {
		t.Fatalf("decrypt of the wrapped datakey: %v %v", s, err)
	}
	mac := str(mustWrite(t, root, "transit/hmac/k/sha2-512", map[string]any{"input": b64("m")})["hmac"])
	if v := mustWrite(t, root, "transit/verify/k/sha2-512", map[string]any{"input": b64("m"), "hmac": mac}); v["valid"] != true {
		t.Fatalf("hmac verify: %v", v)
	}
	if v := mustWrite(t, root, "transit/verify/k/sha2-512", map[string]any{"input": b64("n"), "hmac": mac}); v["valid"] != false {
		t.Fatalf("hmac verify of other input: %v", v)
	}
	sigs := entries(mustWrite(t, root, "transit/sign/rsa", map[string]any{"batch_input": []any{
		map[string]any{"input": b64("a"), "reference": "first"}, map[string]any{"input": b64("b"), "reference": "second"},
	}})["batch_results"])
	if len(sigs) != 2 || sigs[1]["reference"] != "second" {
		t.Fatalf("batch sign: %v", sigs)
	}
	ver := entries(mustWrite(t, root, "transit/verify/rsa", map[string]any{"batch_input": []any{
		map[string]any{"input": b64("a"), "signature": sigs[0]["signature"]},
		map[string]any{"input": b64("a"), "signature": sigs[1]["signature"]},
	}})["batch_results"])
	if len(ver) != 2 || ver[0]["valid"] != true || ver[1]["valid"] != false {
		t.Fatalf("batch verify: %v", ver)
	}
	if r := mustWrite(t, root, "transit/random/24", map[string]any{"format": "hex"}); len(str(r["random_bytes"])) != 48 {
		t.Fatalf("random: %v", r)
	}
	if h := mustWrite(t, root, "transit/hash/sha2-256", map[string]any{"input": b64("abc"), "format": "hex"}); h["sum"] != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("hash: %v", h)
	}
	mustWrite(t, root, "transit/keys/rsa/config", map[string]any{"deletion_allowed": true})
	if _, err := root.Logical().Delete("transit/keys/rsa"); err != nil {
		t.Fatalf("delete with deletion_allowed: %v", err)
	}
	_, err := root.Logical().Write("transit/sign/rsa", map[string]any{"input": b64("a")})
	refused(t, "signing with a deleted key", err, http.StatusBadRequest, "not found")
}

// Transit on a secondary: computed there with the replicated keys, with no
// request reaching the primary, also once the primary's process is gone;
// key changes are forwarded; ciphertext made on one cluster decrypts on the
// other; a rotation on the primary is used on the secondary once applied.
func TestTransitOnASecondary(t *testing.T) {
	t.Parallel()
	rp := fwdPairT(t)
	P, S := rp.p.root, rp.s.root
	if err := P.Sys().Mount("transit", &api.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, P, "transit/keys/k", nil)
	mustWrite(t, P, "transit/keys/sig", map[string]any{"type": "ed25519"})
	var fromS string
	testutil.Eventually(t, waitTimeout, "the keys on the secondary", func() error {
		s, err := S.Logical().Write("transit/encrypt/k", map[string]any{"plaintext": b64("made on the secondary")})
		if err != nil {
			return err
		}
		fromS = str(s.Data["ciphertext"])
		_, err = S.Logical().Read("transit/keys/sig")
		return err
	})
	if pt, err := transitDec(P, "k", fromS); err != nil || pt != "made on the secondary" {
		t.Fatalf("the secondary's ciphertext on the primary: %q %v", pt, err)
	}
	fromP := transitEnc(t, P, "k", "made on the primary")
	if pt, err := transitDec(S, "k", fromP); err != nil || pt != "made on the primary" {
		t.Fatalf("the primary's ciphertext on the secondary: %q %v", pt, err)
	}

	// A rotation on the primary reaches the secondary.
	mustWrite(t, P, "transit/keys/k/rotate", nil)
	testutil.Eventually(t, waitTimeout, "version 2 on the secondary", func() error {
		if ct := transitEnc(t, S, "k", "x"); !strings.HasPrefix(ct, "vault:v2:") {
			return fmt.Errorf("the secondary encrypts with %q", ct[:9])
		}
		return nil
	})
	if pt, err := transitDec(S, "k", transitEnc(t, P, "k", "v2 from the primary")); err != nil || pt != "v2 from the primary" {
		t.Fatalf("a v2 ciphertext of the primary on the secondary: %q %v", pt, err)
	}
	// A key change asked of the secondary is made by the primary, and so is
	// a key created by a first encrypt there.
	mustWrite(t, S, "transit/keys/k/rotate", nil)
	if r, err := P.Logical().Read("transit/keys/k"); err != nil || num(t, "latest_version", r.Data["latest_version"]) != 3 {
		t.Fatalf("the primary's key after a rotate sent to the secondary: %v %v", r, err)
	}
	newCT := transitEnc(t, S, "made-by-encrypt", "upsert")
	if r, err := P.Logical().Read("transit/keys/made-by-encrypt"); err != nil || r == nil {
		t.Fatalf("the key a first encrypt on the secondary made, on the primary: %v %v", r, err)
	}
	if pt, err := transitDec(P, "made-by-encrypt", newCT); err != nil || pt != "upsert" {
		t.Fatalf("decrypt on the primary: %q %v", pt, err)
	}
	sig := str(mustWrite(t, P, "transit/sign/sig", map[string]any{"input": b64("signed")})["signature"])
	testutil.Eventually(t, waitTimeout, "version 3 on the secondary", func() error {
		if ct := transitEnc(t, S, "k", "x"); !strings.HasPrefix(ct, "vault:v3:") {
			return fmt.Errorf("the secondary encrypts with %q", ct[:9])
		}
		return nil
	})

	// The primary's process goes; the secondary keeps serving transit.
	rp.p.p.kill()
	for i := range 20 {
		pt := fmt.Sprintf("after the primary, %d", i)
		ct := transitEnc(t, S, "k", pt)
		if got, err := transitDec(S, "k", ct); err != nil || got != pt {
			t.Fatalf("decrypt on the secondary with the primary gone: %q %v", got, err)
		}
		if got, err := transitDec(S, "k", fromP); err != nil || got != "made on the primary" {
			t.Fatalf("decrypt of the primary's v1 ciphertext with the primary gone: %q %v", got, err)
		}
		s := str(mustWrite(t, S, "transit/sign/sig", map[string]any{"input": b64(pt)})["signature"])
		if v := mustWrite(t, S, "transit/verify/sig", map[string]any{"input": b64(pt), "signature": s}); v["valid"] != true {
			t.Fatalf("verify on the secondary with the primary gone: %v", v)
		}
	}
	if v := mustWrite(t, S, "transit/verify/sig", map[string]any{"input": b64("signed"), "signature": sig}); v["valid"] != true {
		t.Fatalf("the primary's signature on the secondary: %v", v)
	}
	_, err := S.Logical().Write("transit/keys/k/rotate", nil)
	if err == nil {
		t.Fatal("a key rotation on the secondary succeeded with the primary gone")
	}
}
