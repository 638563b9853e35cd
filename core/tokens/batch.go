package tokens

// Batch tokens: the token is the record, signed; nothing is stored.
//
// # Format (part of the wire format: change it only with a new version)
//
//	token     = "hvb." base64url(blob)      RFC 4648 §5 without padding, canonical
//	blob      = version(1)=2 | record | signature(64)
//	signature = Ed25519ctx(signing key, context "coffer-batch-token-v2",
//	            version | record)            RFC 8032 §5.1, every byte before it
//	record    = JSON, in clear:
//	  "p"   policies, sanitized          "n"   namespace, always "root"
//	  "d"   display name                 "m"   metadata (omitted when empty)
//	  "c"   creation path                "i"   issue time, unix nanoseconds
//	  "x"   expiry, unix nanoseconds     "o"   orphan
//	  "pk"  the parent's storage key (HMAC-SHA256 of its id, see keys.go);
//	        absent for an orphan
//	  "e"   entity id (omitted when empty)
//
// The record is not encrypted: whoever sees a batch token reads it, as its
// holder can with lookup-self. Nothing in it is a secret: policies, names,
// times and metadata are what lookup-self shows (so metadata must hold no
// secret), and the parent's storage key is a keyed hash that names a record
// of this cluster's store without revealing the parent's id (it only tells
// which batch tokens share a parent); no endpoint takes a storage key.
//
// The signature covers the version byte, and its context is used for
// nothing else, so a blob cannot be replayed under another version's rules
// nor pass for a signature of another Coffer format (the replication signing
// keys are other keys, with other contexts). Version 1 (AES-256-GCM under a
// replicated key) is no longer read: its tokens are invalid. Ed25519 is
// deterministic: two creates of the same record in the same nanosecond give
// the same string, which is the same token.
//
// A lookup accepts only the canonical encoding, at most MaxBatchTokenLen
// characters, of a version 2 blob whose signature verifies under one of this
// cluster's batch verification keys (below), whose record decodes with no
// unknown field and nothing after it, names the namespace root and not the
// root policy (which the code never writes), has not expired by this
// cluster's clock, and whose parent (when it has one) is a valid token of
// this cluster's store. Anything else is an invalid token: no error, nothing
// logged but at debug level.
//
// The record holds the parent's storage key, not its id. The storage key is
// salted per cluster (sys/token/salt is local), so a child batch token is
// valid only where its parent lives, as in Vault, where batch tokens cross
// performance replication only when orphan. DR replication copies the salt
// and the parent: a child survives a DR promotion with its parent.
//
// # The keys
//
//	<BatchSigningKeyPath>   {"v":1,"seed":"<base64 32 bytes>"}   local class
//	<BatchPublicKeyPath>    {"v":1,"key":"<base64 32 bytes>"}    replicated class
//
// Each cluster signs with its own Ed25519 key pair (the seed is the RFC 8032
// private key), made by its first batch create when it has none and
// CanGenerateBatchKey allows (core: every cluster but a DR secondary), never
// changed, kept under the barrier at a path of the local class: performance
// replication never ships it, DR replication does, so a DR secondary holds
// its primary's signing key. A cluster allowed to by CanPublishBatchKey (core:
// one that is neither a performance nor a DR secondary) also publishes its
// public key at BatchPublicKeyPath, a path of the replicated class, in the
// same transaction as the key pair's creation, or at its first batch create
// after it became allowed to; it replaces a published key that is not its own
// (the former primary's, after a promotion). The clusters that follow it
// receive that key by replication.
//
// A lookup verifies against this cluster's own public key and the published
// one (when they differ; either may be missing). So a primary's tokens are
// valid on the primary, on its performance secondaries and on its DR
// secondaries, promoted or not (they hold both keys), and a performance
// secondary's own tokens only on that secondary: the primary and the other
// secondaries neither hold its key nor have it published. No secondary can
// make a token its primary accepts.
//
// There is no rotation: a version 3 would add a key id after the version
// byte and keep old public keys to verify the tokens issued before, until
// they expire.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// BatchPrefix begins every batch token.
const BatchPrefix = "hvb."

const (
	// batchVersion is the blob version this code writes and reads.
	batchVersion byte = 2
	// batchSigContext is the Ed25519ctx context of batch token signatures.
	batchSigContext = "coffer-batch-token-v2"
	// batchNamespace is the only namespace Coffer has.
	batchNamespace = "root"
	// MaxBatchTokenLen bounds a batch token, prefix included: a create whose
	// token would be longer is refused, a longer string is not decoded.
	MaxBatchTokenLen = 8192
)

