package replication

import (
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
)

// Bundle constants. They are part of the wire format: do not change them.
const (
	bundleVersion = 1
	bundleInfo    = "coffer-bundle-v1"
	x25519Len     = 32
	// bundleHeaderLen is version + ephemeral public key + nonce.
	bundleHeaderLen = 1 + x25519Len + nonceLen
	// MaxBundleSize bounds a sealed bundle OpenBundle accepts.
	MaxBundleSize = 1 << 20
)

// Bundle is the bootstrap bundle the primary sends an activating secondary,
// sealed to the X25519 key the secondary generated for this activation.
type Bundle struct {
	PrimaryClusterID string `json:"primary_cluster_id"`
	SecondaryID      string `json:"secondary_id"`
	// RootKey is the primary's barrier root key: the secondary adopts it with the
	// keyring it then receives.
	RootKey []byte `json:"root_key"`
	// ReplicationKey (32 bytes) opens batches of Epoch.
	ReplicationKey []byte `json:"replication_key"`
	Epoch          uint32 `json:"epoch"`
	// SigningPublicKey verifies batches.
	SigningPublicKey ed25519.PublicKey `json:"signing_public_key"`
	// RPCKey (32 bytes) seals this secondary's RPC requests and their replies.
	RPCKey []byte `json:"rpc_key"`
	// Stream and Subject name the WAL stream and its subject.
	Stream  string `json:"stream"`
	Subject string `json:"subject"`
	// DevRootTokenID is set when both clusters run in dev mode.
	DevRootTokenID string `json:"dev_root_token_id,omitempty"`
	// Generation is the set's generation the primary holds (absent from
	// primaries before generations).
	Generation uint64 `json:"generation,omitempty"`
	// DR bundles (a DR secondary's) carry the DR key of Epoch, which opens
	// the batches' DR section, and the primary's replication state (its
	// signing key, keys and registry: the JSON primary stores), which a
	// promoted DR secondary takes over.
	DR           bool   `json:"dr,omitempty"`
	DRKey        []byte `json:"dr_key,omitempty"`
	PrimaryState []byte `json:"primary_state,omitempty"`
	// FilterID is the ID of the paths filter set for this secondary when it
	// was activated ("" for none): ReplicationKey is then the filter's key
	// (FilterKey) and its batches arrive on FilterSubject.
	FilterID string `json:"filter_id,omitempty"`
}

func (b *Bundle) validate() error {
	switch {
	case b.PrimaryClusterID == "" || b.SecondaryID == "":
		return fmt.Errorf("cluster id and secondary id are required")
	case len(b.RootKey) == 0:
		return fmt.Errorf("no root key")
	case len(b.ReplicationKey) != KeySize:
		return fmt.Errorf("replication key of %d bytes, want %d", len(b.ReplicationKey), KeySize)
	case len(b.RPCKey) != KeySize:
		return fmt.Errorf("rpc key of %d bytes, want %d", len(b.RPCKey), KeySize)
	case len(b.SigningPublicKey) != ed25519.PublicKeySize:
		return fmt.Errorf("signing public key of %d bytes, want %d", len(b.SigningPublicKey), ed25519.PublicKeySize)
	case b.Stream == "" || b.Subject == "":
		return fmt.Errorf("stream and subject are required")
	}
	return nil
}

// NewActivationKey generates the secondary's X25519 key pair for one activation.
// Its public key goes in ActivateRequest.PublicKey (PublicKey().Bytes()).
func NewActivationKey() (*ecdh.PrivateKey, error) {
	return ecdh.X25519().GenerateKey(rand.Reader)
}

