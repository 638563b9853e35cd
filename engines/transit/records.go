package transit

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/clock"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
)

// recordVersion is the "v" of every record this package stores (see
// doc.go). A record with another "v" is refused, not guessed at.
const recordVersion = 1

// keyPrefix is where keys are stored in the mount's view.
const keyPrefix = "policy/"

// The key types, with Vault's names.
const (
	typeAES128   = "aes128-gcm96"
	typeAES256   = "aes256-gcm96"
	typeChaCha20 = "chacha20-poly1305"
	typeEd25519  = "ed25519"
	typeECDSA256 = "ecdsa-p256"
	typeRSA2048  = "rsa-2048"
	typeRSA4096  = "rsa-4096"
	typeHMAC     = "hmac"
)

// typeNames lists the key types in the order error messages name them.
var typeNames = []string{typeAES128, typeAES256, typeChaCha20, typeEd25519, typeECDSA256, typeRSA2048, typeRSA4096, typeHMAC}

// typeInfo is what a key type can do.
type typeInfo struct {
	encrypt bool // encrypt and decrypt
	sign    bool // sign and verify
	asym    bool // a private key in PKCS #8 with a public key to show
	aeadLen int  // key length of an AEAD type, 0 otherwise
}

var keyTypes = map[string]typeInfo{
	typeAES128:   {encrypt: true, aeadLen: 16},
	typeAES256:   {encrypt: true, aeadLen: 32},
	typeChaCha20: {encrypt: true, aeadLen: 32},
	typeEd25519:  {sign: true, asym: true},
	typeECDSA256: {sign: true, asym: true},
	typeRSA2048:  {encrypt: true, sign: true, asym: true},
	typeRSA4096:  {encrypt: true, sign: true, asym: true},
	typeHMAC:     {},
}

// parseKeyType reads a type field; "" is the default, aes256-gcm96.
func parseKeyType(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return typeAES256, nil
	}
	if _, ok := keyTypes[s]; !ok {
		return "", logical.Errorf(400, "unknown key type %s: use one of %s", s, strings.Join(typeNames, ", "))
	}
	return s, nil
}

// HMAC key sizes in bytes, as Vault allows them.
const (
	hmacMinKeySize     = 32
	hmacMaxKeySize     = 512
	hmacDefaultKeySize = 32
)

// key is one named key as stored at "policy/<name>".
type key struct {
	V                    int    `json:"v"`
	Name                 string `json:"name"`
	Type                 string `json:"type"`
	LatestVersion        int    `json:"latest_version"`
	MinDecryptionVersion int    `json:"min_decryption_version"`
	MinEncryptionVersion int    `json:"min_encryption_version"`
	MinAvailableVersion  int    `json:"min_available_version"`
	DeletionAllowed      bool   `json:"deletion_allowed"`
	Exportable           bool   `json:"exportable"`
	AllowPlaintextBackup bool   `json:"allow_plaintext_backup"`
	// KeySize is the length in bytes of an hmac key's material, 0 for
	// other types.
	KeySize  int                    `json:"key_size,omitempty"`
	Versions map[string]*keyVersion `json:"versions"`
}

// keyVersion is the material of one version. []byte fields are base64 in
// the JSON record.
type keyVersion struct {
	// Key is the raw symmetric key, or the PKCS #8 DER private key of an
	// asymmetric type.
	Key []byte `json:"key"`
	// HMACKey is the version's key for hmac/ (32 random bytes); an hmac
	// key type uses Key instead and has none.
	HMACKey []byte `json:"hmac_key,omitempty"`
	// PublicKey is the public key as keys/<name> shows it: base64 for
	// ed25519, PEM for ECDSA and RSA; "" for symmetric types.
	PublicKey    string    `json:"public_key,omitempty"`
	CreationTime time.Time `json:"creation_time"`
}

func storageKey(name string) string { return keyPrefix + name }

// loadKey reads a key, nil when there is none. It reads storage on every
// call and caches nothing: replication may have rewritten the key since.
func loadKey(ctx context.Context, s logical.Storage, name string) (*key, error) {
	sk := storageKey(name)
	e, err := s.Get(ctx, sk)
	if err != nil {
		return nil, fmt.Errorf("read key %q: %w", name, err)
	}
	if e == nil {
		return nil, nil
	}
	k := &key{}
	if err := json.Unmarshal(e.Value, k); err != nil {
		return nil, fmt.Errorf("decode %q: %w", sk, err)
	}
	if k.V != recordVersion {
		return nil, fmt.Errorf("decode %q: record version %d is not supported by this build (want %d): upgrade coffer", sk, k.V, recordVersion)
	}
	if _, ok := keyTypes[k.Type]; !ok {
		return nil, fmt.Errorf("decode %q: key type %q is not supported by this build: upgrade coffer", sk, k.Type)
	}
	return k, nil
}

