package transit

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// The cryptography of a key, on the record loaded for one request. Nothing
// here touches storage.

// versionPrefix starts every ciphertext, signature and HMAC: "vault:v<N>:".
const versionPrefix = "vault:v"

// errTooOld is Vault's refusal of a version below min_decryption_version.
const errTooOld = "ciphertext or signature version is disallowed by policy (too old)"

func versioned(ver int, payload []byte, enc *base64.Encoding) string {
	return versionPrefix + strconv.Itoa(ver) + ":" + enc.EncodeToString(payload)
}

// parseVersioned splits "vault:v<N>:<payload>" and checks N against the
// key, with Vault's messages (kind is "ciphertext" or "signature").
// Version 0 is read as 1, as Vault does for its earliest ciphertexts.
func (k *key) parseVersioned(kind, value, tooOld string) (int, string, error) {
	rest, ok := strings.CutPrefix(value, versionPrefix)
	if !ok {
		return 0, "", badRequest("invalid %s: no prefix", kind)
	}
	verStr, payload, found := strings.Cut(rest, ":")
	if !found {
		return 0, "", badRequest("invalid %s: wrong number of fields", kind)
	}
	ver, err := strconv.Atoi(verStr)
	if err != nil || ver < 0 {
		return 0, "", badRequest("invalid %s: version number could not be decoded", kind)
	}
	if ver == 0 {
		ver = 1
	}
	if ver > k.LatestVersion {
		return 0, "", badRequest("invalid %s: version is too new", kind)
	}
	if k.MinDecryptionVersion > 0 && ver < k.MinDecryptionVersion {
		return 0, "", badRequest("%s: version %d is below the key's min_decryption_version %d; rewrap old %ss before raising it, or lower it at keys/<name>/config", tooOld, ver, k.MinDecryptionVersion, kind)
	}
	return ver, payload, nil
}

// useVersion picks the version an encryption, signature or data key uses:
// the latest when ver is 0, else ver if the policy allows it.
func (k *key) useVersion(ver int, what string) (int, error) {
	switch {
	case ver == 0:
		return k.LatestVersion, nil
	case ver < 0:
		return 0, badRequest("requested version for %s is negative", what)
	case ver > k.LatestVersion:
		return 0, badRequest("requested version for %s is higher than the latest key version", what)
	case k.MinEncryptionVersion > 0 && ver < k.MinEncryptionVersion:
		return 0, badRequest("requested version for %s is less than the minimum encryption key version", what)
	}
	return ver, nil
}

// encOpts are the options of an encryption or decryption.
type encOpts struct {
	aad     []byte // associated_data, AEAD types only
	padding string // padding_scheme of RSA: "oaep" (the default and only one)
}

func newAEAD(t string, k []byte) (cipher.AEAD, error) {
	if t == typeChaCha20 {
		return chacha20poly1305.New(k)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// encrypt returns "vault:v<N>:<base64(nonce||ciphertext||tag)>" (RSA: the
// OAEP or PKCS #1 v1.5 ciphertext) and N.
func (k *key) encrypt(ver int, plaintext []byte, o encOpts) (string, int, error) {
	info := keyTypes[k.Type]
	if !info.encrypt {
		return "", 0, badRequest("message encryption not supported for key type %s: use an aes256-gcm96, aes128-gcm96, chacha20-poly1305 or rsa key", k.Type)
	}
	ver, err := k.useVersion(ver, "encryption")
	if err != nil {
		return "", 0, err
	}
	v, err := k.version(ver)
	if err != nil {
		return "", 0, err
	}
	if info.aeadLen == 0 {
		out, err := rsaEncrypt(v.Key, plaintext, o)
		if err != nil {
			return "", 0, err
		}
		return versioned(ver, out, base64.StdEncoding), ver, nil
	}
	aead, err := newAEAD(k.Type, v.Key)
	if err != nil {
		return "", 0, fmt.Errorf("key %q version %d: %w", k.Name, ver, err)
	}
	buf := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	_, _ = rand.Read(buf)
	out := aead.Seal(buf, buf, plaintext, o.aad)
	return versioned(ver, out, base64.StdEncoding), ver, nil
}

func rsaEncrypt(der, plaintext []byte, o encOpts) ([]byte, error) {
	if len(o.aad) > 0 {
		return nil, badRequest("associated_data is only supported by aes and chacha20 keys, not RSA keys")
	}
	priv, err := parseRSA(der)
	if err != nil {
		return nil, err
	}
	if err := checkPadding(o.padding); err != nil {
		return nil, err
	}
	out, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &priv.PublicKey, plaintext, nil)
	if err != nil {
		return nil, badRequest("failed to RSA encrypt the plaintext: %v", err)
	}
	return out, nil
}

// decrypt opens a ciphertext of encrypt and returns the plaintext and the
// version that sealed it.
func (k *key) decrypt(value string, o encOpts) ([]byte, int, error) {
	info := keyTypes[k.Type]
	if !info.encrypt {
		return nil, 0, badRequest("message decryption not supported for key type %s", k.Type)
	}
	ver, payload, err := k.parseVersioned("ciphertext", value, errTooOld)
	if err != nil {
		return nil, 0, err
	}
	raw, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return nil, 0, badRequest("invalid ciphertext: could not decode base64")
	}
	v, err := k.version(ver)
	if err != nil {
		return nil, 0, err
	}
	if info.aeadLen == 0 {
		plain, err := rsaDecrypt(v.Key, raw, o)
		return plain, ver, err
	}
	aead, err := newAEAD(k.Type, v.Key)
	if err != nil {
		return nil, 0, fmt.Errorf("key %q version %d: %w", k.Name, ver, err)
	}
	n := aead.NonceSize()
	if len(raw) < n {
		return nil, 0, badRequest("invalid ciphertext length")
	}
	plain, err := aead.Open(nil, raw[:n], raw[n:], o.aad)
	if err != nil {
		return nil, 0, badRequest("%v", err)
	}
	return plain, ver, nil
}

