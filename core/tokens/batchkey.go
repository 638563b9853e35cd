package tokens

// The batch token keys (format and rules in batch.go, "The keys").

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"

	"github.com/cofferhq/coffer/storage"
)

const (
	// batchSigningKeyVersion is the version of the signing key record.
	batchSigningKeyVersion = 1
	// batchPublicKeyVersion is the version of the published key record.
	batchPublicKeyVersion = 1
)

// batchSigningKeyRecord is this cluster's signing key (its Ed25519 seed).
type batchSigningKeyRecord struct {
	V    int    `json:"v"`
	Seed []byte `json:"seed"`
}

// batchPublicKeyRecord is the published public key.
type batchPublicKeyRecord struct {
	V   int    `json:"v"`
	Key []byte `json:"key"`
}

// InvalidateBatchKeys forgets the cached batch token keys: core calls it when
// replication changed either entry underneath the store (the published key
// on any secondary, the signing key on a DR secondary).
func (s *Store) InvalidateBatchKeys() {
	s.batchMu.Lock()
	s.batchSigner, s.batchPublished = nil, nil
	s.batchMu.Unlock()
}

// batchSigningKey returns the key a create signs with. It makes this
// cluster's key pair when there is none and the cluster may
// (CanGenerateBatchKey; ErrNoBatchKey, wrapped with the reason, when it may
// not), and publishes its public key when the cluster may
// (CanPublishBatchKey) and the published one is not already its own.
func (s *Store) batchSigningKey(ctx context.Context) (ed25519.PrivateKey, error) {
	if s.opts.BatchKeyStorage == nil {
		return nil, fmt.Errorf("%w: this token store has no storage for the batch token keys; create a service token", ErrNoBatchKey)
	}
	s.batchMu.Lock()
	defer s.batchMu.Unlock()
	priv, err := s.loadBatchSigner(ctx)
	if err != nil {
		return nil, err
	}
	publishErr := allowed(s.opts.CanPublishBatchKey)
	if priv == nil {
		if err := allowed(s.opts.CanGenerateBatchKey); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoBatchKey, err)
		}
		return s.generateBatchKey(ctx, publishErr == nil)
	}
	if publishErr != nil {
		return priv, nil
	}
	pub := priv.Public().(ed25519.PublicKey)
	published, err := s.loadBatchPublished(ctx)
	if err != nil {
		return nil, err
	}
	if published.Equal(pub) {
		return priv, nil
	}
	op, err := batchPublicKeyOp(s.opts.BatchPublicKeyPath, pub)
	if err != nil {
		return nil, err
	}
	if err := s.opts.BatchKeyStorage.Put(ctx, op.Entry); err != nil {
		return nil, fmt.Errorf("publish the batch token public key: %w", err)
	}
	if published != nil {
		s.log.Warn().Str("path", s.opts.BatchPublicKeyPath).Msg("batch token public key replaced by this cluster's: batch tokens signed by the previous key (a former primary's) are no longer accepted here, nor on the clusters that follow this one once it has replicated")
	} else {
		s.log.Info().Str("path", s.opts.BatchPublicKeyPath).Msg("batch token public key published")
	}
	s.batchPublished = pub
	return priv, nil
}

// batchVerifyKeys returns the keys a batch token may be signed with here:
// this cluster's own public key and the published one, once each; none when
// neither exists. Only a storage or decoding failure is an error.
func (s *Store) batchVerifyKeys(ctx context.Context) ([]ed25519.PublicKey, error) {
	if s.opts.BatchKeyStorage == nil {
		return nil, nil
	}
	s.batchMu.Lock()
	defer s.batchMu.Unlock()
	priv, err := s.loadBatchSigner(ctx)
	if err != nil {
		return nil, err
	}
	published, err := s.loadBatchPublished(ctx)
	if err != nil {
		return nil, err
	}
	var keys []ed25519.PublicKey
	if priv != nil {
		keys = append(keys, priv.Public().(ed25519.PublicKey))
	}
	if published != nil && (len(keys) == 0 || !keys[0].Equal(published)) {
		keys = append(keys, published)
	}
	return keys, nil
}

// allowed calls an Options permission; a nil function allows.
func allowed(f func() error) error {
	if f == nil {
		return nil
	}
	return f()
}