// saveKey writes a key whole. A storage error is wrapped, never replaced:
// logical.ErrReadOnly must reach the router.
func saveKey(ctx context.Context, s logical.Storage, k *key) error {
	k.V = recordVersion
	raw, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("encode key %q: %w", k.Name, err)
	}
	if err := s.Put(ctx, &storage.Entry{Key: storageKey(k.Name), Value: raw}); err != nil {
		return fmt.Errorf("write key %q: %w", k.Name, err)
	}
	return nil
}

// newKey returns a key of type t at version 1, not yet stored.
func newKey(name, t string, keySize int) (*key, error) {
	k := &key{
		Name: name, Type: t, MinDecryptionVersion: 1,
		Versions: map[string]*keyVersion{},
	}
	if t == typeHMAC {
		if keySize == 0 {
			keySize = hmacDefaultKeySize
		}
		k.KeySize = keySize
	}
	if err := k.rotate(); err != nil {
		return nil, err
	}
	return k, nil
}

// rotate adds a new latest version.
func (k *key) rotate() error {
	v, err := generateVersion(k.Type, k.KeySize)
	if err != nil {
		return fmt.Errorf("generate version %d of key %q: %w", k.LatestVersion+1, k.Name, err)
	}
	k.LatestVersion++
	k.Versions[strconv.Itoa(k.LatestVersion)] = v
	return nil
}

// version returns the material of version n, which must exist.
func (k *key) version(n int) (*keyVersion, error) {
	v := k.Versions[strconv.Itoa(n)]
	if v == nil {
		return nil, fmt.Errorf("key %q has no version %d although its latest is %d: the record is damaged", k.Name, n, k.LatestVersion)
	}
	return v, nil
}

// generateVersion makes new key material of type t.
func generateVersion(t string, keySize int) (*keyVersion, error) {
	v := &keyVersion{CreationTime: clock.Now().UTC()}
	info := keyTypes[t]
	var err error
	switch {
	case t == typeHMAC:
		v.Key = randBytes(keySize)
		return v, nil
	case info.aeadLen > 0:
		v.Key = randBytes(info.aeadLen)
	default:
		v.Key, v.PublicKey, err = generateAsym(t)
		if err != nil {
			return nil, err
		}
	}
	v.HMACKey = randBytes(32)
	return v, nil
}

// generateAsym makes a private key (PKCS #8 DER) and its public key as
// keys/<name> shows it.
func generateAsym(t string) ([]byte, string, error) {
	var priv any
	var pub any
	switch t {
	case typeEd25519:
		p, s, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, "", err
		}
		priv, pub = s, p
	case typeECDSA256:
		s, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, "", err
		}
		priv, pub = s, &s.PublicKey
	case typeRSA2048, typeRSA4096:
		bits := 2048
		if t == typeRSA4096 {
			bits = 4096
		}
		s, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, "", err
		}
		priv, pub = s, &s.PublicKey
	default:
		return nil, "", fmt.Errorf("key type %q is not asymmetric", t)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, "", err
	}
	if ed, ok := pub.(ed25519.PublicKey); ok {
		return der, base64.StdEncoding.EncodeToString(ed), nil
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, "", err
	}
	return der, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})), nil
}

// randBytes returns n bytes from crypto/rand, which never fails (Go 1.24+).
func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// info describes the key as keys/<name> answers, in Vault's shape.
func (k *key) info() map[string]any {
	t := keyTypes[k.Type]
	d := map[string]any{
		"name":                   k.Name,
		"type":                   k.Type,
		"derived":                false,
		"deletion_allowed":       k.DeletionAllowed,
		"min_available_version":  k.MinAvailableVersion,
		"min_decryption_version": k.MinDecryptionVersion,
		"min_encryption_version": k.MinEncryptionVersion,
		"latest_version":         k.LatestVersion,
		"exportable":             k.Exportable,
		"allow_plaintext_backup": k.AllowPlaintextBackup,
		"supports_encryption":    t.encrypt,
		"supports_decryption":    t.encrypt,
		"supports_signing":       t.sign,
		"supports_derivation":    false,
		"auto_rotate_period":     0,
		"imported_key":           false,
	}
	if k.KeySize != 0 {
		d["key_size"] = k.KeySize
	}
	versions := make([]string, 0, len(k.Versions))
	for n := range k.Versions {
		versions = append(versions, n)
	}
	sort.Strings(versions)
	switch {
	case t.asym:
		keys := map[string]any{}
		for _, n := range versions {
			v := k.Versions[n]
			keys[n] = map[string]any{"name": publicKeyName(k.Type), "public_key": v.PublicKey, "creation_time": v.CreationTime}
		}
		d["keys"] = keys
	case t.encrypt:
		keys := map[string]any{}
		for _, n := range versions {
			keys[n] = k.Versions[n].CreationTime.Unix()
		}
		d["keys"] = keys
	}
	return d
}

// publicKeyName is the "name" Vault gives a version's public key.
func publicKeyName(t string) string {
	if t == typeECDSA256 {
		return "P-256"
	}
	return t
}
