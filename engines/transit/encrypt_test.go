package transit

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
)

func TestEncryptDecryptEveryEncryptionType(t *testing.T) {
	h := newHarness(t)
	for _, typ := range []string{"aes128-gcm96", "aes256-gcm96", "chacha20-poly1305", "rsa-2048", "rsa-4096"} {
		t.Run(typ, func(t *testing.T) {
			h.t = t
			h.createKey(typ, typ)
			ct := h.encrypt(typ, "the secret")
			if !strings.HasPrefix(ct, "vault:v1:") {
				t.Fatalf("ciphertext %q", ct)
			}
			if got := h.decrypt(typ, ct); got != "the secret" {
				t.Fatalf("decrypt = %q", got)
			}
			if ct2 := h.encrypt(typ, "the secret"); ct2 == ct {
				t.Fatal("two encryptions gave the same ciphertext")
			}
		})
	}
}

func TestAESCiphertextLayout(t *testing.T) {
	h := newHarness(t)
	h.createKey("k", "aes256-gcm96")
	resp := h.must(wr, "encrypt/k", map[string]any{"plaintext": b64("12345")})
	if resp.Data["key_version"] != 1 {
		t.Fatalf("key_version %#v", resp.Data["key_version"])
	}
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(str(t, resp, "ciphertext"), "vault:v1:"))
	if len(raw) != 12+5+16 {
		t.Fatalf("nonce||ciphertext||tag is %d bytes, want 33", len(raw))
	}
}

func TestEmptyPlaintextAndAssociatedData(t *testing.T) {
	h := newHarness(t)
	h.createKey("k", "aes256-gcm96")
	if got := h.decrypt("k", h.encrypt("k", "")); got != "" {
		t.Fatalf("empty plaintext came back as %q", got)
	}
	ct := str(t, h.must(wr, "encrypt/k", map[string]any{"plaintext": b64("x"), "associated_data": b64("row-7")}), "ciphertext")
	h.fails(wr, "decrypt/k", map[string]any{"ciphertext": ct}, 400, "message authentication failed")
	got := h.must(wr, "decrypt/k", map[string]any{"ciphertext": ct, "associated_data": b64("row-7")})
	if unb64(t, str(t, got, "plaintext")) != "x" {
		t.Fatal("associated_data round trip failed")
	}
}

func TestRotateThenDecryptOld(t *testing.T) {
	h := newHarness(t)
	h.createKey("k", "aes256-gcm96")
	old := h.encrypt("k", "v1 data")
	if d := h.must(wr, "keys/k/rotate", nil).Data; d["latest_version"] != 2 {
		t.Fatalf("rotate answered %+v", d)
	}
	cur := h.encrypt("k", "v2 data")
	if !strings.HasPrefix(cur, "vault:v2:") {
		t.Fatalf("after rotation: %q", cur)
	}
	if h.decrypt("k", old) != "v1 data" || h.decrypt("k", cur) != "v2 data" {
		t.Fatal("decrypt after rotation")
	}
	pinned := h.must(wr, "encrypt/k", map[string]any{"plaintext": b64("p"), "key_version": 1})
	if !strings.HasPrefix(str(t, pinned, "ciphertext"), "vault:v1:") {
		t.Fatalf("key_version 1: %+v", pinned.Data)
	}
	h.fails(wr, "encrypt/k", map[string]any{"plaintext": b64("p"), "key_version": 3}, 400, "requested version for encryption is higher than the latest key version")
	h.must(wr, "keys/k/config", map[string]any{"min_encryption_version": 2})
	h.fails(wr, "encrypt/k", map[string]any{"plaintext": b64("p"), "key_version": 1}, 400, "requested version for encryption is less than the minimum encryption key version")
}