var (
	batchEncoding = base64.RawURLEncoding
	batchSigOpts  = &ed25519.Options{Context: batchSigContext}
)

// batchRecord is the record of a batch token (see the format above).
type batchRecord struct {
	Policies    []string          `json:"p"`
	Namespace   string            `json:"n"`
	DisplayName string            `json:"d,omitempty"`
	Meta        map[string]string `json:"m,omitempty"`
	Path        string            `json:"c,omitempty"`
	Issued      int64             `json:"i"`
	Expires     int64             `json:"x"`
	Orphan      bool              `json:"o,omitempty"`
	ParentKey   string            `json:"pk,omitempty"`
	EntityID    string            `json:"e,omitempty"`
}

// IsBatch reports whether id has the form of a batch token.
func IsBatch(id string) bool { return strings.HasPrefix(id, BatchPrefix) }

// checkNewBatch refuses what a batch token cannot be, with Vault's words.
func checkNewBatch(e *Entry) error {
	switch {
	case e.ID != "":
		return fmt.Errorf("%w: batch tokens cannot have a chosen id: the id is the signed record; omit id", ErrInvalidEntry)
	case e.NumUses != 0:
		return fmt.Errorf("%w: batch tokens cannot have \"num_uses\" set: nothing is stored to count uses; omit num_uses or create a service token", ErrInvalidEntry)
	case e.Period != 0:
		return fmt.Errorf("%w: batch tokens cannot have \"period\" set: they cannot be renewed; omit period or create a service token", ErrInvalidEntry)
	case e.ExplicitMaxTTL != 0:
		return fmt.Errorf("%w: batch tokens cannot have \"explicit_max_ttl\" set: their ttl is already final; give ttl instead", ErrInvalidEntry)
	case e.TTL < 0:
		return fmt.Errorf("%w: ttl must not be negative", ErrInvalidEntry)
	case hasPolicy(SanitizePolicies(e.Policies, false), "root"):
		return fmt.Errorf("%w: batch tokens cannot be root tokens: a root token must be revocable; create a service token", ErrInvalidEntry)
	}
	return nil
}

// createBatch is create for a batch token: it fills e (ID, Policies,
// CreationTime, TTL, ExpireTime, Orphan; no accessor, not renewable) and
// returns the warnings of the TTL granted. Nothing is written but the keys,
// once (batchkey.go).
func (s *Store) createBatch(ctx context.Context, e *Entry) ([]string, error) {
	if err := checkNewBatch(e); err != nil {
		return nil, err
	}
	e.Policies = SanitizePolicies(e.Policies, false)
	if len(e.Meta) == 0 {
		e.Meta = nil
	}
	e.Accessor, e.Renewable, e.Type = "", false, TypeBatch // Vault: never renewable
	now := s.now()
	e.CreationTime, e.Orphan = now, e.Parent == ""
	ttl, warnings, err := s.opts.computeTTL(ttlRequest{Now: now, Created: now, Base: e.TTL})
	if err != nil {
		return nil, err
	}
	e.TTL, e.ExpireTime = ttl, now.Add(ttl)

	rec := batchRecord{
		Policies: e.Policies, Namespace: batchNamespace, DisplayName: e.DisplayName, Meta: e.Meta, Path: e.Path,
		Issued: now.UnixNano(), Expires: e.ExpireTime.UnixNano(), Orphan: e.Orphan, EntityID: e.EntityID,
	}
	if e.Parent != "" {
		if rec.ParentKey, err = s.hash(ctx, e.Parent); err != nil {
			return nil, err
		}
		p, err := s.validKey(ctx, rec.ParentKey, false)
		if err != nil {
			return nil, err
		}
		if p == nil {
			return nil, ErrParentNotFound
		}
	}
	priv, err := s.batchSigningKey(ctx)
	if err != nil {
		return nil, err
	}
	id, err := signBatch(priv, &rec)
	if err != nil {
		return nil, err
	}
	if len(id) > MaxBatchTokenLen {
		return nil, fmt.Errorf("%w: the batch token would be %d characters, over the %d a token may have; give fewer or shorter metadata and policies", ErrInvalidEntry, len(id), MaxBatchTokenLen)
	}
	e.ID = id
	s.log.Debug().Strs("policies", e.Policies).Time("expire_time", e.ExpireTime).Bool("orphan", e.Orphan).Msg("batch token created")
	return warnings, nil
}

