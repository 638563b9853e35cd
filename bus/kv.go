package bus

import (
	"context"
	"errors"
	"fmt"

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
	b      *Bus
	bucket string
	key    string
	kv     jetstream.KeyValue
}

// Register opens (creating when absent) the KV bucket and returns its key.
// replicas is the bucket's JetStream replica count (0 = 1).
func (b *Bus) Register(ctx context.Context, bucket, key string, replicas int) (*Register, error) {
	if replicas <= 0 {
		replicas = 1
	}
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, History: 1, Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("open KV bucket %s: %w (%s)", bucket, err, b.hint(err))
	}
	return &Register{b: b, bucket: bucket, key: key, kv: kv}, nil
}

// Get returns the value and its revision; (nil, 0, nil) when the key is
// absent or deleted.
func (r *Register) Get(ctx context.Context) ([]byte, uint64, error) {
	e, err := r.kv.Get(ctx, r.key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return nil, 0, nil
	case err != nil:
		return nil, 0, fmt.Errorf("read %s/%s: %w (%s)", r.bucket, r.key, err, r.b.hint(err))
	}
	return e.Value(), e.Revision(), nil
}

// Set writes value if the key is still at revision rev (0: only if the key
// is absent or deleted) and returns the new revision; ErrConflict when not.
func (r *Register) Set(ctx context.Context, value []byte, rev uint64) (uint64, error) {
	var n uint64
	var err error
	if rev == 0 {
		n, err = r.kv.Create(ctx, r.key, value)
	} else {
		n, err = r.kv.Update(ctx, r.key, value, rev)
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
