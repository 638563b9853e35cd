package transit

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"testing"
)

var payload1KiB = func() []byte {
	b := make([]byte, 1024)
	_, _ = rand.Read(b)
	return b
}()

// BenchmarkEncrypt1KiB is one encrypt request through HandleRequest: the
// key read and decoded from storage, the plaintext decoded, sealed and
// encoded.
func BenchmarkEncrypt1KiB(b *testing.B) {
	h := newHarness(b)
	h.createKey("k", "aes256-gcm96")
	data := map[string]any{"plaintext": base64.StdEncoding.EncodeToString(payload1KiB)}
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.req(wr, "encrypt/k", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecrypt1KiB is one decrypt request through HandleRequest.
func BenchmarkDecrypt1KiB(b *testing.B) {
	h := newHarness(b)
	h.createKey("k", "aes256-gcm96")
	resp := h.must(wr, "encrypt/k", map[string]any{"plaintext": base64.StdEncoding.EncodeToString(payload1KiB)})
	data := map[string]any{"ciphertext": resp.Data["ciphertext"]}
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.req(wr, "decrypt/k", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAESGCM1KiB is the anchor: AES-256-GCM Seal of 1 KiB alone, the
// floor the two benchmarks above are measured against.
func BenchmarkAESGCM1KiB(b *testing.B) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		b.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	nonce := make([]byte, gcm.NonceSize())
	out := make([]byte, 0, len(payload1KiB)+gcm.Overhead())
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = rand.Read(nonce)
		out = gcm.Seal(out[:0], nonce, payload1KiB, nil)
	}
}
