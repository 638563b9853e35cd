package barrier

import (
	"bytes"
	"crypto/cipher"
	"encoding/json"
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// KeyringPath is the storage key of the keyring, sealed with the root key.
// Part of the disk format: never change it.
const KeyringPath = "core/keyring"

// KeyringVersion is the first byte of the keyring's plaintext. Part of the
// disk format: never change it; see doc.go.
const KeyringVersion byte = 1

// KeyInfo describes one keyring term.
type KeyInfo struct {
	// Term numbers the key; the first is 1.
	Term uint32
	// InstallTime is when Initialize or Rotate created the key (UTC).
	InstallTime time.Time
	// Encryptions counts the values this process has sealed with the key
	// since it was unsealed. It is not persisted.
	Encryptions uint64
}

// term is one key of the keyring. Everything but the counter is immutable
// once built; the same *term is shared by successive keyrings.
type term struct {
	term        uint32
	key         []byte
	installTime time.Time
	aead        cipher.AEAD
	encryptions atomic.Uint64
}

func newTerm(n uint32, key []byte, installTime time.Time) (*term, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, fmt.Errorf("keyring term %d: %w", n, err)
	}
	return &term{term: n, key: key, installTime: installTime, aead: aead}, nil
}

func (t *term) info() KeyInfo {
	return KeyInfo{Term: t.term, InstallTime: t.installTime, Encryptions: t.encryptions.Load()}
}

// keyring is an immutable snapshot: the data path loads it once per call.
type keyring struct {
	rootKey []byte
	root    cipher.AEAD
	terms   map[uint32]*term
	active  *term
}

// encrypt seals plaintext with the active term, bound to key.
func (kr *keyring) encrypt(key string, plaintext []byte) ([]byte, error) {
	t := kr.active
	out, err := sealEnvelope(t.aead, t.term, key, plaintext)
	if err != nil {
		return nil, fmt.Errorf("encrypt %q: %w", key, err)
	}
	t.encryptions.Add(1)
	return out, nil
}

// decrypt opens a value stored under key with the term its header names.
func (kr *keyring) decrypt(key string, value []byte) ([]byte, error) {
	n, err := parseEnvelope(key, value)
	if err != nil {
		return nil, err
	}
	t := kr.terms[n]
	if t == nil {
		reason := fmt.Sprintf("was sealed with key term %d, which the keyring does not hold (it holds terms 1 to %d): "+
			"the keyring in storage is older than the value, or the value was altered on disk; restore a matching keyring and data from one backup", n, kr.active.term)
		if n == rootKeyTerm {
			reason = "carries term 0, which only the keyring uses: it was altered or moved on disk; restore it from a backup"
		}
		return nil, &DecryptError{Key: key, Reason: reason, unknownTerm: true}
	}
	return openEnvelope(t.aead, key, value)
}

// withNewTerm returns a keyring holding every term of kr plus one new active
// term with key.
func (kr *keyring) withNewTerm(key []byte, now time.Time) (*keyring, error) {
	if kr.active.term == math.MaxUint32 {
		return nil, fmt.Errorf("rotate: the keyring has reached the last term (%d); no more rotations are possible", kr.active.term)
	}
	t, err := newTerm(kr.active.term+1, key, now)
	if err != nil {
		return nil, err
	}
	next := &keyring{rootKey: kr.rootKey, root: kr.root, terms: make(map[uint32]*term, len(kr.terms)+1), active: t}
	for n, old := range kr.terms {
		next.terms[n] = old
	}
	next.terms[t.term] = t
	return next, nil
}

// zero overwrites every key this keyring holds. The AES key schedules inside
// the cipher.AEAD values cannot be wiped; dropping them is the best Go allows.
func (kr *keyring) zero() {
	clear(kr.rootKey)
	for _, t := range kr.terms {
		clear(t.key)
	}
}

type keyringJSON struct {
	ActiveTerm uint32    `json:"active_term"`
	Keys       []keyJSON `json:"keys"`
}

type keyJSON struct {
	Term        uint32    `json:"term"`
	Key         []byte    `json:"key"`
	InstallTime time.Time `json:"install_time"`
}

// marshal seals the keyring with the root key into the value of KeyringPath.
func (kr *keyring) marshal() ([]byte, error) {
	doc := keyringJSON{ActiveTerm: kr.active.term}
	for n := uint32(1); n <= kr.active.term; n++ {
		t := kr.terms[n]
		if t == nil {
			continue
		}
		doc.Keys = append(doc.Keys, keyJSON{Term: t.term, Key: t.key, InstallTime: t.installTime})
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode keyring: %w", err)
	}
	plain := append([]byte{KeyringVersion}, body...)
	clear(body)
	defer clear(plain)
	out, err := sealEnvelope(kr.root, rootKeyTerm, KeyringPath, plain)
	if err != nil {
		return nil, fmt.Errorf("seal keyring: %w", err)
	}
	return out, nil
}

// unmarshalKeyring opens the stored keyring with rootKey and checks it.
func unmarshalKeyring(rootKey, value []byte) (*keyring, error) {
	root, err := newGCM(rootKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRootKey, err)
	}
	n, err := parseEnvelope(KeyringPath, value)
	if err != nil {
		return nil, err
	}
	if n != rootKeyTerm {
		return nil, &DecryptError{Key: KeyringPath, Reason: fmt.Sprintf("carries term %d where the keyring must carry term 0: it was altered or replaced on disk; restore it from a backup", n)}
	}
	plain, err := openEnvelope(root, KeyringPath, value)
	if err != nil {
		return nil, ErrInvalidRootKey
	}
	defer clear(plain)
	if len(plain) == 0 || plain[0] != KeyringVersion {
		v := -1
		if len(plain) > 0 {
			v = int(plain[0])
		}
		return nil, fmt.Errorf("keyring has version %d, which this build of coffer cannot read (it reads version %d): upgrade coffer", v, KeyringVersion)
	}
	var doc keyringJSON
	dec := json.NewDecoder(bytes.NewReader(plain[1:]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("decode keyring: %w", err)
	}
	kr := &keyring{rootKey: append([]byte(nil), rootKey...), root: root, terms: make(map[uint32]*term, len(doc.Keys))}
	for _, k := range doc.Keys {
		if k.Term == rootKeyTerm {
			return nil, fmt.Errorf("decode keyring: term 0 is reserved for the root key")
		}
		if kr.terms[k.Term] != nil {
			return nil, fmt.Errorf("decode keyring: term %d appears twice", k.Term)
		}
		t, err := newTerm(k.Term, k.Key, k.InstallTime.UTC())
		if err != nil {
			return nil, fmt.Errorf("decode keyring: %w", err)
		}
		kr.terms[k.Term] = t
		if kr.active == nil || t.term > kr.active.term {
			kr.active = t
		}
	}
	if kr.active == nil || kr.active.term != doc.ActiveTerm {
		return nil, fmt.Errorf("decode keyring: active term %d is not the highest term held", doc.ActiveTerm)
	}
	return kr, nil
}
