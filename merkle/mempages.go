package merkle

import (
	"context"
	"fmt"
	"strings"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
)

// MemoryPages returns a store for an index whose pages live in memory
// while its data is read from data: the keys under "merkle/" (pages,
// checkpoint, markers) go to a fresh in-memory backend, every other key is
// read from data, and a write of another key is refused. A paths filter's
// view on the primary is such an index: rebuilt at each start (Live's
// Start finds no checkpoint and reindexes), it never touches the cluster's
// own index or storage.
func MemoryPages(data storage.Backend) storage.Transactional {
	return &memPages{data: data, pages: inmem.New()}
}

type memPages struct {
	data  storage.Backend
	pages *inmem.Backend
}

func own(key string) bool { return strings.HasPrefix(key, "merkle/") }

func (m *memPages) Get(ctx context.Context, key string) (*storage.Entry, error) {
	if own(key) {
		return m.pages.Get(ctx, key)
	}
	return m.data.Get(ctx, key)
}

func (m *memPages) List(ctx context.Context, prefix string) ([]string, error) {
	if own(prefix) {
		return m.pages.List(ctx, prefix)
	}
	names, err := m.data.List(ctx, prefix)
	if err != nil || prefix != "" {
		return names, err
	}
	// At the top: the data's own merkle/ folder is not this index's.
	out := names[:0:0]
	for _, n := range names {
		if n != "merkle/" {
			out = append(out, n)
		}
	}
	if p, err := m.pages.List(ctx, ""); err == nil && len(p) > 0 {
		out = append(out, "merkle/")
	}
	return out, nil
}

func (m *memPages) Put(ctx context.Context, e *storage.Entry) error {
	if !own(e.Key) {
		return fmt.Errorf("merkle: an in-memory index writes its pages only, not %q", e.Key)
	}
	return m.pages.Put(ctx, e)
}

func (m *memPages) Delete(ctx context.Context, key string) error {
	if !own(key) {
		return fmt.Errorf("merkle: an in-memory index writes its pages only, not %q", key)
	}
	return m.pages.Delete(ctx, key)
}

func (m *memPages) Transaction(ctx context.Context, ops []*storage.TxnOp) error {
	for _, op := range ops {
		if !own(op.Entry.Key) {
			return fmt.Errorf("merkle: an in-memory index writes its pages only, not %q", op.Entry.Key)
		}
	}
	return m.pages.Transaction(ctx, ops)
}
