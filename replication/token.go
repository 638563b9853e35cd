package replication

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Token constants. They are part of the wire format: do not change them.
const (
	// TokenVersion is the "v" of the token header and claims. Version 2 added
	// the activation secret ("sec"); version 1 tokens (which were sent on the
	// bus in clear) are refused.
	TokenVersion = 2
	tokenAlg     = "EdDSA"
	tokenTyp     = "JWT"
	// MaxTokenLen bounds a token ParseToken accepts.
	MaxTokenLen = 8 << 10
)

var b64 = base64.RawURLEncoding.Strict()

// TokenClaims are the claims of an activation token.
type TokenClaims struct {
	// Issuer is the primary's cluster id.
	Issuer string `json:"iss"`
	// Subject is the secondary id.
	Subject string `json:"sub"`
	// ID is a random token id: the primary records it and accepts it once.
	ID string `json:"jti"`
	// IssuedAt and Expires are Unix seconds.
	IssuedAt int64 `json:"iat"`
	Expires  int64 `json:"exp"`
	// APIAddr is the primary's API address.
	APIAddr string `json:"api"`
	// BusURL is the NATS URL the secondary should use.
	BusURL string `json:"bus"`
	// PublicKey is the primary's Ed25519 signing public key (base64 in JSON):
	// the secondary verifies the activation reply with it.
	PublicKey []byte `json:"pub"`
	// Secret is the activation secret (ActivationSecretSize bytes, base64 in
	// JSON): the secondary MACs its activation request with it. It never
	// travels on the bus; whoever holds the token holds it.
	Secret []byte `json:"sec"`
	// Version is TokenVersion; SignToken sets it.
	Version int `json:"v"`
	// Kind is "dr" for a DR secondary's token, absent for a performance
	// secondary's.
	Kind string `json:"kind,omitempty"`
}

type tokenHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	V   int    `json:"v"`
}

// SignToken returns c as a compact JWS (header {"alg":"EdDSA","typ":"JWT","v":2})
// signed with priv. It sets c.Version and, when empty, c.PublicKey to priv's
// public key; a PublicKey that is not priv's is refused.
func SignToken(c *TokenClaims, priv ed25519.PrivateKey) (string, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("sign token: signing key of %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	pub := priv.Public().(ed25519.PublicKey)
	if c.PublicKey == nil {
		c.PublicKey = pub
	} else if !bytes.Equal(c.PublicKey, pub) {
		return "", fmt.Errorf("sign token: claims carry another public key than the signing key's")
	}
	c.Version = TokenVersion
	if err := c.validate(); err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	h, err := json.Marshal(tokenHeader{Alg: tokenAlg, Typ: tokenTyp, V: TokenVersion})
	if err != nil {
		return "", err
	}
	p, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signed := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	return signed + "." + b64.EncodeToString(ed25519.Sign(priv, []byte(signed))), nil
}

func (c *TokenClaims) validate() error {
	switch {
	case c.Issuer == "":
		return fmt.Errorf("no issuer (primary cluster id)")
	case c.Subject == "":
		return fmt.Errorf("no subject (secondary id)")
	case c.ID == "":
		return fmt.Errorf("no token id")
	case len(c.Subject) > maxNameLen || len(c.ID) > maxNameLen:
		return fmt.Errorf("subject and token id must be at most %d bytes", maxNameLen)
	case c.Expires == 0:
		return fmt.Errorf("no expiry")
	case len(c.PublicKey) != ed25519.PublicKeySize:
		return fmt.Errorf("public key of %d bytes, want %d", len(c.PublicKey), ed25519.PublicKeySize)
	case len(c.Secret) != ActivationSecretSize:
		return fmt.Errorf("activation secret of %d bytes, want %d", len(c.Secret), ActivationSecretSize)
	}
	return nil
}

// ParseToken decodes an activation token, checks its structure and header, its
// signature against the public key it embeds, and its expiry against now. It
// returns ErrTokenMalformed (garbage), ErrUnknownVersion (a newer primary),
// ErrBadSignature (tampered) or ErrTokenExpired, wrapped, in that order of
// checks. It proves only that the token is intact; the primary must also call
// VerifyTokenKey with its own key, and check the token id.
func ParseToken(token string, now time.Time) (*TokenClaims, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, fmt.Errorf("parse token: %w: empty", ErrTokenMalformed)
	}
	if len(token) > MaxTokenLen {
		return nil, fmt.Errorf("parse token: %w: %d bytes, limit %d", ErrTokenMalformed, len(token), MaxTokenLen)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("parse token: %w: %d dot-separated parts, want 3", ErrTokenMalformed, len(parts))
	}
	raw := make([][]byte, 3)
	for i, p := range parts {
		b, err := b64.DecodeString(p)
		if err != nil {
			return nil, fmt.Errorf("parse token: %w: part %d is not base64url", ErrTokenMalformed, i+1)
		}
		raw[i] = b
	}
	var h tokenHeader
	if err := json.Unmarshal(raw[0], &h); err != nil {
		return nil, fmt.Errorf("parse token: %w: header: %v", ErrTokenMalformed, err)
	}
	if h.Alg != tokenAlg || h.Typ != tokenTyp {
		return nil, fmt.Errorf("parse token: %w: header alg %q typ %q, want EdDSA JWT", ErrTokenMalformed, h.Alg, h.Typ)
	}
	if h.V == 1 {
		return nil, fmt.Errorf("parse token: %w: a version 1 token, issued by an older coffer; its activation sent the token on the bus in clear and is no longer accepted: upgrade the primary and generate a new token there", ErrTokenMalformed)
	}
	if h.V != TokenVersion {
		return nil, fmt.Errorf("parse token: %w: token v %d", versionErr(h.V, TokenVersion, ErrTokenMalformed), h.V)
	}
	c := new(TokenClaims)
	if err := json.Unmarshal(raw[1], c); err != nil {
		return nil, fmt.Errorf("parse token: %w: claims: %v", ErrTokenMalformed, err)
	}
	if c.Version != TokenVersion {
		return nil, fmt.Errorf("parse token: %w: claims v %d", versionErr(c.Version, TokenVersion, ErrTokenMalformed), c.Version)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("parse token: %w: %v", ErrTokenMalformed, err)
	}
	if len(raw[2]) != ed25519.SignatureSize {
		return nil, fmt.Errorf("parse token: %w: signature of %d bytes", ErrTokenMalformed, len(raw[2]))
	}
	signed := token[:len(parts[0])+1+len(parts[1])]
	if !ed25519.Verify(c.PublicKey, []byte(signed), raw[2]) {
		return nil, fmt.Errorf("parse token: %w", ErrBadSignature)
	}
	if exp := time.Unix(c.Expires, 0); !now.Before(exp) {
		return nil, fmt.Errorf("parse token: %w (at %s)", ErrTokenExpired, exp.UTC().Format(time.RFC3339))
	}
	return c, nil
}

// versionErr is ErrUnknownVersion for a version above known, else malformed.
func versionErr(v, known int, malformed error) error {
	if v > known {
		return ErrUnknownVersion
	}
	return malformed
}

// VerifyTokenKey checks that c (from ParseToken, which verified the signature
// against c.PublicKey) was signed by pub: the primary passes its own signing
// key, so a token minted by another primary is refused with ErrBadSignature.
func VerifyTokenKey(c *TokenClaims, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize || !bytes.Equal(c.PublicKey, pub) {
		return fmt.Errorf("verify token: %w: signed by another primary's key", ErrBadSignature)
	}
	return nil
}
