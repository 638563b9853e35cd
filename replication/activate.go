package replication

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
)

// Activation protocol constants (version 2). They are part of the wire
// format: do not change them. See the package doc for the layouts and
// docs/replication.md for the exchange.
const (
	activateVersion = 2
	// ActivationSecretSize is the size of the token's activation secret ("sec").
	ActivationSecretSize = 32
	// activateNonceLen is the size of the secondary's request nonce.
	activateNonceLen = 32
	// DigestSize is the size of a request digest (SHA-256) a signed reply names.
	DigestSize = sha256.Size
	// activateMACInfo derives the MAC key from the activation secret (HKDF-SHA256).
	activateMACInfo = "coffer-activate-v2 mac"
	// activateMACLabel opens the MAC input, before the primary cluster id.
	activateMACLabel = "coffer-activate-v2"
	// activateReplyContext is the Ed25519ctx context of activation replies: they
	// never verify as a token (plain Ed25519), a batch (Ed25519ph) or an RPC
	// refusal (another context).
	activateReplyContext = "coffer-activate-reply-v2"

	activateKindBundle  = 1 // body = SealBundle output, sealed to the request's public key
	activateKindRefusal = 2 // body = error JSON {"v":1,"code","error"}

	// signedHeaderLen is version + kind + request digest, the header of every
	// signed reply (activation replies and signed RPC refusals).
	signedHeaderLen = 1 + 1 + DigestSize
	// MaxActivateReply bounds an activation reply OpenActivateReply accepts.
	MaxActivateReply = signedHeaderLen + MaxBundleSize + ed25519.SignatureSize
	// maxActivateRequest bounds an activation request: two names and three fields.
	maxActivateRequest = 1 + 2*(1+maxNameLen) + x25519Len + activateNonceLen + sha256.Size
)

// NewActivationSecret returns a fresh random activation secret for a token.
func NewActivationSecret() []byte {
	s := make([]byte, ActivationSecretSize)
	if _, err := rand.Read(s); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return s
}

// Digest returns the SHA-256 of a request message: what a signed reply names
// to bind itself to exactly that request.
func Digest(request []byte) []byte {
	d := sha256.Sum256(request)
	return d[:]
}

// ActivateRequest is an activation request (version 2) as ParseActivateRequest
// reads it. Nothing in it is verified until Verify returns nil.
type ActivateRequest struct {
	// SecondaryID is the token's "sub".
	SecondaryID string
	// TokenID is the token's "jti": the primary looks up the secret with it.
	TokenID string
	// PublicKey is the secondary's X25519 key for this activation: the bundle is
	// sealed to it.
	PublicKey *ecdh.PublicKey
	// Nonce is 32 random bytes of the secondary's.
	Nonce []byte
	// Digest is SHA-256 of the whole request: every reply names it.
	Digest []byte

	signed []byte // every byte before the MAC
	mac    []byte
}

// SealActivateRequest builds the activation request for the token c (from
// ParseToken) and the secondary's activation public key: its id, the token's
// jti, the key, a fresh nonce and an HMAC-SHA256 of all of that (and of the
// primary's cluster id) under a key derived from the token's activation
// secret. Neither the token nor the secret is in it.
func SealActivateRequest(c *TokenClaims, pub *ecdh.PublicKey) ([]byte, error) {
	nonce := make([]byte, activateNonceLen)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return sealActivateRequest(c, pub, nonce)
}

// sealActivateRequest is SealActivateRequest with the nonce given (tests pin it).
func sealActivateRequest(c *TokenClaims, pub *ecdh.PublicKey, nonce []byte) ([]byte, error) {
	if c == nil || pub == nil || pub.Curve() != ecdh.X25519() {
		return nil, fmt.Errorf("seal activation request: token claims and an X25519 public key are required")
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("seal activation request: %w", err)
	}
	msg := make([]byte, 0, 3+len(c.Subject)+len(c.ID)+x25519Len+activateNonceLen+sha256.Size)
	msg = append(msg, activateVersion, byte(len(c.Subject)))
	msg = append(msg, c.Subject...)
	msg = append(msg, byte(len(c.ID)))
	msg = append(msg, c.ID...)
	msg = append(msg, pub.Bytes()...)
	msg = append(msg, nonce...)
	mac, err := activateMAC(c.Secret, c.Issuer, msg)
	if err != nil {
		return nil, fmt.Errorf("seal activation request: %w", err)
	}
	return append(msg, mac...), nil
}