func rsaDecrypt(der, raw []byte, o encOpts) ([]byte, error) {
	priv, err := parseRSA(der)
	if err != nil {
		return nil, err
	}
	if err := checkPadding(o.padding); err != nil {
		return nil, err
	}
	plain, err := rsa.DecryptOAEP(sha256.New(), nil, priv, raw, nil)
	if err != nil {
		return nil, badRequest("failed to RSA decrypt the ciphertext: %v", err)
	}
	return plain, nil
}

// checkPadding accepts RSA-OAEP only. PKCS #1 v1.5 encryption, which Vault
// offers, is refused: its decryption errors are a padding oracle.
func checkPadding(p string) error {
	switch p {
	case "", "oaep":
		return nil
	case "pkcs1v15":
		return badRequest("padding_scheme pkcs1v15 is not supported for encryption by coffer (it is unsafe): use \"oaep\", the default")
	}
	return badRequest("unsupported padding_scheme %q: use \"oaep\"", p)
}

func parseRSA(der []byte) (*rsa.PrivateKey, error) {
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse stored RSA key: %w", err)
	}
	rk, ok := priv.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("stored key is a %T, not an RSA key", priv)
	}
	return rk, nil
}

// signOpts are the options of a signature or its verification.
type signOpts struct {
	hash       crypto.Hash
	prehashed  bool
	sigAlg     string // RSA: "pss" (default) or "pkcs1v15"
	marshaling string // "asn1" (default) or "jws"
	saltLength int    // RSA PSS: rsa.PSSSaltLengthAuto or a length
}

// digest is what is signed: the input itself for ed25519 (which hashes on
// its own and ignores hash_algorithm, as Vault), the input when prehashed,
// else its hash.
func (o signOpts) digest(t string, input []byte) ([]byte, error) {
	if t == typeEd25519 {
		if o.prehashed {
			return nil, badRequest("prehashed input is not supported for ed25519 keys: send the message itself")
		}
		return input, nil
	}
	if o.prehashed {
		if len(input) != o.hash.Size() {
			return nil, badRequest("prehashed input must be a %d-byte digest for the chosen hash_algorithm, got %d bytes", o.hash.Size(), len(input))
		}
		return input, nil
	}
	h := o.hash.New()
	h.Write(input)
	return h.Sum(nil), nil
}

func (o signOpts) encoding() *base64.Encoding {
	if o.marshaling == "jws" {
		return base64.RawURLEncoding
	}
	return base64.StdEncoding
}

// ecdsaSig is the ASN.1 form of an ECDSA signature.
type ecdsaSig struct{ R, S *big.Int }

// sign returns "vault:v<N>:<base64 signature>" and N.
func (k *key) sign(ver int, input []byte, o signOpts) (string, int, error) {
	if !keyTypes[k.Type].sign {
		return "", 0, badRequest("key type %s does not support signing: use an ed25519, ecdsa-p256 or rsa key", k.Type)
	}
	ver, err := k.useVersion(ver, "signing")
	if err != nil {
		return "", 0, err
	}
	v, err := k.version(ver)
	if err != nil {
		return "", 0, err
	}
	digest, err := o.digest(k.Type, input)
	if err != nil {
		return "", 0, err
	}
	priv, err := x509.ParsePKCS8PrivateKey(v.Key)
	if err != nil {
		return "", 0, fmt.Errorf("parse stored key %q version %d: %w", k.Name, ver, err)
	}
	var sig []byte
	switch p := priv.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(p, digest)
	case *ecdsa.PrivateKey:
		sig, err = ecdsa.SignASN1(rand.Reader, p, digest)
		if err == nil && o.marshaling == "jws" {
			sig, err = asn1ToJWS(sig, (p.Curve.Params().BitSize+7)/8)
		}
	case *rsa.PrivateKey:
		if o.sigAlg == "pkcs1v15" {
			sig, err = rsa.SignPKCS1v15(rand.Reader, p, o.hash, digest)
		} else {
			sig, err = rsa.SignPSS(rand.Reader, p, o.hash, digest, &rsa.PSSOptions{SaltLength: o.saltLength})
		}
		if err != nil {
			return "", 0, badRequest("cannot sign: %v", err)
		}
	default:
		return "", 0, fmt.Errorf("stored key %q is a %T, which cannot sign", k.Name, priv)
	}
	if err != nil {
		return "", 0, fmt.Errorf("sign with key %q version %d: %w", k.Name, ver, err)
	}
	return versioned(ver, sig, o.encoding()), ver, nil
}

