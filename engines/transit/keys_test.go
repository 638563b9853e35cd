package transit

import (
	"strings"
	"testing"
)

func TestCreateAndReadSymmetricKey(t *testing.T) {
	h := newHarness(t)
	resp := h.must(wr, "keys/app", nil)
	if resp.Data["type"] != typeAES256 || resp.Data["latest_version"] != 1 {
		t.Fatalf("create answered %+v", resp.Data)
	}
	d := h.must(rd, "keys/app", nil).Data
	for field, want := range map[string]any{
		"name": "app", "type": "aes256-gcm96", "latest_version": 1, "min_decryption_version": 1,
		"min_encryption_version": 0, "min_available_version": 0, "deletion_allowed": false,
		"exportable": false, "allow_plaintext_backup": false, "supports_encryption": true,
		"supports_decryption": true, "supports_signing": false, "supports_derivation": false,
	} {
		if d[field] != want {
			t.Errorf("%s = %#v, want %#v", field, d[field], want)
		}
	}
	keys := d["keys"].(map[string]any)
	if _, ok := keys["1"].(int64); !ok || len(keys) != 1 {
		t.Fatalf("keys = %#v, want {\"1\": unix time}", keys)
	}
	rec := h.raw("policy/app")
	if rec["v"] != float64(1) || rec["type"] != "aes256-gcm96" {
		t.Fatalf("stored record %v", rec)
	}

	again := h.must(wr, "keys/app", map[string]any{"type": "ed25519"})
	if again.Data["type"] != typeAES256 || len(again.Warnings) != 1 || again.Warnings[0] != "key app already existed" {
		t.Fatalf("second create: %+v warnings %q", again.Data, again.Warnings)
	}
}

func TestReadAsymmetricKeyShowsPublicKeys(t *testing.T) {
	h := newHarness(t)
	h.createKey("ec", "ecdsa-p256")
	h.createKey("ed", "ed25519")
	ec := h.must(rd, "keys/ec", nil).Data["keys"].(map[string]any)["1"].(map[string]any)
	if ec["name"] != "P-256" || !strings.HasPrefix(ec["public_key"].(string), "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("ecdsa version 1: %+v", ec)
	}
	ed := h.must(rd, "keys/ed", nil).Data["keys"].(map[string]any)["1"].(map[string]any)
	if ed["name"] != "ed25519" || len(unb64(t, ed["public_key"].(string))) != 32 {
		t.Fatalf("ed25519 version 1: %+v", ed)
	}
	d := h.must(rd, "keys/ed", nil).Data
	if d["supports_signing"] != true || d["supports_encryption"] != false {
		t.Fatalf("ed25519 supports: %+v", d)
	}
}

func TestReadMissingKeyIs404(t *testing.T) {
	h := newHarness(t)
	h.fails(rd, "keys/nope", nil, 404, "no key named")
}

func TestUnknownKeyTypeIs400(t *testing.T) {
	h := newHarness(t)
	h.fails(wr, "keys/k", map[string]any{"type": "des"}, 400, "unknown key type des: use one of aes128-gcm96, aes256-gcm96")
	h.fails(cr, "encrypt/k", map[string]any{"plaintext": b64("x"), "type": "des"}, 400, "unknown key type des")
}

func TestDerivedAndConvergentRefused(t *testing.T) {
	h := newHarness(t)
	h.fails(wr, "keys/k", map[string]any{"derived": true}, 400, "derived is not supported")
	h.fails(wr, "keys/k", map[string]any{"convergent_encryption": "true", "derived": false}, 400, "convergent_encryption is not supported")
	h.fails(wr, "keys/k", map[string]any{"auto_rotate_period": "24h"}, 400, "auto_rotate_period is not supported")
	h.must(wr, "keys/k", map[string]any{"derived": false, "auto_rotate_period": 0})
}

func TestHMACKeySize(t *testing.T) {
	h := newHarness(t)
	d := h.must(wr, "keys/mac", map[string]any{"type": "hmac"}).Data
	if d["key_size"] != 32 || d["keys"] != nil {
		t.Fatalf("hmac key: %+v", d)
	}
	if d := h.must(wr, "keys/mac64", map[string]any{"type": "hmac", "key_size": 64}).Data; d["key_size"] != 64 {
		t.Fatalf("key_size 64: %+v", d)
	}
	h.fails(wr, "keys/m2", map[string]any{"type": "hmac", "key_size": 8}, 400, "invalid key_size 8")
	h.fails(wr, "keys/m3", map[string]any{"key_size": 64}, 400, "key_size is not valid for algorithm aes256-gcm96")
}

