package logical

import (
	"context"
	"strings"

	"github.com/cofferhq/coffer/storage"
)

// View confines a storage to one prefix: every key a backend uses is
// prefixed on the way down and stripped on the way up.
type View struct {
	inner  storage.Transactional
	prefix string
}

var _ Storage = (*View)(nil)

// NewView returns the view of inner under prefix (which should end in "/").
func NewView(inner storage.Transactional, prefix string) *View {
	return &View{inner: inner, prefix: prefix}
}

// Prefix returns the view's prefix.
func (v *View) Prefix() string { return v.prefix }

// Get reads key under the prefix.
func (v *View) Get(ctx context.Context, key string) (*storage.Entry, error) {
	e, err := v.inner.Get(ctx, v.prefix+key)
	if err != nil || e == nil {
		return nil, err
	}
	e.Key = strings.TrimPrefix(e.Key, v.prefix)
	return e, nil
}

// Put writes entry under the prefix.
func (v *View) Put(ctx context.Context, e *storage.Entry) error {
	return v.inner.Put(ctx, &storage.Entry{Key: v.prefix + e.Key, Value: e.Value})
}

// Delete removes key under the prefix.
func (v *View) Delete(ctx context.Context, key string) error {
	return v.inner.Delete(ctx, v.prefix+key)
}

// List lists under the prefix.
func (v *View) List(ctx context.Context, prefix string) ([]string, error) {
	return v.inner.List(ctx, v.prefix+prefix)
}

// Transaction applies ops under the prefix atomically.
func (v *View) Transaction(ctx context.Context, ops []*storage.TxnOp) error {
	out := make([]*storage.TxnOp, len(ops))
	for i, op := range ops {
		if op == nil || op.Entry == nil {
			return storage.ErrInvalidOperation
		}
		out[i] = &storage.TxnOp{Operation: op.Operation, Entry: &storage.Entry{Key: v.prefix + op.Entry.Key, Value: op.Entry.Value}}
	}
	return v.inner.Transaction(ctx, out)
}
