package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrConflict means a compare-and-set lost: the key's revision was not the
// one expected (another writer came first), or Create found the key there.
// Read it again and decide anew.
var ErrConflict = errors.New("compare-and-set conflict on NATS JetStream KV")

// Register is one key of a JetStream KV bucket written only by
// compare-and-set: the value a cluster claims, with the revision it read.
// The bus is untrusted: anyone on it may write or delete the key, so the
// caller signs what it stores and verifies what it reads.
type Register struct {
	b        *Bus
	bucket   string
	key      string
	replicas int
	kv       jetstream.KeyValue // re-created by Get when the bucket was deleted (one goroutine uses a Register)
}

// Register opens (creating when absent) the KV bucket and returns its key.
// replicas is the bucket's JetStream replica count (0 = 1).
func (b *Bus) Register(ctx context.Context, bucket, key string, replicas int) (*Register, error) {
	if replicas <= 0 {
		replicas = 1
	}
	r := &Register{b: b, bucket: bucket, key: key, replicas: replicas}
	kv, err := r.create(ctx)
	if err != nil {
		return nil, fmt.Errorf("open KV bucket %s: %w (%s)", bucket, err, b.hint(err))
	}
	r.kv = kv
	return r, nil
}

// create creates the bucket, or opens it when it exists.
func (r *Register) create(ctx context.Context) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := storeRetry(ctx, func() (err error) {
		kv, err = r.b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: r.bucket, History: 1, Storage: jetstream.FileStorage, Replicas: r.replicas,
		})
		return err
	})
	return kv, err
}

// Entry is a read of a Register: the value, its revision, and when the NATS
// server stored it (the server's clock: a writer cannot choose it).
type Entry struct {
	Value    []byte
	Revision uint64
	Stored   time.Time
}

// Get returns the current entry; a zero Entry when the key is absent or
// deleted. A deleted bucket is created again (empty).
func (r *Register) Get(ctx context.Context) (Entry, error) {
	e, err := r.kv.Get(ctx, r.key)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyDeleted) && r.remake(ctx) {
		e, err = r.kv.Get(ctx, r.key)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return Entry{}, nil
	case err != nil:
		return Entry{}, fmt.Errorf("read %s/%s: %w (%s)", r.bucket, r.key, err, r.b.hint(err))
	}
	return Entry{Value: e.Value(), Revision: e.Revision(), Stored: e.Created()}, nil
}

// remake creates the bucket again when it is gone (a stranger on the bus
// deleted it) and reports whether it did.
func (r *Register) remake(ctx context.Context) bool {
	if _, err := r.b.js.KeyValue(ctx, r.bucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
		return false
	}
	kv, err := r.create(ctx)
	if err != nil {
		return false
	}
	r.kv = kv
	return true
}

// Set writes value if the key is still at revision rev (0: only if the key
// is absent or deleted) and returns the new revision; ErrConflict when not.
func (r *Register) Set(ctx context.Context, value []byte, rev uint64) (uint64, error) {
	set := func() (uint64, error) {
		if rev == 0 {
			return r.kv.Create(ctx, r.key, value)
		}
		return r.kv.Update(ctx, r.key, value, rev)
	}
	n, err := set()
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) && r.remake(ctx) {
		n, err = set()
	}
	if err == nil {
		return n, nil
	}
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrKeyExists) || (errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
		return 0, fmt.Errorf("write %s/%s at revision %d: %w", r.bucket, r.key, rev, ErrConflict)
	}
	return 0, fmt.Errorf("write %s/%s: %w (%s)", r.bucket, r.key, err, r.b.hint(err))
}
