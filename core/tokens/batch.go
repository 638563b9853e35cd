package tokens

// Batch tokens: the token is the record, encrypted; nothing is stored.
//
// # Format (part of the wire format: change it only with a new version)
//
//	token   = "hvb." base64url(blob)        RFC 4648 §5 without padding, canonical
//	blob    = version(1) | nonce(12) | AES-256-GCM(key, nonce, record, ad)
//	ad      = "coffer batch token" | version(1)
//	record  = JSON (version 1):
//	  "p"   policies, sanitized          "n"   namespace, always "root"
//	  "d"   display name                 "m"   metadata (omitted when empty)
//	  "c"   creation path                "i"   issue time, unix nanoseconds
//	  "x"   expiry, unix nanoseconds     "o"   orphan
//	  "pk"  the parent's storage key (HMAC-SHA256 of its id, see keys.go);
//	        absent for an orphan
//	  "e"   entity id (omitted when empty)
//
// The version byte is authenticated (it is in ad), so a blob cannot be
// replayed under another version's rules. A lookup accepts only the canonical
// encoding of a blob of a known version that opens under the key, whose
// record has not expired by this cluster's clock, and whose parent (when it
// has one) is a valid token of this cluster's store, and that does not name
// the root policy (which the code never writes). Anything else is an
// invalid token: no error, nothing logged but at debug level.
//
// The record holds the parent's storage key, not its id: whoever could open
// a batch token (with the key) learns no other token. The storage key is
// salted per cluster (sys/token/salt is local), so a child batch token is
// valid only where its parent lives, as in Vault, where batch tokens cross
// performance replication only when orphan. DR replication copies the salt
// and the parent: a child survives a DR promotion with its parent.
//
// # The key
//
//	<BatchKeyPath>   {"v":1,"key":"<base64 32 bytes>"}
//
// 32 random bytes, made by the first create of a batch token on a cluster
// allowed to (Options.CanGenerateBatchKey) and never changed. It lives under
// the barrier, at a path of the replicated class, so every cluster of the
// replication set reads the same key and accepts the same batch tokens. There
// is one key and no rotation: a version 2 would add a key term after the
// version byte (as the barrier's ciphertext does) and keep old terms to open
// the tokens issued before, until they expire.

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// BatchPrefix begins every batch token.
const BatchPrefix = "hvb."

const (
	// batchVersion is the blob version this code writes and reads.
	batchVersion byte = 1
	// batchAD prefixes the version byte in the GCM associated data.
	batchAD = "coffer batch token"
	// batchNamespace is the only namespace Coffer has.
	batchNamespace = "root"
	// batchKeyVersion is the version of the key record.
	batchKeyVersion = 1
	// MaxBatchTokenLen bounds a batch token, prefix included: a create whose
	// token would be longer is refused, a longer string is not decoded.
	MaxBatchTokenLen = 8192
)

var batchEncoding = base64.RawURLEncoding

// batchRecord is the plaintext of a batch token (see the format above).
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

// batchKeyRecord is the stored key.
type batchKeyRecord struct {
	V   int    `json:"v"`
	Key []byte `json:"key"`
}

// IsBatch reports whether id has the form of a batch token.
func IsBatch(id string) bool { return strings.HasPrefix(id, BatchPrefix) }

func batchAssociatedData(version byte) []byte {
	return append([]byte(batchAD), version)
}

// InvalidateBatchKey forgets the cached batch token key: core calls it when
// replication changed the key's entry underneath the store.
func (s *Store) InvalidateBatchKey() {
	s.batchMu.Lock()
	s.batchKey = nil
	s.batchMu.Unlock()
}

// batchCipher returns the batch token cipher. When there is no key yet it
// makes one if generate and the cluster may (CanGenerateBatchKey), returns
// ErrNoBatchKey (wrapped with the reason) if generate and it may not, and
// nil without error otherwise. Absence is never cached: a secondary's key
// arrives by replication.
func (s *Store) batchCipher(ctx context.Context, generate bool) (cipher.AEAD, error) {
	st := s.opts.BatchKeyStorage
	if st == nil {
		if generate {
			return nil, fmt.Errorf("%w: this token store has no storage for the batch token key; create a service token", ErrNoBatchKey)
		}
		return nil, nil
	}
	s.batchMu.Lock()
	defer s.batchMu.Unlock()
	if s.batchKey != nil {
		return s.batchKey, nil
	}
	raw, err := st.Get(ctx, s.opts.BatchKeyPath)
	if err != nil {
		return nil, fmt.Errorf("read batch token key: %w", err)
	}
	var key []byte
	switch {
	case raw != nil:
		if key, err = decodeBatchKey(raw.Value); err != nil {
			return nil, err
		}
	case !generate:
		return nil, nil
	default:
		if key, err = s.generateBatchKey(ctx); err != nil {
			return nil, err
		}
	}
	aead, err := newBatchAEAD(key)
	if err != nil {
		return nil, err
	}
	s.batchKey = aead
	return aead, nil
}