// verify checks a signature of sign; a well-formed signature that does not
// match is (false, nil).
func (k *key) verify(signature string, input []byte, o signOpts) (bool, error) {
	if !keyTypes[k.Type].sign {
		return false, badRequest("key type %s does not support verification", k.Type)
	}
	ver, payload, err := k.parseVersioned("signature", signature, errTooOld)
	if err != nil {
		return false, err
	}
	sig, err := o.encoding().DecodeString(payload)
	if err != nil {
		return false, badRequest("invalid base64 signature value")
	}
	digest, err := o.digest(k.Type, input)
	if err != nil {
		return false, err
	}
	v, err := k.version(ver)
	if err != nil {
		return false, err
	}
	priv, err := x509.ParsePKCS8PrivateKey(v.Key)
	if err != nil {
		return false, fmt.Errorf("parse stored key %q version %d: %w", k.Name, ver, err)
	}
	switch p := priv.(type) {
	case ed25519.PrivateKey:
		return ed25519.Verify(p.Public().(ed25519.PublicKey), digest, sig), nil
	case *ecdsa.PrivateKey:
		if o.marshaling == "jws" {
			if sig, err = jwsToASN1(sig); err != nil {
				return false, err
			}
		}
		return ecdsa.VerifyASN1(&p.PublicKey, digest, sig), nil
	case *rsa.PrivateKey:
		if o.sigAlg == "pkcs1v15" {
			return rsa.VerifyPKCS1v15(&p.PublicKey, o.hash, digest, sig) == nil, nil
		}
		return rsa.VerifyPSS(&p.PublicKey, o.hash, digest, sig, &rsa.PSSOptions{SaltLength: o.saltLength}) == nil, nil
	}
	return false, fmt.Errorf("stored key %q is a %T, which cannot verify", k.Name, priv)
}

// asn1ToJWS turns an ASN.1 ECDSA signature into JWS's r||s, each size bytes.
func asn1ToJWS(der []byte, size int) ([]byte, error) {
	var s ecdsaSig
	if _, err := asn1.Unmarshal(der, &s); err != nil {
		return nil, err
	}
	out := make([]byte, 2*size)
	s.R.FillBytes(out[:size])
	s.S.FillBytes(out[size:])
	return out, nil
}

// jwsToASN1 turns JWS's r||s into an ASN.1 ECDSA signature.
func jwsToASN1(sig []byte) ([]byte, error) {
	if len(sig) == 0 || len(sig)%2 != 0 {
		return nil, badRequest("supplied signature is invalid: a jws signature holds r and s of equal length")
	}
	half := len(sig) / 2
	return asn1.Marshal(ecdsaSig{R: new(big.Int).SetBytes(sig[:half]), S: new(big.Int).SetBytes(sig[half:])})
}

// hmacKey is the HMAC key of version ver: the key itself for an hmac key,
// else the version's separate HMAC key.
func (k *key) hmacKey(ver int) ([]byte, error) {
	v, err := k.version(ver)
	if err != nil {
		return nil, err
	}
	if k.Type == typeHMAC {
		return v.Key, nil
	}
	if len(v.HMACKey) == 0 {
		return nil, fmt.Errorf("key %q version %d has no HMAC key: the record is damaged", k.Name, ver)
	}
	return v.HMACKey, nil
}

// computeHMAC returns "vault:v<N>:<base64 HMAC>" and N.
func (k *key) computeHMAC(ver int, h crypto.Hash, input []byte) (string, int, error) {
	switch {
	case ver == 0:
		ver = k.LatestVersion
	case ver < 0 || ver > k.LatestVersion:
		return "", 0, badRequest("cannot generate HMAC: key version %d does not exist; the latest is %d", ver, k.LatestVersion)
	case k.MinEncryptionVersion > 0 && ver < k.MinEncryptionVersion:
		return "", 0, badRequest("cannot generate HMAC: version is too old (disallowed by policy)")
	}
	hk, err := k.hmacKey(ver)
	if err != nil {
		return "", 0, err
	}
	m := hmac.New(h.New, hk)
	m.Write(input)
	return versioned(ver, m.Sum(nil), base64.StdEncoding), ver, nil
}

// verifyHMAC checks an HMAC of computeHMAC.
func (k *key) verifyHMAC(value string, h crypto.Hash, input []byte) (bool, error) {
	ver, payload, err := k.parseVersioned("HMAC", value, "cannot verify HMAC: version is too old (disallowed by policy)")
	if err != nil {
		return false, err
	}
	want, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return false, badRequest("invalid HMAC: could not decode base64")
	}
	hk, err := k.hmacKey(ver)
	if err != nil {
		return false, err
	}
	m := hmac.New(h.New, hk)
	m.Write(input)
	return hmac.Equal(m.Sum(nil), want), nil
}
