package transit

import (
	"encoding/hex"
	"testing"

	"github.com/cofferhq/coffer/engines/internal/enginetest"
	"github.com/cofferhq/coffer/logical"
)

func TestHashKnownValues(t *testing.T) {
	h := newHarness(t)
	const helloSHA256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	if got := str(t, h.must(wr, "hash", map[string]any{"input": b64("hello")}), "sum"); got != helloSHA256 {
		t.Fatalf("sha2-256(hello) = %s", got)
	}
	if got := str(t, h.must(wr, "hash/sha2-256", map[string]any{"input": b64("hello"), "format": "base64"}), "sum"); got != "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=" {
		t.Fatalf("base64 sum = %s", got)
	}
	// SHA3-256 of the empty string.
	const emptySHA3 = "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
	if got := str(t, h.must(wr, "hash", map[string]any{"algorithm": "sha3-256"}), "sum"); got != emptySHA3 {
		t.Fatalf("sha3-256() = %s", got)
	}
	h.fails(wr, "hash/md5", map[string]any{"input": b64("x")}, 400, "unsupported hash algorithm md5")
	h.fails(wr, "hash", map[string]any{"input": b64("x"), "format": "pem"}, 400, "unsupported encoding format")
	h.fails(wr, "hash", map[string]any{"input": "!!"}, 400, "unable to decode input as base64")
}

func TestRandomLengths(t *testing.T) {
	h := newHarness(t)
	if n := len(unb64(t, str(t, h.must(wr, "random", nil), "random_bytes"))); n != 32 {
		t.Fatalf("default random is %d bytes", n)
	}
	hx := str(t, h.must(wr, "random/64", map[string]any{"format": "hex"}), "random_bytes")
	if b, err := hex.DecodeString(hx); err != nil || len(b) != 64 {
		t.Fatalf("random/64 hex: %q", hx)
	}
	if n := len(unb64(t, str(t, h.must(wr, "random/seal/16", nil), "random_bytes"))); n != 16 {
		t.Fatalf("random/seal/16 is %d bytes", n)
	}
	if n := len(unb64(t, str(t, h.must(wr, "random/all", map[string]any{"bytes": 8}), "random_bytes"))); n != 8 {
		t.Fatalf("random/all bytes=8 is %d bytes", n)
	}
	h.fails(wr, "random/0", nil, 400, "bytes must be greater than 0")
	h.fails(wr, "random", map[string]any{"bytes": 200000}, 400, "bytes cannot be greater than 131072")
	h.fails(wr, "random/moon", nil, 400, "unsupported entropy source")
}

func TestServedLocally(t *testing.T) {
	b := New()
	enginetest.ServedLocally(t, b, []enginetest.Route{
		{Op: wr, Path: "encrypt/k", Local: true},
		{Op: cr, Path: "encrypt/k", Local: true},
		{Op: wr, Path: "decrypt/k", Local: true},
		{Op: wr, Path: "rewrap/k", Local: true},
		{Op: wr, Path: "datakey/plaintext/k", Local: true},
		{Op: wr, Path: "datakey/wrapped/k", Local: true},
		{Op: wr, Path: "sign/k", Local: true},
		{Op: wr, Path: "sign/k/sha2-512", Local: true},
		{Op: wr, Path: "verify/k", Local: true},
		{Op: wr, Path: "hmac/k", Local: true},
		{Op: wr, Path: "random", Local: true},
		{Op: wr, Path: "random/32", Local: true},
		{Op: wr, Path: "random/platform/32", Local: true},
		{Op: wr, Path: "hash", Local: true},
		{Op: wr, Path: "hash/sha2-512", Local: true},
		{Op: wr, Path: "keys/k"},
		{Op: cr, Path: "keys/k"},
		{Op: wr, Path: "keys/k/config"},
		{Op: wr, Path: "keys/k/rotate"},
		{Op: del, Path: "keys/k"},
		{Op: del, Path: "encrypt/k"},
		{Op: wr, Path: "randomness"},
		{Op: wr, Path: "hashes/x"},
		{Op: wr, Path: "export/encryption-key/k"},
	})
	if p := b.LocalStoragePrefixes(); p != nil {
		t.Fatalf("LocalStoragePrefixes = %v, want nil", p)
	}
}

func TestExistenceCheckIsTrueOutsideEncrypt(t *testing.T) {
	h := newHarness(t)
	for _, p := range []string{"keys/k", "decrypt/k", "random", "nothing"} {
		ok, err := h.b.ExistenceCheck(t.Context(), &logical.Request{Path: p, Storage: h.view})
		if err != nil || !ok {
			t.Errorf("ExistenceCheck(%s) = %v, %v; want true", p, ok, err)
		}
	}
}

// A key changed behind the backend's back (replication applying a rotation
// on a secondary) is used by the next request: nothing is cached.
func TestKeyChangedInStorageIsUsedAtOnce(t *testing.T) {
	h := newHarness(t)
	h.createKey("k", "aes256-gcm96")
	other := newHarness(t)
	other.view = h.view // a second backend over the same storage, as the primary
	other.must(wr, "keys/k/rotate", nil)
	if ct := h.encrypt("k", "x"); ct[:9] != "vault:v2:" {
		t.Fatalf("encrypt after a rotation in storage: %q", ct)
	}
}