// generateBatchKey makes and stores the key. s.batchMu is held.
func (s *Store) generateBatchKey(ctx context.Context) ([]byte, error) {
	if s.opts.CanGenerateBatchKey != nil {
		if err := s.opts.CanGenerateBatchKey(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoBatchKey, err)
		}
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate batch token key: %w", err)
	}
	b, err := json.Marshal(batchKeyRecord{V: batchKeyVersion, Key: key})
	if err != nil {
		return nil, err
	}
	if err := s.opts.BatchKeyStorage.Put(ctx, &storage.Entry{Key: s.opts.BatchKeyPath, Value: b}); err != nil {
		return nil, fmt.Errorf("store batch token key: %w", err)
	}
	s.log.Info().Str("path", s.opts.BatchKeyPath).Msg("batch token key generated")
	return key, nil
}

func decodeBatchKey(b []byte) ([]byte, error) {
	var r batchKeyRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode batch token key: %w; the entry is damaged", err)
	}
	switch {
	case r.V > batchKeyVersion:
		return nil, fmt.Errorf("decode batch token key: version %d is newer than this Coffer understands (%d); upgrade Coffer", r.V, batchKeyVersion)
	case r.V != batchKeyVersion:
		return nil, fmt.Errorf("decode batch token key: invalid version %d; the entry is damaged", r.V)
	case len(r.Key) != 32:
		return nil, fmt.Errorf("decode batch token key: %d bytes, want 32; the entry is damaged", len(r.Key))
	}
	return r.Key, nil
}

func newBatchAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("batch token key: %w", err)
	}
	return cipher.NewGCM(block)
}

// checkNewBatch refuses what a batch token cannot be, with Vault's words.
func checkNewBatch(e *Entry) error {
	switch {
	case e.ID != "":
		return fmt.Errorf("%w: batch tokens cannot have a chosen id: the id is the encrypted token; omit id", ErrInvalidEntry)
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
// returns the warnings of the TTL granted. Nothing is written but the key,
// once.
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
	aead, err := s.batchCipher(ctx, true)
	if err != nil {
		return nil, err
	}
	id, err := sealBatch(aead, &rec)
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

// sealBatch encrypts rec into a token.
func sealBatch(aead cipher.AEAD, rec *batchRecord) (string, error) {
	pt, err := json.Marshal(rec)
	if err != nil {
		return "", fmt.Errorf("encode batch token: %w", err)
	}
	blob := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(pt)+aead.Overhead())
	blob[0] = batchVersion
	if _, err := rand.Read(blob[1:]); err != nil {
		return "", fmt.Errorf("batch token nonce: %w", err)
	}
	blob = aead.Seal(blob, blob[1:1+aead.NonceSize()], pt, batchAssociatedData(batchVersion))
	return BatchPrefix + batchEncoding.EncodeToString(blob), nil
}

// errBadBatch says why a string is not a valid batch token; it never
// leaves this file but as a debug log line.
var errBadBatch = errors.New("not a valid batch token")

// openBatch decrypts a token into its record, or returns errBadBatch.
func openBatch(aead cipher.AEAD, id string) (*batchRecord, error) {
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
	ns := aead.NonceSize()
	if len(blob) < 1+ns+aead.Overhead() || blob[0] != batchVersion {
		return nil, fmt.Errorf("%w: short, or unknown version", errBadBatch)
	}
	pt, err := aead.Open(nil, blob[1:1+ns], blob[1+ns:], batchAssociatedData(blob[0]))
	if err != nil {
		return nil, fmt.Errorf("%w: does not open under this cluster's key", errBadBatch)
	}
	var rec batchRecord
	d := json.NewDecoder(bytes.NewReader(pt))
	d.DisallowUnknownFields()
	if err := d.Decode(&rec); err != nil {
		return nil, fmt.Errorf("%w: record: %v", errBadBatch, err)
	}
	if rec.Namespace != batchNamespace {
		return nil, fmt.Errorf("%w: namespace %q", errBadBatch, rec.Namespace)
	}
	// Never written (checkNewBatch), so a forgery by a holder of the key:
	// a root batch token could not be revoked.
	if hasPolicy(rec.Policies, "root") {
		return nil, fmt.Errorf("%w: root policy", errBadBatch)
	}
	return &rec, nil
}

// lookupBatch returns the batch token id when it is valid now, else nil.
// Only a storage failure is an error.
func (s *Store) lookupBatch(ctx context.Context, id string) (*Entry, error) {
	if len(id) > MaxBatchTokenLen {
		return nil, nil
	}
	aead, err := s.batchCipher(ctx, false)
	if err != nil || aead == nil {
		return nil, err
	}
	rec, err := openBatch(aead, id)
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
