package seal

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// FuzzDecoders feeds arbitrary bytes to every decoder of stored seal entries
// and of key files: none may panic, and a blob opens only when it is the one
// sealed with this key.
func FuzzDecoders(f *testing.F) {
	key := bytes.Repeat([]byte{0x5a}, KeySize)
	blob, err := sealBlob(key, RootKeyPath, []byte("payload"))
	if err != nil {
		f.Fatal(err)
	}
	conf, _ := encodeConfig(&Config{Type: TypeShamir, SecretShares: 5, SecretThreshold: 3})
	f.Add(blob)
	f.Add(conf)
	f.Add([]byte(hex.EncodeToString(key)))
	f.Add([]byte{BlobVersion})
	f.Fuzz(func(t *testing.T, data []byte) {
		pt, err := openBlob(key, RootKeyPath, data)
		// The seed corpus is rebuilt in every fuzzing process with a new
		// nonce, so success is checked by its result, not by equality to blob.
		if err == nil && (len(data) != len(blob) || string(pt) != "payload") {
			t.Fatalf("openBlob accepted a blob it never sealed: %x", data)
		}
		_, _ = decodeConfig(data)
		if k, err := parseStaticKey(data); err == nil && len(k) != KeySize {
			t.Fatalf("parseStaticKey returned %d bytes", len(k))
		}
	})
}