func TestMinDecryptionVersionRefusesOldCiphertext(t *testing.T) {
	h := newHarness(t)
	h.createKey("k", "aes256-gcm96")
	old := h.encrypt("k", "old")
	h.must(wr, "keys/k/rotate", nil)
	h.must(wr, "keys/k/config", map[string]any{"min_decryption_version": 2})
	err := h.fails(wr, "decrypt/k", map[string]any{"ciphertext": old}, 400, "")
	if !strings.HasPrefix(err.Error(), "ciphertext or signature version is disallowed by policy (too old): version 1 is below the key's min_decryption_version 2") {
		t.Fatalf("error %q does not begin with Vault's words and then say which versions", err)
	}
	h.fails(wr, "rewrap/k", map[string]any{"ciphertext": old}, 400, "(too old)")
	// Lowering the floor again makes it readable: the material is kept.
	h.must(wr, "keys/k/config", map[string]any{"min_decryption_version": 1})
	if h.decrypt("k", old) != "old" {
		t.Fatal("old ciphertext unreadable after lowering min_decryption_version")
	}
}

func TestTamperedCiphertextIs400(t *testing.T) {
	h := newHarness(t)
	for _, typ := range []string{"aes256-gcm96", "chacha20-poly1305"} {
		h.createKey(typ, typ)
		ct := h.encrypt(typ, "data")
		raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(ct, "vault:v1:"))
		raw[len(raw)-1] ^= 1
		bad := "vault:v1:" + base64.StdEncoding.EncodeToString(raw)
		h.fails(wr, "decrypt/"+typ, map[string]any{"ciphertext": bad}, 400, "message authentication failed")
	}
}

func TestMalformedCiphertextIs400(t *testing.T) {
	h := newHarness(t)
	h.createKey("k", "aes256-gcm96")
	for ct, want := range map[string]string{
		"abc":               "invalid ciphertext: no prefix",
		"vault:v1":          "invalid ciphertext: wrong number of fields",
		"vault:vx:AAAA":     "invalid ciphertext: version number could not be decoded",
		"vault:v9:AAAA":     "invalid ciphertext: version is too new",
		"vault:v1:not*b64!": "invalid ciphertext: could not decode base64",
		"vault:v1:AAAA":     "invalid ciphertext length",
		"vault:v1:" + b64(strings.Repeat("x", 40)): "message authentication failed",
	} {
		h.fails(wr, "decrypt/k", map[string]any{"ciphertext": ct}, 400, want)
	}
	h.fails(wr, "decrypt/k", map[string]any{}, 400, "missing ciphertext to decrypt")
	h.fails(wr, "decrypt/none", map[string]any{"ciphertext": "vault:v1:AAAA"}, 400, "encryption key not found")
	h.fails(wr, "encrypt/k", map[string]any{"plaintext": "%%%"}, 400, "failed to base64-decode plaintext")
	h.fails(wr, "encrypt/k", map[string]any{}, 400, "missing plaintext to encrypt")
	h.fails(wr, "encrypt/k", map[string]any{"plaintext": b64("x"), "nonce": b64("123456789012")}, 400, "nonce provided when not allowed")
}

func TestEncryptCreatesMissingKey(t *testing.T) {
	h := newHarness(t)
	exists, err := h.b.ExistenceCheck(context.Background(), &logical.Request{Path: "encrypt/new", Storage: h.view})
	if err != nil || exists {
		t.Fatalf("ExistenceCheck before = %v, %v", exists, err)
	}
	h.fails(wr, "encrypt/new", map[string]any{"plaintext": b64("x")}, 400, "encryption key not found")
	resp := h.must(cr, "encrypt/new", map[string]any{"plaintext": b64("x"), "type": "chacha20-poly1305"})
	if h.decrypt("new", str(t, resp, "ciphertext")) != "x" {
		t.Fatal("round trip through the created key")
	}
	if d := h.must(rd, "keys/new", nil).Data; d["type"] != "chacha20-poly1305" {
		t.Fatalf("created key %+v", d)
	}
	exists, _ = h.b.ExistenceCheck(context.Background(), &logical.Request{Path: "encrypt/new", Storage: h.view})
	if !exists {
		t.Fatal("ExistenceCheck after creation = false")
	}
	h.fails(cr, "encrypt/sig", map[string]any{"plaintext": b64("x"), "type": "ed25519"}, 400, "cannot encrypt")
	h.fails(cr, "encrypt/ctx", map[string]any{"plaintext": b64("x"), "context": b64("tenant")}, 400, "key derivation")
	h.fails(rd, "keys/ctx", nil, 404, "no key")
}