// SealBundle encrypts b to recipient: an ephemeral X25519 key agreement,
// HKDF-SHA256 (info "coffer-bundle-v1", salt the two public keys) and
// AES-256-GCM. Only the holder of recipient's private key can open it.
func SealBundle(b *Bundle, recipient *ecdh.PublicKey) ([]byte, error) {
	if recipient == nil || recipient.Curve() != ecdh.X25519() {
		return nil, fmt.Errorf("seal bundle: recipient must be an X25519 public key")
	}
	if err := b.validate(); err != nil {
		return nil, fmt.Errorf("seal bundle: %w", err)
	}
	plain, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	shared, err := eph.ECDH(recipient)
	if err != nil {
		return nil, fmt.Errorf("seal bundle: %w", err)
	}
	msg := make([]byte, bundleHeaderLen, bundleHeaderLen+len(plain)+tagLen)
	msg[0] = bundleVersion
	copy(msg[1:], eph.PublicKey().Bytes())
	if _, err := rand.Read(msg[1+x25519Len : bundleHeaderLen]); err != nil {
		return nil, err
	}
	aead, aad, err := bundleAEAD(msg[:1+x25519Len], shared, recipient.Bytes())
	if err != nil {
		return nil, err
	}
	msg = aead.Seal(msg, msg[1+x25519Len:bundleHeaderLen], plain, aad)
	if len(msg) > MaxBundleSize {
		return nil, fmt.Errorf("seal bundle: %d bytes, limit %d", len(msg), MaxBundleSize)
	}
	return msg, nil
}

// bundleAEAD derives the GCM key and returns the AAD: version | ephemeral | recipient.
func bundleAEAD(versionEph, shared, recipient []byte) (aead cipher.AEAD, aad []byte, err error) {
	aad = append(append(make([]byte, 0, len(versionEph)+len(recipient)), versionEph...), recipient...)
	key, err := hkdf.Key(sha256.New, shared, aad[1:], bundleInfo, KeySize)
	if err != nil {
		return nil, nil, err
	}
	g, err := newGCM(key)
	if err != nil {
		return nil, nil, err
	}
	return g, aad, nil
}

// OpenBundle decrypts a bundle sealed to priv's public key. A bundle sealed to
// another key fails with ErrDecrypt; a damaged one with ErrCorrupt or
// ErrUnknownVersion.
func OpenBundle(msg []byte, priv *ecdh.PrivateKey) (*Bundle, error) {
	if priv == nil || priv.Curve() != ecdh.X25519() {
		return nil, fmt.Errorf("open bundle: key must be an X25519 private key")
	}
	if len(msg) == 0 {
		return nil, fmt.Errorf("open bundle: %w: empty", ErrCorrupt)
	}
	if msg[0] != bundleVersion {
		return nil, fmt.Errorf("open bundle: %w: bundle version %d", ErrUnknownVersion, msg[0])
	}
	if len(msg) < bundleHeaderLen+tagLen || len(msg) > MaxBundleSize {
		return nil, fmt.Errorf("open bundle: %w: %d bytes", ErrCorrupt, len(msg))
	}
	eph, err := ecdh.X25519().NewPublicKey(msg[1 : 1+x25519Len])
	if err != nil {
		return nil, fmt.Errorf("open bundle: %w: ephemeral key: %v", ErrCorrupt, err)
	}
	shared, err := priv.ECDH(eph)
	if err != nil {
		// A low-order point: no honest sender produces it.
		return nil, fmt.Errorf("open bundle: %w: key agreement: %v", ErrDecrypt, err)
	}
	aead, aad, err := bundleAEAD(msg[:1+x25519Len], shared, priv.PublicKey().Bytes())
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, msg[1+x25519Len:bundleHeaderLen], msg[bundleHeaderLen:], aad)
	if err != nil {
		return nil, fmt.Errorf("open bundle: %w", ErrDecrypt)
	}
	b := new(Bundle)
	if err := json.Unmarshal(plain, b); err != nil {
		return nil, fmt.Errorf("open bundle: %w: %v", ErrCorrupt, err)
	}
	if err := b.validate(); err != nil {
		return nil, fmt.Errorf("open bundle: %w: %v", ErrCorrupt, err)
	}
	return b, nil
}
