// Package bolt is the embedded default storage backend: one bbolt file, one
// bucket, every Transaction one fsynced bbolt update.
//
// It owns the bbolt file and must never be opened twice on the same path (bbolt
// takes a file lock; Open waits at most Options.Timeout for it).
package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/storage"
	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var bucket = []byte("coffer")

// Options configures the backend.
type Options struct {
	// Path of the bbolt file; created when absent.
	Path string
	// Timeout waits for the file lock held by another process. Default 5s.
	Timeout time.Duration
	// NoSync skips fsync on commit. Only for benchmarks that measure something else.
	NoSync bool
	// FreelistSync writes bbolt's list of free pages with every commit.
	// Off by default, as in Vault's integrated storage: the list grows with
	// the file's free pages (a WAL truncated behind its readers frees many),
	// and writing it made every commit allocate and write it whole (after
	// 2,000 pages freed, 8 pages and more for a one-key commit instead of 1
	// or 2). The cost is at open: bbolt rebuilds the list by reading the
	// file's pages.
	FreelistSync bool
}

// Validate reports a missing path.
func (o *Options) Validate() error {
	if o.Path == "" {
		return errors.New("bolt storage: path is required: set storage \"bolt\" { path = \"/var/lib/coffer/coffer.db\" }")
	}
	return nil
}

// Backend is a storage.Transactional on one bbolt file.
type Backend struct {
	db     *bbolt.DB
	closed atomic.Bool
}

var _ storage.Transactional = (*Backend)(nil)

// Open opens or creates the file.
func Open(opts Options) (*Backend, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	db, err := bbolt.Open(opts.Path, 0o600, &bbolt.Options{Timeout: opts.Timeout, NoSync: opts.NoSync,
		FreelistType: bbolt.FreelistMapType, NoFreelistSync: !opts.FreelistSync})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open bolt storage %s: file is locked after waiting %s: %w "+
			"(is another coffer server using this file? stop it or point storage \"bolt\" path elsewhere)",
			opts.Path, opts.Timeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open bolt storage %s: %w (check that the directory exists and is writable by this user)", opts.Path, err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open bolt storage %s: create bucket: %w", opts.Path, err)
	}
	return &Backend{db: db}, nil
}

// Get returns a copy of the value, or nil when absent.
func (b *Backend) Get(ctx context.Context, key string) (*storage.Entry, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, err
	}
	if b.closed.Load() {
		return nil, storage.ErrClosed
	}
	var out *storage.Entry
	err := b.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(key))
		if v != nil {
			out = &storage.Entry{Key: key, Value: append([]byte{}, v...)}
		}
		return nil
	})
	if err != nil {
		return nil, b.wrap("get", err)
	}
	return out, nil
}

// Put writes one entry in its own transaction.
func (b *Backend) Put(ctx context.Context, entry *storage.Entry) error {
	return b.Transaction(ctx, []*storage.TxnOp{{Operation: storage.PutOperation, Entry: entry}})
}

// Delete removes one key in its own transaction.
func (b *Backend) Delete(ctx context.Context, key string) error {
	return b.Transaction(ctx, []*storage.TxnOp{{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: key}}})
}

// List returns the one-level names under prefix, skipping whole sub-folders with a seek.
func (b *Backend) List(ctx context.Context, prefix string) ([]string, error) {
	if b.closed.Load() {
		return nil, storage.ErrClosed
	}
	var out []string
	err := b.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		p := []byte(prefix)
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); {
			rest := k[len(p):]
			if len(rest) == 0 {
				k, _ = c.Next()
				continue
			}
			if i := bytes.IndexByte(rest, '/'); i >= 0 {
				name := string(rest[:i+1])
				out = append(out, name)
				// Seek past every key of this folder: the folder name with '/' bumped to '0'.
				next := append(append([]byte{}, p...), rest[:i]...)
				next = append(next, '/'+1)
				k, _ = c.Seek(next)
				continue
			}
			out = append(out, string(rest))
			k, _ = c.Next()
		}
		return nil
	})
	if err != nil {
		return nil, b.wrap("list", err)
	}
	return out, nil
}

// Transaction applies ops in one fsynced bbolt update.
func (b *Backend) Transaction(ctx context.Context, ops []*storage.TxnOp) error {
	if err := storage.ValidateOps(ops); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.closed.Load() {
		return storage.ErrClosed
	}
	err := b.db.Update(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bucket)
		for _, op := range ops {
			var err error
			switch op.Operation {
			case storage.PutOperation:
				v := op.Entry.Value
				if v == nil {
					v = []byte{}
				}
				err = bk.Put([]byte(op.Entry.Key), v)
			case storage.DeleteOperation:
				err = bk.Delete([]byte(op.Entry.Key))
			}
			if err != nil {
				return fmt.Errorf("%s %q: %w", op.Operation, op.Entry.Key, err)
			}
		}
		return nil
	})
	if err != nil {
		return b.wrap("transaction", err)
	}
	return nil
}

// Close closes the file; later calls fail with storage.ErrClosed.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	return b.db.Close()
}

func (b *Backend) wrap(op string, err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return storage.ErrClosed
	}
	return fmt.Errorf("bolt %s: %w", op, err)
}