// signBatch makes the token of rec, signed with priv.
func signBatch(priv ed25519.PrivateKey, rec *batchRecord) (string, error) {
	pt, err := json.Marshal(rec)
	if err != nil {
		return "", fmt.Errorf("encode batch token: %w", err)
	}
	blob := make([]byte, 0, 1+len(pt)+ed25519.SignatureSize)
	blob = append(append(blob, batchVersion), pt...)
	sig, err := priv.Sign(nil, blob, batchSigOpts)
	if err != nil {
		return "", fmt.Errorf("sign batch token: %w", err)
	}
	return BatchPrefix + batchEncoding.EncodeToString(append(blob, sig...)), nil
}

// errBadBatch says why a string is not a valid batch token; it never
// leaves this file but as a debug log line.
var errBadBatch = errors.New("not a valid batch token")

// openBatch verifies a token against keys and decodes its record, or
// returns errBadBatch.
func openBatch(keys []ed25519.PublicKey, id string) (*batchRecord, error) {
	enc, ok := strings.CutPrefix(id, BatchPrefix)
	if !ok || len(id) > MaxBatchTokenLen {
		return nil, fmt.Errorf("%w: no prefix, or too long", errBadBatch)
	}
	// Only the canonical spelling: the decoder skips newlines and ignores
	// the unused bits of the last character, so the check is a round trip.
	blob, err := batchEncoding.DecodeString(enc)
	if err != nil || batchEncoding.EncodeToString(blob) != enc {
		return nil, fmt.Errorf("%w: not canonical base64url", errBadBatch)
	}
	if len(blob) < 1+ed25519.SignatureSize || blob[0] != batchVersion {
		return nil, fmt.Errorf("%w: short, or unknown version", errBadBatch)
	}
	signed, sig := blob[:len(blob)-ed25519.SignatureSize], blob[len(blob)-ed25519.SignatureSize:]
	if !verifyBatch(keys, signed, sig) {
		return nil, fmt.Errorf("%w: no key of this cluster verifies its signature", errBadBatch)
	}
	var rec batchRecord
	d := json.NewDecoder(bytes.NewReader(signed[1:]))
	d.DisallowUnknownFields()
	if err := d.Decode(&rec); err != nil {
		return nil, fmt.Errorf("%w: record: %v", errBadBatch, err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the record", errBadBatch)
	}
	if rec.Namespace != batchNamespace {
		return nil, fmt.Errorf("%w: namespace %q", errBadBatch, rec.Namespace)
	}
	// Never written (checkNewBatch), so a forgery by a holder of a key:
	// a root batch token could not be revoked.
	if hasPolicy(rec.Policies, "root") {
		return nil, fmt.Errorf("%w: root policy", errBadBatch)
	}
	return &rec, nil
}

// verifyBatch reports whether one of keys verifies sig over signed.
func verifyBatch(keys []ed25519.PublicKey, signed, sig []byte) bool {
	for _, k := range keys {
		if ed25519.VerifyWithOptions(k, signed, sig, batchSigOpts) == nil {
			return true
		}
	}
	return false
}

// lookupBatch returns the batch token id when it is valid now, else nil.
// Only a storage failure is an error.
func (s *Store) lookupBatch(ctx context.Context, id string) (*Entry, error) {
	if len(id) > MaxBatchTokenLen {
		return nil, nil
	}
	keys, err := s.batchVerifyKeys(ctx)
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	rec, err := openBatch(keys, id)
	if err != nil {
		s.log.Debug().Err(err).Msg("batch token refused")
		return nil, nil
	}
	now := s.now()
	expires := time.Unix(0, rec.Expires).UTC()
	if !now.Before(expires) {
		return nil, nil
	}
	if rec.ParentKey != "" {
		p, err := s.validKey(ctx, rec.ParentKey, false)
		if err != nil || p == nil {
			return nil, err
		}
	}
	issued := time.Unix(0, rec.Issued).UTC()
	policies := rec.Policies
	if policies == nil {
		policies = []string{}
	}
	return &Entry{
		ID: id, Policies: policies, Path: rec.Path, Meta: rec.Meta, DisplayName: rec.DisplayName,
		CreationTime: issued, TTL: expires.Sub(issued), ExpireTime: expires,
		Orphan: rec.Orphan, Type: TypeBatch, EntityID: rec.EntityID,
	}, nil
}