// readOnly is the storage a performance secondary gives a request it serves
// locally: every write is refused with logical.ErrReadOnly.
type readOnly struct{ logical.Storage }

func (readOnly) Put(context.Context, *storage.Entry) error {
	return fmt.Errorf("%w (logical/0000/policy/...): the primary makes this change", logical.ErrReadOnly)
}

func TestEncryptCreatingKeyOnReadOnlyStorage(t *testing.T) {
	h := newHarness(t)
	_, err := h.reqWith(readOnly{h.view}, cr, "encrypt/new", map[string]any{"plaintext": b64("x")})
	if !errors.Is(err, logical.ErrReadOnly) {
		t.Fatalf("error %v does not wrap ErrReadOnly", err)
	}
	if code := logical.StatusCode(err); code == 400 {
		t.Fatalf("a storage refusal became a 400: %v", err)
	}
	// An existing key serves encrypt on the same read-only storage.
	h.createKey("k", "aes256-gcm96")
	if _, err := h.reqWith(readOnly{h.view}, wr, "encrypt/k", map[string]any{"plaintext": b64("x")}); err != nil {
		t.Fatalf("encrypt with an existing key on read-only storage: %v", err)
	}
}

func TestBatchEncryptDecryptWithOneBadItem(t *testing.T) {
	h := newHarness(t)
	h.createKey("k", "aes256-gcm96")
	resp, err := h.req(wr, "encrypt/k", map[string]any{"batch_input": []any{
		map[string]any{"plaintext": b64("one"), "reference": "r1"},
		map[string]any{"plaintext": "not base64!", "reference": "r2"},
		map[string]any{"plaintext": b64("three")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 400 {
		t.Fatalf("status %d, want Vault's 400 for a batch with a failed item", resp.StatusCode)
	}
	res := batchResults(t, resp)
	if len(res) != 3 || res[0]["reference"] != "r1" || res[1]["reference"] != "r2" || res[2]["reference"] != "" {
		t.Fatalf("results %+v", res)
	}
	if res[0]["error"] != nil || res[2]["error"] != nil || res[0]["key_version"] != 1 {
		t.Fatalf("good items: %+v", res)
	}
	if e, _ := res[1]["error"].(string); !strings.Contains(e, "failed to base64-decode plaintext") || res[1]["ciphertext"] != nil {
		t.Fatalf("bad item: %+v", res[1])
	}

	dec, err := h.req(wr, "decrypt/k", map[string]any{"batch_input": []any{
		map[string]any{"ciphertext": res[0]["ciphertext"], "reference": "a"},
		map[string]any{"ciphertext": "vault:v1:AAAA", "reference": "b"},
		map[string]any{"ciphertext": res[2]["ciphertext"], "reference": "c"},
	}, "partial_failure_response_code": 207})
	if err != nil {
		t.Fatal(err)
	}
	if dec.StatusCode != 207 {
		t.Fatalf("partial_failure_response_code: status %d", dec.StatusCode)
	}
	dr := batchResults(t, dec)
	if unb64(t, dr[0]["plaintext"].(string)) != "one" || unb64(t, dr[2]["plaintext"].(string)) != "three" {
		t.Fatalf("decrypted %+v", dr)
	}
	if dr[1]["error"] != "invalid ciphertext length" || dr[1]["reference"] != "b" {
		t.Fatalf("bad item %+v", dr[1])
	}

	ok := h.must(wr, "decrypt/k", map[string]any{"batch_input": []any{map[string]any{"ciphertext": res[0]["ciphertext"]}}})
	if len(batchResults(t, ok)) != 1 {
		t.Fatal("all-good batch")
	}
	h.fails(wr, "encrypt/k", map[string]any{"batch_input": []any{}}, 400, "missing batch input")
	h.fails(wr, "encrypt/k", map[string]any{"batch_input": "x"}, 400, "batch_input: expected a list")
}

func TestRewrapMovesToLatestVersion(t *testing.T) {
	h := newHarness(t)
	h.createKey("k", "aes256-gcm96")
	old := h.encrypt("k", "payload")
	h.must(wr, "keys/k/rotate", nil)
	h.must(wr, "keys/k/rotate", nil)
	resp := h.must(wr, "rewrap/k", map[string]any{"ciphertext": old})
	nw := str(t, resp, "ciphertext")
	if !strings.HasPrefix(nw, "vault:v3:") || resp.Data["key_version"] != 3 || resp.Data["plaintext"] != nil {
		t.Fatalf("rewrap answered %+v", resp.Data)
	}
	if h.decrypt("k", nw) != "payload" {
		t.Fatal("rewrapped ciphertext does not decrypt")
	}
	to2 := h.must(wr, "rewrap/k", map[string]any{"ciphertext": old, "key_version": 2})
	if !strings.HasPrefix(str(t, to2, "ciphertext"), "vault:v2:") {
		t.Fatalf("rewrap to version 2: %+v", to2.Data)
	}
	batch := h.must(wr, "rewrap/k", map[string]any{"batch_input": []any{map[string]any{"ciphertext": old, "reference": "x"}}})
	if r := batchResults(t, batch)[0]; r["key_version"] != 3 || r["reference"] != "x" {
		t.Fatalf("batch rewrap %+v", r)
	}
}

func TestDatakey(t *testing.T) {
	h := newHarness(t)
	h.createKey("k", "aes256-gcm96")
	resp := h.must(wr, "datakey/plaintext/k", nil)
	pt := str(t, resp, "plaintext")
	if len(unb64(t, pt)) != 32 {
		t.Fatalf("default datakey is %d bytes", len(unb64(t, pt)))
	}
	got := h.must(wr, "decrypt/k", map[string]any{"ciphertext": str(t, resp, "ciphertext")})
	if str(t, got, "plaintext") != pt {
		t.Fatal("wrapped datakey does not decrypt to the plaintext datakey")
	}
	wrapped := h.must(wr, "datakey/wrapped/k", map[string]any{"bits": 512})
	if wrapped.Data["plaintext"] != nil {
		t.Fatal("wrapped datakey answered its plaintext")
	}
	dec := h.must(wr, "decrypt/k", map[string]any{"ciphertext": str(t, wrapped, "ciphertext")})
	if len(unb64(t, str(t, dec, "plaintext"))) != 64 {
		t.Fatal("512-bit datakey")
	}
	h.fails(wr, "datakey/plaintext/k", map[string]any{"bits": 100}, 400, "invalid bits 100")
	h.fails(wr, "datakey/plaintext/none", nil, 400, "encryption key not found")
}

func TestRSAEncryptionIsOAEPOnly(t *testing.T) {
	h := newHarness(t)
	h.createKey("rsa", "rsa-2048")
	h.fails(wr, "encrypt/rsa", map[string]any{"plaintext": b64("x"), "padding_scheme": "pkcs1v15"}, 400, "pkcs1v15 is not supported")
	ct := str(t, h.must(wr, "encrypt/rsa", map[string]any{"plaintext": b64("x"), "padding_scheme": "oaep"}), "ciphertext")
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(ct, "vault:v1:"))
	raw[10] ^= 1
	h.fails(wr, "decrypt/rsa", map[string]any{"ciphertext": "vault:v1:" + base64.StdEncoding.EncodeToString(raw)}, 400, "failed to RSA decrypt")
	h.fails(wr, "encrypt/rsa", map[string]any{"plaintext": b64(strings.Repeat("x", 300))}, 400, "failed to RSA encrypt")
}
