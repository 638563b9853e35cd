package userpass

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/cofferhq/coffer/engines/internal/tokenfields"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
)

// recordVersion is the "v" of every record this package stores (see
// doc.go). A record with another "v" is refused, not guessed at.
const recordVersion = 1

// userPrefix is where users are stored in the mount's view.
const userPrefix = "user/"

// user is one user as stored at "user/<name>". The token fields are
// tokenfields.Settings, embedded so they sit at the record's top level.
type user struct {
	V            int    `json:"v"`
	PasswordHash string `json:"password_hash"`
	tokenfields.Settings
}

func userKey(name string) string { return userPrefix + name }

// loadUser reads a user, nil when there is none. It reads storage on every
// call and caches nothing: replication may have changed the user since.
func loadUser(ctx context.Context, s logical.Storage, name string) (*user, error) {
	key := userKey(name)
	e, err := s.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read user %q: %w", name, err)
	}
	if e == nil {
		return nil, nil
	}
	u := &user{}
	if err := json.Unmarshal(e.Value, u); err != nil {
		return nil, fmt.Errorf("decode %q: %w", key, err)
	}
	if u.V != recordVersion {
		return nil, fmt.Errorf("decode %q: record version %d is not supported by this build (want %d): upgrade coffer", key, u.V, recordVersion)
	}
	return u, nil
}

// saveUser writes a user.
func saveUser(ctx context.Context, s logical.Storage, name string, u *user) error {
	u.V = recordVersion
	raw, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("encode user %q: %w", name, err)
	}
	if err := s.Put(ctx, &storage.Entry{Key: userKey(name), Value: raw}); err != nil {
		return fmt.Errorf("write user %q: %w", name, err)
	}
	return nil
}