// activateMAC is HMAC-SHA256(HKDF-SHA256(secret, info activateMACInfo),
// label | len(cluster id) | cluster id | signed).
func activateMAC(secret []byte, clusterID string, signed []byte) ([]byte, error) {
	if len(secret) != ActivationSecretSize {
		return nil, fmt.Errorf("activation secret of %d bytes, want %d", len(secret), ActivationSecretSize)
	}
	if clusterID == "" || len(clusterID) > maxNameLen {
		return nil, fmt.Errorf("primary cluster id must be 1 to %d bytes", maxNameLen)
	}
	key, err := hkdf.Key(sha256.New, secret, nil, activateMACInfo, sha256.Size)
	if err != nil {
		return nil, err
	}
	h := hmac.New(sha256.New, key)
	h.Write([]byte(activateMACLabel))
	h.Write([]byte{byte(len(clusterID))})
	h.Write([]byte(clusterID))
	h.Write(signed)
	return h.Sum(nil), nil
}

// IsLegacyActivateRequest reports whether msg is a version 1 activation
// request: JSON carrying the token itself, which a version 2 primary never
// answers with a bundle.
func IsLegacyActivateRequest(msg []byte) bool { return len(msg) > 0 && msg[0] == '{' }

// LegacyActivateRefusal is the answer to a version 1 request, in the version
// 1 reply's JSON so that an old secondary shows msg: {"v":1,"code":
// "token_invalid","error":msg}.
func LegacyActivateRefusal(msg string) []byte {
	out, _ := json.Marshal(struct {
		V     int    `json:"v"`
		Error string `json:"error"`
		Code  string `json:"code"`
	}{1, msg, CodeTokenInvalid}) // strings only: cannot fail
	return out
}

// ParseActivateRequest splits an activation request into its fields without
// verifying anything (ErrCorrupt, ErrUnknownVersion): the primary looks up
// the token's secret by SecondaryID and TokenID, then calls Verify.
func ParseActivateRequest(msg []byte) (*ActivateRequest, error) {
	switch {
	case len(msg) == 0:
		return nil, fmt.Errorf("parse activation request: %w: empty", ErrCorrupt)
	case IsLegacyActivateRequest(msg):
		return nil, fmt.Errorf("parse activation request: %w: a version 1 request (JSON with the token in clear), from an older coffer", ErrCorrupt)
	case msg[0] != activateVersion:
		return nil, fmt.Errorf("parse activation request: %w: version %d", versionErr(int(msg[0]), activateVersion, ErrCorrupt), msg[0])
	case len(msg) > maxActivateRequest:
		return nil, fmt.Errorf("parse activation request: %w: %d bytes", ErrCorrupt, len(msg))
	}
	p := msg[1:]
	var names [2][]byte
	for i := range names {
		if len(p) < 1 || p[0] == 0 || 1+int(p[0]) > len(p) {
			return nil, fmt.Errorf("parse activation request: %w: header truncated", ErrCorrupt)
		}
		names[i], p = p[1:1+int(p[0])], p[1+int(p[0]):]
	}
	if len(p) != x25519Len+activateNonceLen+sha256.Size {
		return nil, fmt.Errorf("parse activation request: %w: %d bytes after the names, want %d", ErrCorrupt, len(p), x25519Len+activateNonceLen+sha256.Size)
	}
	pub, err := ecdh.X25519().NewPublicKey(p[:x25519Len])
	if err != nil {
		return nil, fmt.Errorf("parse activation request: %w: public key: %v", ErrCorrupt, err)
	}
	macAt := len(msg) - sha256.Size
	return &ActivateRequest{
		SecondaryID: string(names[0]),
		TokenID:     string(names[1]),
		PublicKey:   pub,
		Nonce:       bytes.Clone(p[x25519Len : x25519Len+activateNonceLen]),
		Digest:      Digest(msg),
		signed:      msg[:macAt:macAt],
		mac:         msg[macAt:],
	}, nil
}

// Verify checks the request's MAC under the activation secret of the token
// it names, for primary cluster clusterID. ErrBadMAC: the requester does not
// hold that token (or altered the request).
func (r *ActivateRequest) Verify(clusterID string, secret []byte) error {
	want, err := activateMAC(secret, clusterID, r.signed)
	if err != nil {
		return fmt.Errorf("verify activation request: %w", err)
	}
	if !hmac.Equal(want, r.mac) {
		return fmt.Errorf("verify activation request of %q: %w", r.SecondaryID, ErrBadMAC)
	}
	return nil
}

