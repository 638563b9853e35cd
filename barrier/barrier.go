package barrier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/internal/clock"
	"github.com/cofferhq/coffer/storage"
)

// Barrier encrypts on the way down and decrypts on the way up. It is a
// storage.Transactional on plaintext over a backend that holds ciphertext.
// All methods are safe for concurrent use.
//
// The data path (Get, Put, Delete, List, Transaction) takes no lock: it loads
// the current keyring snapshot once. Initialize, Unseal, Seal, Rotate and
// Reload serialise on one mutex and publish a new snapshot.
type Barrier struct {
	backend storage.Backend
	txn     storage.Transactional // nil when backend is not transactional

	mu sync.Mutex              // serialises state changes
	kr atomic.Pointer[keyring] // nil while sealed
}

var _ storage.Transactional = (*Barrier)(nil)

// New returns a sealed barrier over b. Transaction works when b implements
// storage.Transactional and otherwise returns ErrNotTransactional.
func New(b storage.Backend) *Barrier {
	br := &Barrier{backend: b}
	if t, ok := b.(storage.Transactional); ok {
		br.txn = t
	}
	return br
}

// Initialized reports whether storage holds a keyring. It works sealed.
func (b *Barrier) Initialized(ctx context.Context) (bool, error) {
	e, err := b.backend.Get(ctx, KeyringPath)
	if err != nil {
		return false, fmt.Errorf("read keyring: %w", err)
	}
	return e != nil, nil
}

// Initialize creates the keyring with term 1 and stores it sealed with
// rootKey (KeySize bytes). It refuses with ErrAlreadyInitialized when a
// keyring exists. The barrier stays sealed: call Unseal next.
func (b *Barrier) Initialize(ctx context.Context, rootKey []byte) error {
	if len(rootKey) != KeySize {
		return fmt.Errorf("initialize barrier: %w: root key is %d bytes, want %d", ErrInvalidRootKey, len(rootKey), KeySize)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	init, err := b.Initialized(ctx)
	if err != nil {
		return fmt.Errorf("initialize barrier: %w", err)
	}
	if init {
		return ErrAlreadyInitialized
	}
	root, err := newGCM(rootKey)
	if err != nil {
		return fmt.Errorf("initialize barrier: %w", err)
	}
	key, err := GenerateKey()
	if err != nil {
		return fmt.Errorf("initialize barrier: %w", err)
	}
	t, err := newTerm(1, key, now())
	if err != nil {
		return fmt.Errorf("initialize barrier: %w", err)
	}
	kr := &keyring{rootKey: rootKey, root: root, terms: map[uint32]*term{1: t}, active: t}
	value, err := kr.marshal()
	clear(key)
	if err != nil {
		return fmt.Errorf("initialize barrier: %w", err)
	}
	if err := b.backend.Put(ctx, &storage.Entry{Key: KeyringPath, Value: value}); err != nil {
		return fmt.Errorf("initialize barrier: store keyring: %w", err)
	}
	return nil
}

// Unseal loads the keyring with rootKey. A root key that does not open it
// returns an error matching ErrInvalidRootKey and the barrier stays sealed;
// a missing keyring returns ErrNotInitialized. Unsealing an unsealed barrier
// does nothing.
func (b *Barrier) Unseal(ctx context.Context, rootKey []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kr.Load() != nil {
		return nil
	}
	kr, err := b.load(ctx, rootKey)
	if err != nil {
		return err
	}
	b.kr.Store(kr)
	return nil
}

// load reads and opens the keyring.
func (b *Barrier) load(ctx context.Context, rootKey []byte) (*keyring, error) {
	if len(rootKey) != KeySize {
		return nil, fmt.Errorf("unseal barrier: %w: root key is %d bytes, want %d", ErrInvalidRootKey, len(rootKey), KeySize)
	}
	e, err := b.backend.Get(ctx, KeyringPath)
	if err != nil {
		return nil, fmt.Errorf("unseal barrier: read keyring: %w", err)
	}
	if e == nil {
		return nil, ErrNotInitialized
	}
	kr, err := unmarshalKeyring(rootKey, e.Value)
	if err != nil {
		if errors.Is(err, ErrInvalidRootKey) {
			return nil, err
		}
		return nil, fmt.Errorf("unseal barrier: %w", err)
	}
	return kr, nil
}

// Seal forgets the root key and every keyring key, zeroing the bytes it
// holds. Calls already past their keyring lookup finish; later ones get
// ErrSealed.
func (b *Barrier) Seal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if kr := b.kr.Swap(nil); kr != nil {
		kr.zero()
	}
}

// Sealed reports whether the barrier is sealed.
func (b *Barrier) Sealed() bool { return b.kr.Load() == nil }

