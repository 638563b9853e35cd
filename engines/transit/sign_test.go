package transit

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

func (h *harness) sign(path string, data map[string]any) string {
	h.t.Helper()
	return str(h.t, h.must(wr, path, data), "signature")
}

func (h *harness) valid(path string, data map[string]any) bool {
	h.t.Helper()
	v, ok := h.must(wr, path, data).Data["valid"].(bool)
	if !ok {
		h.t.Fatalf("%s: no valid field", path)
	}
	return v
}

func TestSignVerifyEverySigningType(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		typ  string
		opts map[string]any
	}{
		{"ed25519", nil},
		{"ecdsa-p256", nil},
		{"ecdsa-p256", map[string]any{"marshaling_algorithm": "jws", "hash_algorithm": "sha2-384"}},
		{"rsa-2048", nil},
		{"rsa-2048", map[string]any{"signature_algorithm": "pkcs1v15", "hash_algorithm": "sha2-512"}},
		{"rsa-2048", map[string]any{"hash_algorithm": "sha3-256", "salt_length": "hash"}},
	}
	for i, c := range cases {
		name := strings.ReplaceAll(c.typ, "-", "") + string(rune('a'+i))
		h.createKey(name, c.typ)
		data := map[string]any{"input": b64("message")}
		for k, v := range c.opts {
			data[k] = v
		}
		sig := h.sign("sign/"+name, data)
		if !strings.HasPrefix(sig, "vault:v1:") {
			t.Fatalf("%s: signature %q", c.typ, sig)
		}
		data["signature"] = sig
		if !h.valid("verify/"+name, data) {
			t.Fatalf("%s %v: own signature does not verify", c.typ, c.opts)
		}
		data["input"] = b64("messagE")
		if h.valid("verify/"+name, data) {
			t.Fatalf("%s %v: signature verifies another message", c.typ, c.opts)
		}
	}
}

func TestSignJWSIsRawURLFixedLength(t *testing.T) {
	h := newHarness(t)
	h.createKey("ec", "ecdsa-p256")
	sig := h.sign("sign/ec", map[string]any{"input": b64("m"), "marshaling_algorithm": "jws"})
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sig, "vault:v1:"))
	if err != nil || len(raw) != 64 {
		t.Fatalf("jws signature %q: %d bytes, %v", sig, len(raw), err)
	}
}

func TestSignURLAlgorithmAndPrehashed(t *testing.T) {
	h := newHarness(t)
	h.createKey("ec", "ecdsa-p256")
	sig := h.sign("sign/ec/sha2-512", map[string]any{"input": b64("m")})
	if !h.valid("verify/ec", map[string]any{"input": b64("m"), "signature": sig, "hash_algorithm": "sha2-512"}) {
		t.Fatal("URL algorithm sha2-512 not used")
	}
	if h.valid("verify/ec", map[string]any{"input": b64("m"), "signature": sig}) {
		t.Fatal("sha2-512 signature verified as sha2-256")
	}
	sum := sha256.Sum256([]byte("m"))
	pre := h.sign("sign/ec", map[string]any{"input": base64.StdEncoding.EncodeToString(sum[:]), "prehashed": true})
	if !h.valid("verify/ec", map[string]any{"input": b64("m"), "signature": pre}) {
		t.Fatal("prehashed signature does not verify the message")
	}
	h.fails(wr, "sign/ec", map[string]any{"input": b64("m"), "prehashed": true}, 400, "32-byte digest")
	h.fails(wr, "sign/ec", map[string]any{"input": b64("m"), "hash_algorithm": "md5"}, 400, "unsupported hash algorithm md5")
	h.fails(wr, "sign/ec/sha1", map[string]any{"input": b64("m")}, 400, "unsupported hash algorithm sha1")
}

func TestEd25519IgnoresHashAlgorithm(t *testing.T) {
	h := newHarness(t)
	h.createKey("ed", "ed25519")
	sig := h.sign("sign/ed", map[string]any{"input": b64("m"), "hash_algorithm": "sha2-512"})
	if !h.valid("verify/ed", map[string]any{"input": b64("m"), "signature": sig}) {
		t.Fatal("ed25519 signature depends on hash_algorithm")
	}
}

func TestSignRefusals(t *testing.T) {
	h := newHarness(t)
	h.createKey("aes", "aes256-gcm96")
	h.fails(wr, "sign/aes", map[string]any{"input": b64("m")}, 400, "key type aes256-gcm96 does not support signing")
	h.fails(wr, "sign/none", map[string]any{"input": b64("m")}, 400, "signing key not found")
	h.fails(wr, "verify/none", map[string]any{"input": b64("m"), "signature": "vault:v1:AA=="}, 400, "signature verification key not found")
	h.createKey("ed", "ed25519")
	h.fails(wr, "encrypt/ed", map[string]any{"plaintext": b64("m")}, 400, "message encryption not supported for key type ed25519")
	h.fails(wr, "verify/ed", map[string]any{"input": b64("m"), "signature": "v1:AA"}, 400, "invalid signature: no prefix")
	h.fails(wr, "verify/ed", map[string]any{"input": b64("m")}, 400, "missing signature")
}

