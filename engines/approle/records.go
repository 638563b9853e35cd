package approle

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cofferhq/coffer/engines/internal/tokenfields"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
)

// recordVersion is the "v" of every record this package stores (see
// doc.go). A record with another "v" is refused, not guessed at.
const recordVersion = 1

// Key prefixes in the mount's view (see doc.go). role/, role_id/ and
// config/ are replicated; secret_id/ and accessor/ are cluster-local.
const (
	rolePrefix     = "role/"
	roleIDPrefix   = "role_id/"
	roleSaltKey    = "config/role_id_salt"
	secretIDPrefix = "secret_id/"
	accessorPrefix = "accessor/"
	localSaltKey   = secretIDPrefix + "salt"
)

// role is one AppRole as stored at "role/<name>".
type role struct {
	V int `json:"v"`
	// UID is random and fixed at creation. It names the role's secret ids
	// (secret_id/<uid>/...), so a role deleted and created again under the
	// same name never inherits secret ids that a secondary cluster kept.
	UID                string        `json:"uid"`
	RoleID             string        `json:"role_id"`
	BindSecretID       bool          `json:"bind_secret_id"`
	SecretIDBoundCIDRs []string      `json:"secret_id_bound_cidrs"`
	SecretIDNumUses    int           `json:"secret_id_num_uses"`
	SecretIDTTL        time.Duration `json:"secret_id_ttl_ns"`
	LocalSecretIDs     bool          `json:"local_secret_ids"`
	tokenfields.Settings
}

// roleIDIndex is stored at "role_id/<hmac of the role id>".
type roleIDIndex struct {
	V    int    `json:"v"`
	Name string `json:"name"`
}

// secretID is stored at "secret_id/<role uid>/<hmac of the secret id>".
type secretID struct {
	V               int               `json:"v"`
	Accessor        string            `json:"secret_id_accessor"`
	NumUses         int               `json:"secret_id_num_uses"`
	TTL             time.Duration     `json:"secret_id_ttl_ns"`
	CreationTime    time.Time         `json:"creation_time"`
	ExpirationTime  time.Time         `json:"expiration_time"`
	LastUpdatedTime time.Time         `json:"last_updated_time"`
	Metadata        map[string]string `json:"metadata"`
	CIDRList        []string          `json:"cidr_list"`
	TokenBoundCIDRs []string          `json:"token_bound_cidrs"`
}

// accessorEntry is stored at "accessor/<hmac of the accessor>".
type accessorEntry struct {
	V            int    `json:"v"`
	RoleUID      string `json:"role_uid"`
	SecretIDHMAC string `json:"secret_id_hmac"`
}

// salt is a random HMAC key, stored at roleSaltKey (replicated) or
// localSaltKey (cluster-local).
type salt struct {
	V   int    `json:"v"`
	Key string `json:"key"`
}

func roleKey(name string) string { return rolePrefix + name }

func roleIDKey(h string) string { return roleIDPrefix + h }

func secretIDKey(uid, h string) string { return secretIDPrefix + uid + "/" + h }

func accessorKey(h string) string { return accessorPrefix + h }

// mac is the hex HMAC-SHA256 of value under key.
func mac(key []byte, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil))
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// get reads and decodes the record at key into v; false when there is none.
// It reads storage on every call and caches nothing: replication may have
// changed the record since.
func get(ctx context.Context, s logical.Storage, key string, v any, version func() int) (bool, error) {
	e, err := s.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("read %q: %w", key, err)
	}
	if e == nil {
		return false, nil
	}
	if err := json.Unmarshal(e.Value, v); err != nil {
		return false, fmt.Errorf("decode %q: %w", key, err)
	}
	if got := version(); got != recordVersion {
		return false, fmt.Errorf("decode %q: record version %d is not supported by this build (want %d): upgrade coffer", key, got, recordVersion)
	}
	return true, nil
}

// putOp encodes v as a transaction put of key.
func putOp(key string, v any) (*storage.TxnOp, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %q: %w", key, err)
	}
	return &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: key, Value: raw}}, nil
}

// txnOp is a storage transaction operation.
type txnOp = storage.TxnOp

func deleteOp(key string) *storage.TxnOp {
	return &storage.TxnOp{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: key}}
}

func loadRole(ctx context.Context, s logical.Storage, name string) (*role, error) {
	r := &role{}
	ok, err := get(ctx, s, roleKey(name), r, func() int { return r.V })
	if !ok || err != nil {
		return nil, err
	}
	return r, nil
}

func loadRoleIDIndex(ctx context.Context, s logical.Storage, h string) (*roleIDIndex, error) {
	x := &roleIDIndex{}
	ok, err := get(ctx, s, roleIDKey(h), x, func() int { return x.V })
	if !ok || err != nil {
		return nil, err
	}
	return x, nil
}

func loadSecretID(ctx context.Context, s logical.Storage, key string) (*secretID, error) {
	x := &secretID{}
	ok, err := get(ctx, s, key, x, func() int { return x.V })
	if !ok || err != nil {
		return nil, err
	}
	return x, nil
}

func loadAccessor(ctx context.Context, s logical.Storage, h string) (*accessorEntry, error) {
	x := &accessorEntry{}
	ok, err := get(ctx, s, accessorKey(h), x, func() int { return x.V })
	if !ok || err != nil {
		return nil, err
	}
	return x, nil
}

// loadSalt reads the salt at key; nil when there is none.
func loadSalt(ctx context.Context, s logical.Storage, key string) ([]byte, error) {
	x := &salt{}
	ok, err := get(ctx, s, key, x, func() int { return x.V })
	if !ok || err != nil {
		return nil, err
	}
	k, err := hex.DecodeString(x.Key)
	if err != nil || len(k) < 16 {
		return nil, fmt.Errorf("decode %q: not a valid salt", key)
	}
	return k, nil
}

// ensureSalt reads the salt at key, creating it when there is none. The
// caller holds b.saltMu, so two requests never create two salts.
func ensureSalt(ctx context.Context, s logical.Storage, key string) ([]byte, error) {
	k, err := loadSalt(ctx, s, key)
	if err != nil || k != nil {
		return k, err
	}
	fresh := randomHex(32)
	op, err := putOp(key, &salt{V: recordVersion, Key: fresh})
	if err != nil {
		return nil, err
	}
	if err := s.Put(ctx, op.Entry); err != nil {
		return nil, fmt.Errorf("write %q: %w", key, err)
	}
	return hex.DecodeString(fresh)
}