// SignActivateReply answers the request of digest (ActivateRequest.Digest)
// with sealedBundle (SealBundle to the request's public key), signed with
// the primary's signing key.
func SignActivateReply(priv ed25519.PrivateKey, digest, sealedBundle []byte) ([]byte, error) {
	if len(sealedBundle) == 0 || len(sealedBundle) > MaxBundleSize {
		return nil, fmt.Errorf("sign activation reply: bundle of %d bytes", len(sealedBundle))
	}
	return signActivate(priv, activateKindBundle, digest, sealedBundle)
}

// SignActivateRefusal answers the request of digest with the refusal e,
// signed: the secondary acts on it (gives up) only because it is.
func SignActivateRefusal(priv ed25519.PrivateKey, digest []byte, e *RPCError) ([]byte, error) {
	body, err := json.Marshal(e.wire())
	if err != nil {
		return nil, err
	}
	return signActivate(priv, activateKindRefusal, digest, body)
}

func signActivate(priv ed25519.PrivateKey, kind byte, digest, body []byte) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign activation reply: signing key of %d bytes", len(priv))
	}
	if len(digest) != DigestSize {
		return nil, fmt.Errorf("sign activation reply: request digest of %d bytes, want %d", len(digest), DigestSize)
	}
	msg := make([]byte, 0, signedHeaderLen+len(body)+ed25519.SignatureSize)
	msg = append(msg, activateVersion, kind)
	msg = append(msg, digest...)
	msg = append(msg, body...)
	sig, err := priv.Sign(nil, msg, &ed25519.Options{Context: activateReplyContext})
	if err != nil {
		return nil, err
	}
	return append(msg, sig...), nil
}

// OpenActivateReply verifies a reply to request (the bytes the secondary sent)
// with the primary's signing public key from the token, and returns the
// sealed bundle (OpenBundle opens it with the activation private key). A
// signed refusal comes back as an *RPCError with Authenticated set. Any other
// error means the reply is not the primary's answer to this request, and must
// be ignored: ErrBadSignature (forged, or another primary's), ErrOtherRequest
// (the primary's answer to another request), ErrCorrupt, ErrUnknownVersion.
func OpenActivateReply(reply, request []byte, pub ed25519.PublicKey) ([]byte, error) {
	body, kind, err := verifySigned(reply, request, pub, activateVersion, activateReplyContext)
	if err != nil {
		return nil, fmt.Errorf("open activation reply: %w", err)
	}
	switch kind {
	case activateKindBundle:
		if len(body) == 0 {
			return nil, fmt.Errorf("open activation reply: %w: empty bundle", ErrCorrupt)
		}
		return body, nil
	case activateKindRefusal:
		e, err := decodeRPCError(body)
		if err != nil {
			return nil, fmt.Errorf("open activation reply: %w", err)
		}
		e.Authenticated = true
		return nil, e
	}
	return nil, fmt.Errorf("open activation reply: %w: kind %d", ErrCorrupt, kind)
}

// verifySigned checks a signed reply: version | kind | digest | body |
// Ed25519ctx signature over everything before it. It returns body and kind
// once the digest names request and the signature verifies.
func verifySigned(reply, request []byte, pub ed25519.PublicKey, version byte, context string) ([]byte, byte, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, 0, fmt.Errorf("signing public key of %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	switch {
	case len(reply) == 0:
		return nil, 0, fmt.Errorf("%w: empty", ErrCorrupt)
	case reply[0] == '{':
		return nil, 0, fmt.Errorf("%w: a version 1 (JSON) reply, from an older coffer", ErrCorrupt)
	case reply[0] != version:
		return nil, 0, fmt.Errorf("%w: version %d", versionErr(int(reply[0]), int(version), ErrCorrupt), reply[0])
	case len(reply) < signedHeaderLen+ed25519.SignatureSize || len(reply) > MaxActivateReply:
		return nil, 0, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(reply))
	}
	if !bytes.Equal(reply[2:signedHeaderLen], Digest(request)) {
		return nil, 0, ErrOtherRequest
	}
	at := len(reply) - ed25519.SignatureSize
	if err := ed25519.VerifyWithOptions(pub, reply[:at], reply[at:], &ed25519.Options{Context: context}); err != nil {
		return nil, 0, ErrBadSignature
	}
	return reply[signedHeaderLen:at], reply[1], nil
}