func TestVerifyOldSignatureRefusedByPolicy(t *testing.T) {
	h := newHarness(t)
	h.createKey("ed", "ed25519")
	old := h.sign("sign/ed", map[string]any{"input": b64("m")})
	h.must(wr, "keys/ed/rotate", nil)
	if sig := h.sign("sign/ed", map[string]any{"input": b64("m")}); !strings.HasPrefix(sig, "vault:v2:") {
		t.Fatalf("after rotation: %q", sig)
	}
	if !h.valid("verify/ed", map[string]any{"input": b64("m"), "signature": old}) {
		t.Fatal("version 1 signature no longer verifies")
	}
	h.must(wr, "keys/ed/config", map[string]any{"min_decryption_version": 2})
	h.fails(wr, "verify/ed", map[string]any{"input": b64("m"), "signature": old}, 400, "ciphertext or signature version is disallowed by policy (too old)")
}

func TestBatchSignVerify(t *testing.T) {
	h := newHarness(t)
	h.createKey("ec", "ecdsa-p256")
	resp := h.must(wr, "sign/ec", map[string]any{"batch_input": []any{
		map[string]any{"input": b64("a"), "reference": "1"},
		map[string]any{"input": b64("b"), "reference": "2"},
	}})
	res := batchResults(t, resp)
	v, err := h.req(wr, "verify/ec", map[string]any{"batch_input": []any{
		map[string]any{"input": b64("a"), "signature": res[0]["signature"], "reference": "1"},
		map[string]any{"input": b64("a"), "signature": res[1]["signature"], "reference": "2"},
		map[string]any{"input": b64("a"), "signature": "garbage", "reference": "3"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	vr := batchResults(t, v)
	if vr[0]["valid"] != true || vr[1]["valid"] != false || vr[2]["error"] != "invalid signature: no prefix" || vr[2]["reference"] != "3" {
		t.Fatalf("verify batch %+v", vr)
	}
	if v.StatusCode != 400 {
		t.Fatalf("status %d", v.StatusCode)
	}
}

func TestHMACVerify(t *testing.T) {
	h := newHarness(t)
	for _, typ := range []string{"hmac", "aes256-gcm96", "ed25519"} {
		h.createKey(typ, typ)
		mac := str(t, h.must(wr, "hmac/"+typ, map[string]any{"input": b64("data")}), "hmac")
		if !strings.HasPrefix(mac, "vault:v1:") {
			t.Fatalf("%s: hmac %q", typ, mac)
		}
		if !h.valid("verify/"+typ, map[string]any{"input": b64("data"), "hmac": mac}) {
			t.Fatalf("%s: own hmac does not verify", typ)
		}
		if h.valid("verify/"+typ, map[string]any{"input": b64("datA"), "hmac": mac}) {
			t.Fatalf("%s: hmac verifies other data", typ)
		}
	}
	m512 := str(t, h.must(wr, "hmac/hmac/sha2-512", map[string]any{"input": b64("data")}), "hmac")
	if h.valid("verify/hmac", map[string]any{"input": b64("data"), "hmac": m512}) {
		t.Fatal("sha2-512 hmac verified as sha2-256")
	}
	if !h.valid("verify/hmac/sha2-512", map[string]any{"input": b64("data"), "hmac": m512}) {
		t.Fatal("sha2-512 hmac does not verify with the URL algorithm")
	}
	// Each version has its own HMAC key.
	before := str(t, h.must(wr, "hmac/aes256-gcm96", map[string]any{"input": b64("x")}), "hmac")
	h.must(wr, "keys/aes256-gcm96/rotate", nil)
	after := str(t, h.must(wr, "hmac/aes256-gcm96", map[string]any{"input": b64("x")}), "hmac")
	if before[len("vault:v1:"):] == after[len("vault:v2:"):] || !strings.HasPrefix(after, "vault:v2:") {
		t.Fatalf("rotation kept the HMAC key: %q %q", before, after)
	}
	h.must(wr, "keys/aes256-gcm96/config", map[string]any{"min_decryption_version": 2})
	h.fails(wr, "verify/aes256-gcm96", map[string]any{"input": b64("x"), "hmac": before}, 400, "version is too old")
	batch := h.must(wr, "hmac/hmac", map[string]any{"batch_input": []any{map[string]any{"input": b64("data"), "reference": "r"}}})
	if r := batchResults(t, batch)[0]; r["reference"] != "r" || !strings.HasPrefix(r["hmac"].(string), "vault:v1:") {
		t.Fatalf("batch hmac %+v", r)
	}
}
