// Package inmem is an in-memory storage.Backend and storage.Transactional for
// tests and dev mode. It keeps nothing across restarts and must never be used
// where data has to survive the process.
package inmem

import (
	"context"
	"sort"
	"strings"
	"sync"

	"github.com/cofferhq/coffer/storage"
)

// Backend keeps entries in a map guarded by one RWMutex.
type Backend struct {
	mu     sync.RWMutex
	data   map[string][]byte
	closed bool
}

var _ storage.Transactional = (*Backend)(nil)

// New returns an empty backend.
func New() *Backend { return &Backend{data: make(map[string][]byte)} }

// Get returns a copy of the stored value, or nil when the key is absent.
func (b *Backend) Get(ctx context.Context, key string) (*storage.Entry, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, storage.ErrClosed
	}
	v, ok := b.data[key]
	if !ok {
		return nil, nil
	}
	return &storage.Entry{Key: key, Value: clone(v)}, nil
}

// Put stores a copy of entry.Value.
func (b *Backend) Put(ctx context.Context, entry *storage.Entry) error {
	return b.Transaction(ctx, []*storage.TxnOp{{Operation: storage.PutOperation, Entry: entry}})
}

// Delete removes key; a missing key is not an error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	return b.Transaction(ctx, []*storage.TxnOp{{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: key}}})
}

// List returns the one-level names under prefix.
func (b *Backend) List(ctx context.Context, prefix string) ([]string, error) {
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return nil, storage.ErrClosed
	}
	var keys []string
	for k := range b.data {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	b.mu.RUnlock()
	sort.Strings(keys)
	return storage.ListNames(prefix, keys), nil
}

// Transaction applies ops atomically under the write lock.
func (b *Backend) Transaction(ctx context.Context, ops []*storage.TxnOp) error {
	if err := storage.ValidateOps(ops); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return storage.ErrClosed
	}
	for _, op := range ops {
		switch op.Operation {
		case storage.PutOperation:
			b.data[op.Entry.Key] = clone(op.Entry.Value)
		case storage.DeleteOperation:
			delete(b.data, op.Entry.Key)
		}
	}
	return nil
}

// Close makes every later call fail with storage.ErrClosed.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

func clone(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return append([]byte(nil), v...)
}
