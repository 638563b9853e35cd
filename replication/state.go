package replication

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// StateRecord is one versioned JSON record of a cluster's own replication
// state (the primary's keys and registry, its shipped index; a secondary's
// secret state and its position), stored under Key of a storage.Backend:
//
//	{"v":<Version>, ...T's other fields}
//
// T's JSON must carry the version as its "v" field, first, set by the caller
// to Version when it builds a T (the record does not rewrite it, so the bytes
// are exactly json.Marshal of T). Load refuses any other version: a record
// written by a newer build is never half read. Key, Version and T's JSON field
// names are part of the disk format: never change them; a new layout takes a
// new Version.
type StateRecord[T any] struct {
	// Key is the storage key.
	Key string
	// Version is the "v" this build reads.
	Version int
	// Name says what the record holds, in errors ("read <Name>: ..."); the
	// key when empty.
	Name string
}

func (r StateRecord[T]) name() string {
	if r.Name == "" {
		return r.Key
	}
	return r.Name
}

// Encode is T's JSON.
func (r StateRecord[T]) Encode(v *T) ([]byte, error) {
	buf, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", r.name(), err)
	}
	return buf, nil
}

// Decode checks the version, then decodes buf.
func (r StateRecord[T]) Decode(buf []byte) (*T, error) {
	var head struct {
		V int `json:"v"`
	}
	if err := json.Unmarshal(buf, &head); err != nil {
		return nil, fmt.Errorf("read %s: %w", r.name(), err)
	}
	if head.V != r.Version {
		return nil, fmt.Errorf("read %s: version %d, this build knows %d (written by a newer coffer? upgrade this server)", r.name(), head.V, r.Version)
	}
	v := new(T)
	if err := json.Unmarshal(buf, v); err != nil {
		return nil, fmt.Errorf("read %s: %w", r.name(), err)
	}
	return v, nil
}

// Load reads and decodes the record: (nil, nil) when b has none.
func (r StateRecord[T]) Load(ctx context.Context, b storage.Backend) (*T, error) {
	e, err := b.Get(ctx, r.Key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", r.name(), err)
	}
	if e == nil {
		return nil, nil
	}
	return r.Decode(e.Value)
}

// Save encodes v and writes it.
func (r StateRecord[T]) Save(ctx context.Context, b storage.Backend, v *T) error {
	op, err := r.Op(v)
	if err != nil {
		return err
	}
	if err := b.Put(ctx, op.Entry); err != nil {
		return fmt.Errorf("write %s: %w", r.name(), err)
	}
	return nil
}

// Op is the Put of v, to commit in one transaction with other writes.
func (r StateRecord[T]) Op(v *T) (*storage.TxnOp, error) {
	buf, err := r.Encode(v)
	if err != nil {
		return nil, err
	}
	return &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: r.Key, Value: buf}}, nil
}

// LagOf is how far behind a secondary is in time: 0 once it has applied
// the primary's last WAL index (lastWAL, as known), else the age at now of
// the newest entry it applied (commit, the primary's commit time in Unix
// nanoseconds; 0 when unknown, which reads as no lag known). A stopped
// secondary's lag grows with the clock; it falls to 0 once it catches up.
func LagOf(now time.Time, lastRemote, lastWAL uint64, commit int64) time.Duration {
	if lastRemote >= lastWAL || commit == 0 {
		return 0
	}
	return max(now.Sub(time.Unix(0, commit)), 0)
}
