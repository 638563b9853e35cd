package consul

import (
	"strings"
	"testing"
)

func TestKeyEncoding(t *testing.T) {
	for key, want := range map[string]string{
		"core/keyring":   "core/keyring",
		"a//b":           "a/%2Fb",
		"/lead":          "%2Flead",
		"a/./b":          "a/%2E/b",
		".hidden/x.y":    "%2Ehidden/x.y",
		"50%":            "50%25",
		"ü":              "%C3%BC",
		"\xff\xfe":       "%FF%FE",
		"with space\x01": "with space%01",
	} {
		if got := encodeKey(key); got != want {
			t.Errorf("encodeKey(%q) = %q, want %q", key, got, want)
		}
		if back, err := decodeKey(want); err != nil || back != key {
			t.Errorf("decodeKey(%q) = %q, %v; want %q", want, back, err, key)
		}
	}
	for _, bad := range []string{"%", "%2", "%zz", "a%2g"} {
		if _, err := decodeKey(bad); err == nil {
			t.Errorf("decodeKey(%q) succeeded", bad)
		}
	}
}

// The encoding of a prefix is a prefix of the encoding of every key under it,
// and only a '/' of the key is a '/' of the encoding.
func FuzzKeyEncoding(f *testing.F) {
	f.Add("a//b/./c", 3)
	f.Add("ünï/%x", 2)
	f.Fuzz(func(t *testing.T, key string, cut int) {
		enc := encodeKey(key)
		if back, err := decodeKey(enc); err != nil || back != key {
			t.Fatalf("decodeKey(encodeKey(%q)) = %q, %v", key, back, err)
		}
		if cut < 0 || cut > len(key) {
			return
		}
		if p := encodeKey(key[:cut]); !strings.HasPrefix(enc, p) {
			t.Fatalf("encodeKey(%q) = %q does not start with encodeKey(%q) = %q", key, enc, key[:cut], p)
		}
		if strings.Count(enc, "/") > strings.Count(key, "/") {
			t.Fatalf("encodeKey(%q) = %q has a '/' the key does not", key, enc)
		}
		for _, c := range []byte(enc) {
			if c < 0x20 || c >= 0x7f {
				t.Fatalf("encodeKey(%q) = %q holds byte %#x", key, enc, c)
			}
		}
	})
}
