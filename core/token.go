package core

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cofferhq/coffer/barrier"
	"github.com/cofferhq/coffer/storage"
)

// Token storage layout (all under the barrier, local class: never replicated):
//
//	sys/token/salt            32 random bytes, the HMAC key that hides token ids in storage keys
//	sys/token/id/<hmac hex>   JSON tokenEntry
//
// Storing HMAC(salt, token) rather than the token means a copy of the storage
// keys alone does not hand out tokens.
const (
	tokenSaltPath = "sys/token/salt"
	tokenIDPrefix = "sys/token/id/"
)

type tokenEntry struct {
	ID           string    `json:"id"`
	Accessor     string    `json:"accessor"`
	Policies     []string  `json:"policies"`
	CreationTime time.Time `json:"creation_time"`
}

func (t *tokenEntry) hasPolicy(p string) bool { return slices.Contains(t.Policies, p) }

// tokenStore is the minimal local token store sys operations need: root
// tokens created at init. The full store (child tokens, TTLs, accessors API)
// builds on this layout.
type tokenStore struct {
	b    *barrier.Barrier
	mu   sync.Mutex // guards salt
	salt []byte
}

func (s *tokenStore) key(ctx context.Context, token string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.salt == nil {
		e, err := s.b.Get(ctx, tokenSaltPath)
		if err != nil {
			return "", err
		}
		if e == nil {
			salt, err := barrier.RandomBytes(32)
			if err != nil {
				return "", err
			}
			if err := s.b.Put(ctx, &storage.Entry{Key: tokenSaltPath, Value: salt}); err != nil {
				return "", err
			}
			s.salt = salt
		} else {
			s.salt = e.Value
		}
	}
	m := hmac.New(sha256.New, s.salt)
	m.Write([]byte(token))
	return tokenIDPrefix + hex.EncodeToString(m.Sum(nil)), nil
}

// createRoot stores a root token; id is used when given (dev mode), else a
// random "hvs."-prefixed token is generated like Vault's service tokens.
func (s *tokenStore) createRoot(ctx context.Context, id string) (string, error) {
	if id == "" {
		raw, err := barrier.RandomBytes(18)
		if err != nil {
			return "", err
		}
		id = "hvs." + base64.RawURLEncoding.EncodeToString(raw)
	}
	acc, err := randomHex(12)
	if err != nil {
		return "", err
	}
	key, err := s.key(ctx, id)
	if err != nil {
		return "", err
	}
	te := tokenEntry{ID: id, Accessor: acc, Policies: []string{"root"}, CreationTime: time.Now().UTC()}
	if err := putJSON(ctx, s.b, key, te); err != nil {
		return "", fmt.Errorf("store token: %w", err)
	}
	return id, nil
}

// lookup returns the entry for token, or nil when it does not exist.
func (s *tokenStore) lookup(ctx context.Context, token string) (*tokenEntry, error) {
	if token == "" {
		return nil, nil
	}
	key, err := s.key(ctx, token)
	if err != nil {
		return nil, err
	}
	var te tokenEntry
	ok, err := getJSON(ctx, s.b, key, &te)
	if err != nil || !ok {
		return nil, err
	}
	return &te, nil
}
