package storage

import (
	"context"
	"errors"
	"strings"
)

// Entry is one key and its value as stored.
type Entry struct {
	Key   string
	Value []byte
}

// Backend is the physical storage every layer above writes through.
//
// The contract, checked by storage/storagetest for every backend:
//
//   - Get returns (nil, nil) when the key does not exist. Otherwise it returns
//     an Entry the caller owns: mutating its Value never changes storage.
//     A value stored empty (or nil) comes back with a zero-length Value.
//   - Put stores a copy of entry.Value: the caller may reuse its slice at once.
//     Put overwrites an existing key.
//   - Delete of a missing key is not an error.
//   - Keys are checked with ValidateKey; an invalid key fails with ErrInvalidKey.
//   - List returns the names directly under prefix, one level deep, the way
//     Vault lists: prefix is a plain string prefix, and a key "a/b/c" under
//     prefix "a/" is listed as "b/" (a folder), a key "a/d" as "d". A key and
//     a folder of the same name are both listed ("d" and "d/"). Names are
//     sorted by bytes and unique; a key equal to prefix is not listed.
//   - Get and List each read one consistent state: a List never shows part of
//     a Transaction.
//   - A write (Put, Delete, Transaction) whose context is already done fails
//     with the context's error and applies nothing.
//   - A backend holding resources implements io.Closer. Close is idempotent,
//     and every call after it fails with ErrClosed.
//   - Every method is safe for concurrent use.
type Backend interface {
	Get(ctx context.Context, key string) (*Entry, error)
	Put(ctx context.Context, entry *Entry) error
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string) ([]string, error)
}

// Operation is the kind of a transaction operation.
type Operation uint8

const (
	// PutOperation writes TxnOp.Entry.
	PutOperation Operation = 1
	// DeleteOperation deletes TxnOp.Entry.Key; deleting a missing key is not an error.
	DeleteOperation Operation = 2
)

// String names the operation for logs and errors.
func (o Operation) String() string {
	switch o {
	case PutOperation:
		return "put"
	case DeleteOperation:
		return "delete"
	}
	return "unknown"
}

// TxnOp is one operation of a transaction.
type TxnOp struct {
	Operation Operation
	Entry     *Entry
}

// Transactional is the optional capability of committing several operations
// atomically: after Transaction returns nil all of them are durable, after it
// returns an error none of them is visible. Operations apply in order, so a
// later operation on the same key wins.
type Transactional interface {
	Backend
	Transaction(ctx context.Context, ops []*TxnOp) error
}

// OpLimiter is a Transactional whose transactions hold a bounded number of
// operations (Consul: 128). Writers that batch (WAL group commit, merkle
// flushes) stay under it; a single logical write over it is refused whole.
type OpLimiter interface {
	MaxTransactionOps() int
}

// MaxOps is b's cap on the operations of one transaction, 0 when it has none.
func MaxOps(b any) int {
	if l, ok := b.(OpLimiter); ok {
		return l.MaxTransactionOps()
	}
	return 0
}

// Sentinel errors shared by every backend.
var (
	// ErrClosed is returned by a backend used after Close.
	ErrClosed = errors.New("storage: backend is closed")
	// ErrInvalidKey is returned for an empty key or one holding a NUL byte.
	ErrInvalidKey = errors.New("storage: invalid key: keys must be non-empty and hold no NUL byte")
	// ErrNotActive is returned for a write on a node that does not hold its
	// cluster's HA lock (a standby, or an active node that lost the lock):
	// nothing was applied; the write belongs to the active node.
	ErrNotActive = errors.New("storage: this node is not the active node")
	// ErrInvalidOperation is returned for a transaction operation that is neither put nor delete,
	// or that carries no entry.
	ErrInvalidOperation = errors.New("storage: invalid transaction operation")
)

// ValidateKey checks a key the way every backend must.
func ValidateKey(key string) error {
	if key == "" || strings.IndexByte(key, 0) >= 0 {
		return ErrInvalidKey
	}
	return nil
}

// ValidateOps checks a transaction's operations before any of them is applied.
func ValidateOps(ops []*TxnOp) error {
	for _, op := range ops {
		if op == nil || op.Entry == nil {
			return ErrInvalidOperation
		}
		if op.Operation != PutOperation && op.Operation != DeleteOperation {
			return ErrInvalidOperation
		}
		if err := ValidateKey(op.Entry.Key); err != nil {
			return err
		}
	}
	return nil
}

// ListNames turns the full keys found under prefix into Vault's one-level
// listing: the part after prefix up to and including the first "/", without
// duplicates. keys must be sorted; the result is then sorted too.
func ListNames(prefix string, keys []string) []string {
	var out []string
	last := ""
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		rest := k[len(prefix):]
		if rest == "" {
			continue
		}
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest = rest[:i+1]
		}
		if rest == last {
			continue
		}
		out = append(out, rest)
		last = rest
	}
	return out
}
