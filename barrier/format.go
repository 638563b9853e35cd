package barrier

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
)

// These constants are part of the disk format (and of the replication stream,
// which carries ciphertext verbatim). Never change them; see doc.go.
const (
	// CiphertextVersion is the first byte of every value the barrier writes.
	CiphertextVersion byte = 1
	// KeySize is the size of the root key and of every keyring key: AES-256.
	KeySize = 32

	termSize   = 4
	nonceSize  = 12
	tagSize    = 16
	headerSize = 1 + termSize + nonceSize
	// minCiphertext is the size of a sealed empty value.
	minCiphertext = headerSize + tagSize

	// rootKeyTerm is the term written in the envelope of core/keyring, which is
	// sealed with the root key rather than a keyring key.
	rootKeyTerm uint32 = 0
)

// RandomBytes returns n bytes from the operating system's CSPRNG.
func RandomBytes(n int) ([]byte, error) {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		return nil, fmt.Errorf("read %d random bytes: %w", n, err)
	}
	return buf, nil
}

// GenerateKey returns a new random 32-byte key, fit for a root key.
func GenerateKey() ([]byte, error) { return RandomBytes(KeySize) }

// newGCM builds AES-256-GCM with the standard 12-byte nonce.
func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealEnvelope encrypts plaintext under term with aead, binding it to key (the AAD),
// and returns the envelope: version | term | nonce | ciphertext+tag.
func sealEnvelope(aead cipher.AEAD, term uint32, key string, plaintext []byte) ([]byte, error) {
	out := make([]byte, headerSize, headerSize+len(plaintext)+tagSize)
	out[0] = CiphertextVersion
	binary.BigEndian.PutUint32(out[1:1+termSize], term)
	nonce := out[1+termSize : headerSize]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("read nonce: %w", err)
	}
	return aead.Seal(out, nonce, plaintext, []byte(key)), nil
}

// parseEnvelope checks the version and length of a stored value and returns
// its term; it never decrypts. Every error is a *DecryptError naming key.
func parseEnvelope(key string, value []byte) (uint32, error) {
	if len(value) == 0 {
		return 0, &DecryptError{Key: key, Reason: "is empty, which the barrier never writes: it was altered on disk; restore it from a backup"}
	}
	if value[0] != CiphertextVersion {
		return 0, &DecryptError{Key: key, Reason: fmt.Sprintf("has ciphertext version %d, which this build of coffer cannot read (it reads version %d): upgrade coffer, or restore the value if it was altered on disk", value[0], CiphertextVersion)}
	}
	if len(value) < minCiphertext {
		return 0, &DecryptError{Key: key, Reason: fmt.Sprintf("is truncated (%d bytes, at least %d expected): it was altered on disk; restore it from a backup", len(value), minCiphertext)}
	}
	return binary.BigEndian.Uint32(value[1 : 1+termSize]), nil
}

// openEnvelope decrypts an envelope whose term the caller has resolved to aead.
func openEnvelope(aead cipher.AEAD, key string, value []byte) ([]byte, error) {
	pt, err := aead.Open(nil, value[1+termSize:headerSize], value[headerSize:], []byte(key))
	if err != nil {
		return nil, &DecryptError{Key: key, Reason: "failed authentication: it was altered or moved on disk; restore it from a backup"}
	}
	if pt == nil {
		pt = []byte{}
	}
	return pt, nil
}