// loadBatchSigner returns this cluster's signing key, nil when it has none.
// Absence is not cached: on a DR secondary the key arrives by replication.
// s.batchMu is held.
func (s *Store) loadBatchSigner(ctx context.Context) (ed25519.PrivateKey, error) {
	if s.batchSigner != nil {
		return s.batchSigner, nil
	}
	raw, err := s.opts.BatchKeyStorage.Get(ctx, s.opts.BatchSigningKeyPath)
	if err != nil {
		return nil, fmt.Errorf("read the batch token signing key: %w", err)
	}
	if raw == nil {
		return nil, nil
	}
	var r batchSigningKeyRecord
	if err := decodeBatchKeyRecord("signing key", raw.Value, &r, &r.V, batchSigningKeyVersion); err != nil {
		return nil, err
	}
	if len(r.Seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("decode batch token signing key: %d bytes, want %d; the entry is damaged", len(r.Seed), ed25519.SeedSize)
	}
	s.batchSigner = ed25519.NewKeyFromSeed(r.Seed)
	return s.batchSigner, nil
}

// loadBatchPublished returns the published public key, nil when there is
// none. Absence is not cached: a secondary's arrives by replication.
// s.batchMu is held.
func (s *Store) loadBatchPublished(ctx context.Context) (ed25519.PublicKey, error) {
	if s.batchPublished != nil {
		return s.batchPublished, nil
	}
	raw, err := s.opts.BatchKeyStorage.Get(ctx, s.opts.BatchPublicKeyPath)
	if err != nil {
		return nil, fmt.Errorf("read the batch token public key: %w", err)
	}
	if raw == nil {
		return nil, nil
	}
	var r batchPublicKeyRecord
	if err := decodeBatchKeyRecord("public key", raw.Value, &r, &r.V, batchPublicKeyVersion); err != nil {
		return nil, err
	}
	if len(r.Key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("decode batch token public key: %d bytes, want %d; the entry is damaged", len(r.Key), ed25519.PublicKeySize)
	}
	s.batchPublished = ed25519.PublicKey(r.Key)
	return s.batchPublished, nil
}

// decodeBatchKeyRecord decodes one of the key records into r, whose version
// field is v, and checks that version.
func decodeBatchKeyRecord(what string, b []byte, r any, v *int, want int) error {
	if err := json.Unmarshal(b, r); err != nil {
		return fmt.Errorf("decode batch token %s: %w; the entry is damaged", what, err)
	}
	switch {
	case *v > want:
		return fmt.Errorf("decode batch token %s: version %d is newer than this Coffer understands (%d); upgrade Coffer", what, *v, want)
	case *v != want:
		return fmt.Errorf("decode batch token %s: invalid version %d; the entry is damaged", what, *v)
	}
	return nil
}

// generateBatchKey makes this cluster's key pair and stores it, with its
// public key published when publish, in one transaction. s.batchMu is held.
func (s *Store) generateBatchKey(ctx context.Context, publish bool) (ed25519.PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate the batch token signing key: %w", err)
	}
	b, err := json.Marshal(batchSigningKeyRecord{V: batchSigningKeyVersion, Seed: priv.Seed()})
	if err != nil {
		return nil, err
	}
	ops := []*storage.TxnOp{{Operation: storage.PutOperation, Entry: &storage.Entry{Key: s.opts.BatchSigningKeyPath, Value: b}}}
	if publish {
		op, err := batchPublicKeyOp(s.opts.BatchPublicKeyPath, pub)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	if err := s.opts.BatchKeyStorage.Transaction(ctx, ops); err != nil {
		return nil, fmt.Errorf("store the batch token signing key: %w", err)
	}
	s.log.Info().Str("path", s.opts.BatchSigningKeyPath).Bool("published", publish).Msg("batch token signing key generated")
	s.batchSigner = priv
	if publish {
		s.batchPublished = pub
	}
	return priv, nil
}

// batchPublicKeyOp is the write that publishes pub.
func batchPublicKeyOp(path string, pub ed25519.PublicKey) (*storage.TxnOp, error) {
	b, err := json.Marshal(batchPublicKeyRecord{V: batchPublicKeyVersion, Key: pub})
	if err != nil {
		return nil, err
	}
	return &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: path, Value: b}}, nil
}
