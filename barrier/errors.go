package barrier

import (
	"errors"
	"fmt"
)

// Sentinel errors of the barrier. Compare with errors.Is: the barrier wraps
// them with the key or term concerned.
var (
	// ErrSealed is returned by every data call (Get, Put, Delete, List,
	// Transaction) and by Rotate and ActiveKey while the barrier is sealed.
	ErrSealed = errors.New("barrier is sealed: unseal it with sys/unseal")

	// ErrNotInitialized is returned by Unseal when storage holds no keyring.
	ErrNotInitialized = errors.New("barrier is not initialized: no keyring in storage; run sys/init first")

	// ErrAlreadyInitialized is returned by Initialize when a keyring exists.
	ErrAlreadyInitialized = errors.New("barrier is already initialized: a keyring exists in storage; unseal instead, or wipe the storage to start over")

	// ErrInvalidRootKey is returned by Unseal (and Initialize, for a key of the
	// wrong size) when the root key does not open the stored keyring. The
	// barrier stays sealed.
	ErrInvalidRootKey = errors.New("the root key does not open this server's keyring: check that the unseal keys or the seal key belong to this cluster")

	// ErrDecrypt matches every *DecryptError: a stored value that is cut short,
	// has an unknown version or term, or fails authentication.
	ErrDecrypt = errors.New("barrier: stored value cannot be decrypted")

	// ErrUnknownTerm matches a *DecryptError for a value sealed with a key term
	// the keyring does not hold.
	ErrUnknownTerm = errors.New("barrier: unknown key term")

	// ErrNotTransactional is returned by Transaction when the backend given to
	// New does not implement storage.Transactional.
	ErrNotTransactional = errors.New("barrier: the storage backend is not transactional: give New a storage.Transactional (the wal, bolt, inmem, consul)")

	// ErrReservedKey is returned for a data call on KeyringPath: the keyring is
	// written only by Initialize and Rotate.
	ErrReservedKey = errors.New("barrier: " + KeyringPath + " is reserved for the barrier's keyring and cannot be read or written through the barrier")
)

// DecryptError says why a stored value could not be decrypted and names its
// key. It matches ErrDecrypt, and ErrUnknownTerm when the term is unknown.
type DecryptError struct {
	// Key is the storage key whose value failed.
	Key string
	// Reason completes the sentence "stored value for <key> ...".
	Reason string

	unknownTerm bool
}

func (e *DecryptError) Error() string {
	return fmt.Sprintf("stored value for %q %s", e.Key, e.Reason)
}

// Is makes errors.Is(err, ErrDecrypt) and, for an unknown term,
// errors.Is(err, ErrUnknownTerm) true.
func (e *DecryptError) Is(target error) bool {
	return target == ErrDecrypt || (e.unknownTerm && target == ErrUnknownTerm)
}