func TestListKeys(t *testing.T) {
	h := newHarness(t)
	h.fails(list, "keys/", nil, 404, "no keys")
	h.createKey("b", "aes128-gcm96")
	h.createKey("a", "chacha20-poly1305")
	got := h.must(list, "keys/", nil).Data["keys"].([]string)
	if strings.Join(got, ",") != "a,b" {
		t.Fatalf("keys = %v", got)
	}
	h.must(list, "keys", nil)
}

func TestDeleteNeedsDeletionAllowed(t *testing.T) {
	h := newHarness(t)
	h.createKey("k", "aes256-gcm96")
	h.fails(del, "keys/k", nil, 400, "error deleting policy k: deletion is not allowed for this key; set deletion_allowed=true at keys/k/config")
	h.must(wr, "keys/k/config", map[string]any{"deletion_allowed": true})
	if resp := h.must(del, "keys/k", nil); resp != nil {
		t.Fatalf("delete answered %+v", resp)
	}
	h.fails(rd, "keys/k", nil, 404, "no key")
	h.fails(del, "keys/k", nil, 400, "could not delete key; not found")
}

func TestConfigValidation(t *testing.T) {
	h := newHarness(t)
	h.createKey("k", "aes256-gcm96")
	h.fails(wr, "keys/k/config", map[string]any{"min_decryption_version": 2}, 400, "cannot set min decryption version of 2, latest key version is 1")
	h.fails(wr, "keys/k/config", map[string]any{"min_encryption_version": 3}, 400, "cannot set min encryption version of 3, latest key version is 1")
	h.fails(wr, "keys/k/config", map[string]any{"min_decryption_version": -1}, 400, "min decryption version cannot be negative")
	h.must(wr, "keys/k/rotate", nil)
	h.must(wr, "keys/k/rotate", nil)
	h.fails(wr, "keys/k/config", map[string]any{"min_decryption_version": 3, "min_encryption_version": 2}, 400,
		"cannot set min encryption/decryption values; min encryption version of 2 must be greater than or equal to min decryption version of 3")
	d := h.must(wr, "keys/k/config", map[string]any{"min_decryption_version": 2, "min_encryption_version": 3}).Data
	if d["min_decryption_version"] != 2 || d["min_encryption_version"] != 3 {
		t.Fatalf("config answered %+v", d)
	}
	// 0 means the latest for min_encryption_version.
	h.must(wr, "keys/k/config", map[string]any{"min_encryption_version": 0})
	resp := h.must(wr, "keys/k/config", map[string]any{"min_decryption_version": "0"})
	if resp.Data["min_decryption_version"] != 1 || len(resp.Warnings) != 1 {
		t.Fatalf("min_decryption_version 0: %+v %q", resp.Data, resp.Warnings)
	}
	h.fails(wr, "keys/nope/config", map[string]any{"deletion_allowed": true}, 400, "no existing key named nope could be found")
	h.fails(wr, "keys/nope/rotate", nil, 400, "key not found")
}

func TestExportableCannotBeTurnedOff(t *testing.T) {
	h := newHarness(t)
	h.must(wr, "keys/k", map[string]any{"exportable": true})
	resp := h.must(wr, "keys/k/config", map[string]any{"exportable": false, "allow_plaintext_backup": true})
	if resp.Data["exportable"] != true || resp.Data["allow_plaintext_backup"] != true {
		t.Fatalf("config: %+v", resp.Data)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "exportable cannot be disabled") {
		t.Fatalf("warnings %q", resp.Warnings)
	}
}

func TestUnknownFieldsWarn(t *testing.T) {
	h := newHarness(t)
	resp := h.must(wr, "keys/k", map[string]any{"colour": "blue"})
	if len(resp.Warnings) != 1 || resp.Warnings[0] != "Endpoint ignored these unrecognized parameters: [colour]" {
		t.Fatalf("warnings %q", resp.Warnings)
	}
}

func TestBadPathsAndNames(t *testing.T) {
	h := newHarness(t)
	h.fails(wr, "keys/-bad", nil, 400, "key name \"-bad\"")
	h.fails(wr, "nothing/here", nil, 404, "transit serves")
	h.fails(wr, "export/encryption-key/k", nil, 404, "export is not supported")
	h.fails(wr, "datakey/other/k", nil, 400, "must be 'plaintext' or 'wrapped'")
	h.fails(rd, "encrypt/k", nil, 405, "write")
}