// Rotate adds a new term to the keyring, stores the keyring (one Put: a crash
// leaves the old keyring or the new one), and makes the new term active. Old
// terms keep decrypting.
func (b *Barrier) Rotate(ctx context.Context) (KeyInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	kr := b.kr.Load()
	if kr == nil {
		return KeyInfo{}, ErrSealed
	}
	key, err := GenerateKey()
	if err != nil {
		return KeyInfo{}, fmt.Errorf("rotate: %w", err)
	}
	next, err := kr.withNewTerm(key, now())
	if err != nil {
		return KeyInfo{}, err
	}
	value, err := next.marshal()
	if err != nil {
		return KeyInfo{}, fmt.Errorf("rotate: %w", err)
	}
	if err := b.backend.Put(ctx, &storage.Entry{Key: KeyringPath, Value: value}); err != nil {
		return KeyInfo{}, fmt.Errorf("rotate: store keyring: %w (the old key stays active)", err)
	}
	b.kr.Store(next)
	return next.active.info(), nil
}

// Reload re-reads the keyring from storage with the root key held since
// Unseal. A secondary calls it after replication changed core/keyring (the
// primary rotated). Encryption counts of terms that did not change are kept.
func (b *Barrier) Reload(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	kr := b.kr.Load()
	if kr == nil {
		return ErrSealed
	}
	next, err := b.load(ctx, kr.rootKey)
	if err != nil {
		return fmt.Errorf("reload keyring: %w", err)
	}
	for n, t := range next.terms {
		if old := kr.terms[n]; old != nil && old.installTime.Equal(t.installTime) && bytes.Equal(old.key, t.key) {
			next.terms[n] = old
			clear(t.key)
		}
	}
	next.active = next.terms[next.active.term]
	b.kr.Store(next)
	clear(kr.rootKey) // next holds its own copy
	return nil
}

// ActiveKey describes the term that encrypts new writes.
func (b *Barrier) ActiveKey() (KeyInfo, error) {
	kr := b.kr.Load()
	if kr == nil {
		return KeyInfo{}, ErrSealed
	}
	return kr.active.info(), nil
}

// Get reads and decrypts key; (nil, nil) when absent. A value that does not
// authenticate is an error matching ErrDecrypt, never data.
func (b *Barrier) Get(ctx context.Context, key string) (*storage.Entry, error) {
	kr, err := b.open(key)
	if err != nil {
		return nil, err
	}
	e, err := b.backend.Get(ctx, key)
	if err != nil || e == nil {
		return nil, err
	}
	pt, err := kr.decrypt(key, e.Value)
	if err != nil {
		return nil, err
	}
	return &storage.Entry{Key: key, Value: pt}, nil
}

// Put encrypts entry.Value with the active term and writes it.
func (b *Barrier) Put(ctx context.Context, entry *storage.Entry) error {
	if entry == nil {
		return storage.ErrInvalidOperation
	}
	kr, err := b.open(entry.Key)
	if err != nil {
		return err
	}
	ct, err := kr.encrypt(entry.Key, entry.Value)
	if err != nil {
		return err
	}
	return b.backend.Put(ctx, &storage.Entry{Key: entry.Key, Value: ct})
}

// Delete removes key.
func (b *Barrier) Delete(ctx context.Context, key string) error {
	if _, err := b.open(key); err != nil {
		return err
	}
	return b.backend.Delete(ctx, key)
}

// List lists names under prefix; names are not encrypted.
func (b *Barrier) List(ctx context.Context, prefix string) ([]string, error) {
	if b.kr.Load() == nil {
		return nil, ErrSealed
	}
	return b.backend.List(ctx, prefix)
}

// Transaction encrypts every put and commits all ops in one backend
// transaction. The caller's entries are not modified.
func (b *Barrier) Transaction(ctx context.Context, ops []*storage.TxnOp) error {
	kr := b.kr.Load()
	if kr == nil {
		return ErrSealed
	}
	if b.txn == nil {
		return ErrNotTransactional
	}
	if err := storage.ValidateOps(ops); err != nil {
		return err
	}
	out := make([]*storage.TxnOp, len(ops))
	for i, op := range ops {
		if op.Entry.Key == KeyringPath {
			return ErrReservedKey
		}
		if op.Operation == storage.DeleteOperation {
			out[i] = &storage.TxnOp{Operation: op.Operation, Entry: &storage.Entry{Key: op.Entry.Key}}
			continue
		}
		ct, err := kr.encrypt(op.Entry.Key, op.Entry.Value)
		if err != nil {
			return err
		}
		out[i] = &storage.TxnOp{Operation: op.Operation, Entry: &storage.Entry{Key: op.Entry.Key, Value: ct}}
	}
	return b.txn.Transaction(ctx, out)
}

// open returns the keyring for a data call on key.
func (b *Barrier) open(key string) (*keyring, error) {
	kr := b.kr.Load()
	if kr == nil {
		return nil, ErrSealed
	}
	if key == KeyringPath {
		return nil, ErrReservedKey
	}
	return kr, nil
}

// now is the install time of a new key: UTC without a monotonic reading, so
// it compares equal after a JSON round trip.
func now() time.Time { return clock.Now().UTC().Round(0) }

// RootKey returns a copy of the root key that opens the keyring, for the
// replication bootstrap bundle (a secondary needs it to open the keyring it
// receives). ErrSealed while sealed.
func (b *Barrier) RootKey() ([]byte, error) {
	kr := b.kr.Load()
	if kr == nil {
		return nil, ErrSealed
	}
	return append([]byte(nil), kr.rootKey...), nil
}
