package secondary

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strconv"

	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/storage"
)

// DefaultStateKey is the default Config.StateKey.
const DefaultStateKey = "core/replication/secondary/state"

// secretKey is the key under Config.State of the secret state.
const secretKey = "state"

const stateV = 1

// secret is the JSON (version 1) stored under Config.State "state": what the
// bundle gave minus the root key (the lead installs that in its seal), plus the
// replication keys fetched since, by epoch. It holds keys: Config.State must
// encrypt (a barrier view).
type secret struct {
	V                int               `json:"v"`
	PrimaryClusterID string            `json:"primary_cluster_id"`
	SecondaryID      string            `json:"secondary_id"`
	PrimaryAPIAddr   string            `json:"primary_api_addr"`
	BusURL           string            `json:"bus_url"`
	SigningPublicKey []byte            `json:"signing_public_key"`
	RPCKey           []byte            `json:"rpc_key"`
	Stream           string            `json:"stream"`
	Subject          string            `json:"subject"`
	Epoch            uint32            `json:"epoch"` // the newest epoch known
	Keys             map[string][]byte `json:"keys"`  // replication key by epoch (decimal)
	// A DR secondary's: DR keys by epoch, and the primary's replication
	// state (primary's own JSON), which it takes over when promoted.
	DRKeys       map[string][]byte `json:"dr_keys,omitempty"`
	PrimaryState []byte            `json:"primary_state,omitempty"`
	// FilterID is the ID of the paths filter the primary applies to this
	// secondary ("" for none): its batches are on
	// replication.FilterSubject, and its keys are the filter's.
	FilterID string `json:"filter_id,omitempty"`
}

func (s *secret) drKey(epoch uint32) []byte { return s.DRKeys[strconv.FormatUint(uint64(epoch), 10)] }

func (s *secret) setDRKey(epoch uint32, k []byte) {
	if s.DRKeys == nil {
		s.DRKeys = map[string][]byte{}
	}
	s.DRKeys[strconv.FormatUint(uint64(epoch), 10)] = k
}

func (s *secret) key(epoch uint32) []byte { return s.Keys[strconv.FormatUint(uint64(epoch), 10)] }

func (s *secret) setKey(epoch uint32, k []byte) {
	s.Keys[strconv.FormatUint(uint64(epoch), 10)] = k
	if epoch > s.Epoch {
		s.Epoch = epoch
	}
}

func (s *secret) pub() ed25519.PublicKey { return ed25519.PublicKey(s.SigningPublicKey) }

// clone copies s for persisting outside the lock.
func (s *secret) clone() *secret {
	c := *s
	c.Keys = make(map[string][]byte, len(s.Keys))
	for k, v := range s.Keys {
		c.Keys[k] = v
	}
	if s.DRKeys != nil {
		c.DRKeys = make(map[string][]byte, len(s.DRKeys))
		for k, v := range s.DRKeys {
			c.DRKeys[k] = v
		}
	}
	return &c
}

// secretRecord is the record of the secret state under Config.State.
var secretRecord = replication.StateRecord[secret]{Key: secretKey, Version: stateV, Name: "secondary replication state"}

func loadSecret(ctx context.Context, b storage.Backend) (*secret, error) {
	s, err := secretRecord.Load(ctx, b)
	if err != nil || s == nil {
		return nil, err
	}
	if s.Keys == nil || len(s.RPCKey) == 0 || len(s.SigningPublicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("read secondary replication state: keys missing: the state is damaged; re-activate this secondary")
	}
	return s, nil
}

func saveSecret(ctx context.Context, b storage.Backend, s *secret) error {
	return secretRecord.Save(ctx, b, s)
}

// position is the JSON (version 1) at Config.StateKey, stored raw (it holds
// no secret) and written in the same storage transaction as every applied
// batch, so last_remote_wal and the data never disagree.
type position struct {
	V             int    `json:"v"`
	LastRemoteWAL uint64 `json:"last_remote_wal"`
	// Generation is the generation last_remote_wal belongs to (absent
	// before generations, and while it is 0).
	Generation uint64 `json:"generation,omitempty"`
}

// positionRecord is the record of last_remote_wal at key (Config.StateKey).
func positionRecord(key string) replication.StateRecord[position] {
	return replication.StateRecord[position]{Key: key, Version: stateV}
}

func positionOp(key string, last, gen uint64) *storage.TxnOp {
	op, _ := positionRecord(key).Op(&position{V: stateV, LastRemoteWAL: last, Generation: gen}) // integers always encode
	return op
}

func loadPosition(ctx context.Context, b storage.Backend, key string) (last, gen uint64, err error) {
	p, err := positionRecord(key).Load(ctx, b)
	if err != nil || p == nil {
		return 0, 0, err
	}
	return p.LastRemoteWAL, p.Generation, nil
}

// wipeChunk is how many deletions one Wipe transaction holds.
const wipeChunk = 1024

// Wipe deletes every key of raw for which keep returns false (nil keep deletes
// everything), in transactions of at most 1024 deletions, directly below the
// WAL. The lead calls it after Activate and before Start, keeping "wal/" (the
// secondary's own log, which a running wal.Log owns) and its cluster identity.
func Wipe(ctx context.Context, raw storage.Transactional, keep func(key string) bool) error {
	var doomed []string
	if err := storage.Walk(ctx, raw, "", "", func(k string) (bool, error) {
		if keep == nil || !keep(k) {
			doomed = append(doomed, k)
		}
		return true, nil
	}); err != nil {
		return fmt.Errorf("wipe: list: %w", err)
	}
	for len(doomed) > 0 {
		n := min(len(doomed), wipeChunk)
		ops := make([]*storage.TxnOp, n)
		for i, k := range doomed[:n] {
			ops[i] = &storage.TxnOp{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: k}}
		}
		if err := raw.Transaction(ctx, ops); err != nil {
			return fmt.Errorf("wipe: delete: %w", err)
		}
		doomed = doomed[n:]
	}
	return nil
}
