package tokens

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cofferhq/coffer/storage"
)

// Storage keys, relative to the view given to New.
const (
	saltKey        = "salt"
	idPrefix       = "id/"
	accessorPrefix = "accessor/"
	parentPrefix   = "parent/"
)

// loadSalt returns the HMAC key, creating it on first use.
func (s *Store) loadSalt(ctx context.Context) ([]byte, error) {
	s.saltMu.Lock()
	defer s.saltMu.Unlock()
	if s.salt != nil {
		return s.salt, nil
	}
	e, err := s.storage.Get(ctx, saltKey)
	if err != nil {
		return nil, fmt.Errorf("read token salt: %w", err)
	}
	if e != nil {
		var r saltRecord
		if err := json.Unmarshal(e.Value, &r); err == nil && r.V > 0 {
			if r.V > recordVersion {
				return nil, fmt.Errorf("read token salt: version %d is newer than this Coffer understands; upgrade Coffer", r.V)
			}
			if len(r.Salt) < 16 {
				return nil, fmt.Errorf("read token salt: %d bytes, want at least 16; the token store is damaged", len(r.Salt))
			}
			s.salt = r.Salt
			return s.salt, nil
		}
		if len(e.Value) == 32 { // the first token store wrote the raw salt
			s.salt = e.Value
			return s.salt, nil
		}
		return nil, errors.New("read token salt: unreadable record; the token store is damaged")
	}
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("generate token salt: %w", err)
	}
	b, err := json.Marshal(saltRecord{V: recordVersion, Salt: salt})
	if err != nil {
		return nil, err
	}
	if err := s.storage.Put(ctx, &storage.Entry{Key: saltKey, Value: b}); err != nil {
		return nil, fmt.Errorf("store token salt: %w", err)
	}
	s.salt = salt
	return salt, nil
}

// hash returns HMAC-SHA256(salt, v) in hex: the storage name of a token or accessor.
func (s *Store) hash(ctx context.Context, v string) (string, error) {
	salt, err := s.loadSalt(ctx)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(v))
	return hex.EncodeToString(m.Sum(nil)), nil
}

// loadKey reads the token stored under id/<key>; nil when there is none.
func (s *Store) loadKey(ctx context.Context, key string) (*Entry, error) {
	raw, err := s.storage.Get(ctx, idPrefix+key)
	if err != nil {
		return nil, fmt.Errorf("read token: %w", err)
	}
	if raw == nil {
		return nil, nil
	}
	return decodeEntry(raw.Value)
}

func putOp(key string, v any) (*storage.TxnOp, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: key, Value: b}}, nil
}

func deleteOp(key string) *storage.TxnOp {
	return &storage.TxnOp{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: key}}
}

func entryOp(key string, e *Entry) (*storage.TxnOp, error) {
	b, err := encodeEntry(e)
	if err != nil {
		return nil, err
	}
	return &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: idPrefix + key, Value: b}}, nil
}
