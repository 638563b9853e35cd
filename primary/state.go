package primary

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strconv"
	"time"

	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/storage"
)

// Keys under Config.State. Part of the disk format: do not change them.
const (
	stateKey   = "state"   // persisted: keys, epoch, registry
	shippedKey = "shipped" // persisted: the last index JetStream acknowledged
	stateV     = 1
)

// Secondary states, the "state" of SecondaryStatus.
const (
	SecondaryPending = "pending" // a token was issued and not yet used
	SecondaryActive  = "active"  // activated with its token
	SecondaryRevoked = "revoked" // revoked: every RPC refused
)

// persisted is the JSON at Config.State "state" (version 1). []byte fields are
// base64 in JSON.
type persisted struct {
	V          int                      `json:"v"`
	ClusterID  string                   `json:"cluster_id"`
	SigningKey []byte                   `json:"signing_key"` // ed25519 private key, 64 bytes
	Epoch      uint32                   `json:"epoch"`
	Keys       map[string][]byte        `json:"keys"` // replication key per epoch (decimal)
	Secondary  map[string]*secondaryRec `json:"secondaries"`
	// Generation is the set's generation this cluster last held (absent
	// before the first claim); Fenced, when set, says who holds the set now:
	// this cluster ships nothing and takes no writes until demoted.
	Generation uint64    `json:"generation,omitempty"`
	Fenced     *fenceRec `json:"fenced,omitempty"`
	// DR is set while DR replication is enabled: batches carry a DR
	// section (local ops) sealed under DRKeys[epoch], and DR tokens are
	// issued. DRKeys only ever reach DR secondaries.
	DR     bool              `json:"dr,omitempty"`
	DRKeys map[string][]byte `json:"dr_keys,omitempty"`
}

// secondaryRec is one secondary in the registry.
type secondaryRec struct {
	State        string    `json:"state"`
	JTI          string    `json:"jti,omitempty"`
	TokenExpires time.Time `json:"token_expires,omitzero"`
	// Secret is the pending token's activation secret: the activation request
	// must carry a MAC under it. Dropped once the token is used.
	Secret []byte `json:"activation_secret,omitempty"`
	// ActivatedBy is the digest of the activation request that used the
	// token: the same request delivered again gets the same answer.
	ActivatedBy []byte    `json:"activated_by,omitempty"`
	RPCKey      []byte    `json:"rpc_key,omitempty"`
	ActivatedAt time.Time `json:"activated_at,omitzero"`
	RevokedAt   time.Time `json:"revoked_at,omitzero"`
	// Kind is KindDR for a DR secondary ("" for a performance one).
	Kind string `json:"kind,omitempty"`
	// Filter is its paths filter (absent: none); it outlives revocation
	// and a new token, as it belongs to the id.
	Filter *replication.Filter `json:"paths_filter,omitempty"`
}

// KindDR marks a DR secondary in the registry and in its token.
const KindDR = "dr"

// shippedRec is the JSON at Config.State "shipped" (version 1).
type shippedRec struct {
	V     int    `json:"v"`
	Index uint64 `json:"index"` // the last WAL index JetStream acknowledged
	// Seq is the highest WAL stream sequence the shipper has seen (absent in
	// records written before it existed): a WAL stream re-created after it
	// was deleted starts past it (docs/replication.md, "The WAL stream on an
	// untrusted bus").
	Seq uint64 `json:"seq,omitempty"`
}

func (s *persisted) key(epoch uint32) []byte { return s.Keys[strconv.FormatUint(uint64(epoch), 10)] }

// drKey is the DR key of epoch, nil when there is none.
func (s *persisted) drKey(epoch uint32) []byte {
	return s.DRKeys[strconv.FormatUint(uint64(epoch), 10)]
}

// ensureDRKey gives the current epoch a DR key when it has none.
func (s *persisted) ensureDRKey() {
	if s.DRKeys == nil {
		s.DRKeys = map[string][]byte{}
	}
	if s.drKey(s.Epoch) == nil {
		s.DRKeys[strconv.FormatUint(uint64(s.Epoch), 10)] = randomKey()
	}
}

func (s *persisted) setKey(epoch uint32, key []byte) {
	s.Keys[strconv.FormatUint(uint64(epoch), 10)] = key
}

func (s *persisted) signer() ed25519.PrivateKey { return ed25519.PrivateKey(s.SigningKey) }

// Records of Config.State (replication.StateRecord: {"v":1,...}).
var (
	stateRecord   = replication.StateRecord[persisted]{Key: stateKey, Version: stateV, Name: "primary replication state"}
	shippedRecord = replication.StateRecord[shippedRec]{Key: shippedKey, Version: stateV, Name: "shipped index"}
)

func loadState(ctx context.Context, b storage.Backend) (*persisted, error) {
	s, err := stateRecord.Load(ctx, b)
	if err != nil || s == nil {
		return nil, err
	}
	if len(s.SigningKey) != ed25519.PrivateKeySize || s.key(s.Epoch) == nil {
		return nil, fmt.Errorf("read primary replication state: the signing key or the key of epoch %d is missing: the state is damaged; disable and re-enable replication", s.Epoch)
	}
	if s.Secondary == nil {
		s.Secondary = make(map[string]*secondaryRec)
	}
	return s, nil
}

func saveState(ctx context.Context, b storage.Backend, s *persisted) error {
	return stateRecord.Save(ctx, b, s)
}

// StoredShipped reads the shipped index a primary stored under state (the
// view it runs with, Config.State) without starting anything: the last WAL
// index JetStream acknowledged as of the last time the shipper stored it
// (at most 1 s or 64 batches behind, and exact after Stop). ok is false when
// none is stored: this cluster is not a primary (Enable stores it first,
// Disable deletes it first). The WAL collector must not truncate past it
// while ok, whether or not the primary runs: entries after it are not
// known to be shipped.
func StoredShipped(ctx context.Context, state storage.Backend) (index uint64, ok bool, err error) {
	r, ok, err := loadShipped(ctx, state)
	return r.Index, ok, err
}

func loadShipped(ctx context.Context, b storage.Backend) (shippedRec, bool, error) {
	r, err := shippedRecord.Load(ctx, b)
	if err != nil || r == nil {
		return shippedRec{}, false, err
	}
	return *r, true, nil
}

func saveShipped(ctx context.Context, b storage.Backend, index, seq uint64) error {
	return shippedRecord.Save(ctx, b, &shippedRec{V: stateV, Index: index, Seq: seq})
}
