package replication

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"
)

// Claim is a replication set's generation record: which cluster holds the
// set as its primary, in which generation, written by compare-and-set to a
// JetStream KV key (GenerationBucket) and signed with the set's signing key,
// because anyone on the bus can write there. Layout (docs/replication.md,
// "Generations"):
//
//	+---------+------------------------------------------------+-----------+
//	| version | JSON {"v":1,"set","gen","cluster_id","instance",| signature |
//	| 1 = 1   |       "shipped","renewed","released"}           | 64        |
//	+---------+------------------------------------------------+-----------+
//	signature = Ed25519ctx(signing key, context "coffer-generation-v1", every byte before it)
//
// Gen only grows: a primary claims the next one when it takes the set over
// after its storage went back in time, or on promotion. Instance is random
// per process: two processes of one cluster (a restored copy beside the
// original) differ there. Shipped is the holder's shipped WAL index at its
// last renewal, Renewed its clock then (for people: no decision reads
// another host's clock). Released is set by a holder that stopped cleanly:
// its successor need not wait for the claim to go quiet.
type Claim struct {
	V         int    `json:"v"`
	Set       string `json:"set"`
	Gen       uint64 `json:"gen"`
	ClusterID string `json:"cluster_id"`
	Instance  string `json:"instance"`
	// APIAddr is the holder's API address, for the fenced to name.
	APIAddr  string `json:"api_addr,omitempty"`
	Shipped  uint64 `json:"shipped"`
	Renewed  int64  `json:"renewed"`
	Released bool   `json:"released,omitempty"`
	// HATerm is the holder's term as its cluster's active node (the Consul
	// lock's index when it took it; 0 for a cluster of one node). A later
	// active node of the same cluster takes the set over from an earlier
	// one at once (primary/claim.go). Optional: a reader of version 1 that
	// does not know it ignores it.
	HATerm uint64 `json:"ha_term,omitempty"`
}

const (
	claimVersion    = 1
	claimSigContext = "coffer-generation-v1"
	// MaxClaimSize bounds a claim record (a stranger can store anything).
	MaxClaimSize = 4 << 10
)

// GenerationBucket is the KV bucket holding set's claim, under GenerationKey.
func GenerationBucket(set string) string { return "COFFER_GEN_" + sanitize(set, false) }

// GenerationKey is the claim's key in its bucket.
const GenerationKey = "primary"

// RenewedTime is Renewed as a time.
func (c *Claim) RenewedTime() time.Time { return time.UnixMilli(c.Renewed) }

// SignClaim encodes and signs c with the set's signing key.
func SignClaim(c *Claim, priv ed25519.PrivateKey) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign claim: signing key of %d bytes", len(priv))
	}
	c.V = claimVersion
	body, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	msg := append([]byte{claimVersion}, body...)
	if len(msg)+ed25519.SignatureSize > MaxClaimSize {
		return nil, fmt.Errorf("sign claim: %d bytes, limit %d", len(msg)+ed25519.SignatureSize, MaxClaimSize)
	}
	sig, err := priv.Sign(nil, msg, &ed25519.Options{Context: claimSigContext})
	if err != nil {
		return nil, err
	}
	return append(msg, sig...), nil
}

// OpenClaim verifies a claim record with the set's signing public key, then
// decodes it: ErrBadSignature for anything the key did not sign (a
// stranger's record), ErrUnknownVersion, ErrCorrupt.
func OpenClaim(msg []byte, pub ed25519.PublicKey) (*Claim, error) {
	if len(msg) == 0 {
		return nil, fmt.Errorf("claim: empty: %w", ErrCorrupt)
	}
	if msg[0] != claimVersion {
		return nil, fmt.Errorf("claim version %d: %w", msg[0], ErrUnknownVersion)
	}
	if len(msg) < 1+ed25519.SignatureSize || len(msg) > MaxClaimSize {
		return nil, fmt.Errorf("claim of %d bytes: %w", len(msg), ErrCorrupt)
	}
	at := len(msg) - ed25519.SignatureSize
	if len(pub) != ed25519.PublicKeySize || ed25519.VerifyWithOptions(pub, msg[:at], msg[at:], &ed25519.Options{Context: claimSigContext}) != nil {
		return nil, fmt.Errorf("claim: %w", ErrBadSignature)
	}
	c := new(Claim)
	if err := json.Unmarshal(msg[1:at], c); err != nil || c.V != claimVersion || c.Gen == 0 || c.Set == "" || c.ClusterID == "" {
		return nil, fmt.Errorf("claim body: %w", ErrCorrupt)
	}
	return c, nil
}
