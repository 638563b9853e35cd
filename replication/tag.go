package replication

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Batch tags (version 5). Verifying a batch's Ed25519 signature was the
// largest cost of a secondary keeping up: a quarter of its CPU at 1,000
// writes/s (coffer bench -profile), against a few microseconds for an
// HMAC. A version 5 batch carries, besides its signature, one tag per
// secondary the primary knew when it sealed it (up to MaxBatchTags):
// HMAC-SHA256 under a key derived from that secondary's RPC key, which no
// other performance secondary holds (a DR secondary does: it receives the
// primary's whole state, signing key included). A secondary that finds a
// tag of its own that verifies trusts the batch on it; one that finds none
// (activated after the batch was sealed, or beyond MaxBatchTags) or one that
// does not verify (forged, copied from another batch) checks the signature
// as before. So a secondary holding the shared replication key can forge a
// tag for nobody but itself. The signature covers the tags: a batch whose
// tags were altered fails everywhere, like any altered batch, which delays
// replication as deleting messages would.
const (
	// TagIDLen is the length of a tag's secondary id: the first bytes of
	// SHA-256(tagIDLabel | secondary id).
	TagIDLen = 8
	// tagMACLen is the length of a tag's HMAC-SHA256, truncated.
	tagMACLen = 16
	// tagLen5 is one tag: secondary id and MAC.
	tagLen5 = TagIDLen + tagMACLen
	// tagCountLen is the length of the tag count after the tags.
	tagCountLen = 2
	// MaxBatchTags is the most tags SealBatchTagged writes in a batch: a
	// primary with more secondaries tags some, and the others check the
	// signature. It bounds what tags add to a message (MaxTagBlock), which
	// the primary reserves below the bus's max_payload.
	MaxBatchTags = 64
	// MaxTagBlock is the most bytes a batch's tags and their count take.
	MaxTagBlock = tagCountLen + MaxBatchTags*tagLen5
	// tagKeyInfo is the HKDF info deriving a secondary's tag key from its
	// RPC key; tagIDLabel starts the hash naming it; tagMACLabel starts
	// what a tag authenticates.
	tagKeyInfo  = "coffer-wal-tag-key-v5"
	tagIDLabel  = "coffer-wal-tag-id-v5"
	tagMACLabel = "coffer-wal-tag-v5"
)

// TagKey is one secondary's key for the tags of batches.
type TagKey struct {
	ID  [TagIDLen]byte
	Key [32]byte
}

// NewTagKey derives the tag key of secondary id from its RPC key:
// HKDF-SHA256(RPC key, info tagKeyInfo | "|" | id).
func NewTagKey(secondaryID string, rpcKey []byte) (TagKey, error) {
	var t TagKey
	if err := checkKey(rpcKey); err != nil {
		return t, fmt.Errorf("tag key of %s: %w", secondaryID, err)
	}
	k, err := hkdf.Key(sha256.New, rpcKey, nil, tagKeyInfo+"|"+secondaryID, len(t.Key))
	if err != nil {
		return t, fmt.Errorf("tag key of %s: %w", secondaryID, err)
	}
	copy(t.Key[:], k)
	h := sha256.Sum256([]byte(tagIDLabel + secondaryID))
	copy(t.ID[:], h[:])
	return t, nil
}

// mac is t's tag of a batch whose header and sections hash to digest.
func (t *TagKey) mac(digest []byte) []byte {
	m := hmac.New(sha256.New, t.Key[:])
	m.Write([]byte(tagMACLabel))
	m.Write(digest)
	return m.Sum(nil)[:tagMACLen]
}

// appendTags appends the tag block of a batch whose header and sections
// hash to digest: each key's id and tag, then their count.
func appendTags(msg, digest []byte, keys []TagKey) ([]byte, error) {
	if len(keys) > MaxBatchTags {
		return nil, fmt.Errorf("seal batch: %d tags, at most %d: tag some secondaries, the others check the signature", len(keys), MaxBatchTags)
	}
	for i := range keys {
		msg = append(append(msg, keys[i].ID[:]...), keys[i].mac(digest)...)
	}
	return binary.BigEndian.AppendUint16(msg, uint16(len(keys))), nil
}

// tagBlockLen is the length of the tag block that ends body (a version 5
// batch without its signature), or -1 when body cannot hold it.
func tagBlockLen(body []byte, min int) int {
	if len(body) < min+tagCountLen {
		return -1
	}
	n := int(binary.BigEndian.Uint16(body[len(body)-tagCountLen:]))
	l := tagCountLen + n*tagLen5
	if len(body)-l < min {
		return -1
	}
	return l
}

// tagged reports whether tags (a tag block) hold a tag of t that
// authenticates the header and sections hashing to digest.
func (t *TagKey) tagged(tags, digest []byte) bool {
	tags = tags[:len(tags)-tagCountLen]
	var want []byte
	for ; len(tags) >= tagLen5; tags = tags[tagLen5:] {
		if [TagIDLen]byte(tags[:TagIDLen]) != t.ID {
			continue
		}
		if want == nil {
			want = t.mac(digest)
		}
		if hmac.Equal(tags[TagIDLen:tagLen5], want) {
			return true
		}
	}
	return false
}
