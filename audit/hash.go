package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"slices"
	"sync"
	"time"
)

// HashPrefix starts every hashed value in the audit log. It is part of the log
// format (operators grep for it, and sys/audit-hash returns it): never change it.
const HashPrefix = "hmac-sha256:"

// SaltSize is the length of the salt NewSalt generates.
const SaltSize = 32

// NewSalt returns SaltSize random bytes for core to store (under the barrier)
// and hand to NewFile. Every device built with the same salt hashes a value
// the same way, so lines of two devices can be compared.
func NewSalt() ([]byte, error) {
	b := make([]byte, SaltSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate audit salt: %w", err)
	}
	return b, nil
}

// HashString returns the HMAC of s keyed with salt, the way it appears in the
// audit log: "hmac-sha256:" and the lower-case hex HMAC-SHA256. sys/audit-hash
// returns this value as {"hash": ...}.
func HashString(salt []byte, s string) string {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(s))
	return hashText(m.Sum(nil))
}

func hashText(sum []byte) string {
	var buf [len(HashPrefix) + 2*sha256.Size]byte
	copy(buf[:], HashPrefix)
	hex.Encode(buf[len(HashPrefix):], sum)
	return string(buf[:])
}

// hasher hashes strings with one salt. It keeps keyed HMAC states in a pool:
// Reset on an HMAC restores the keyed state without hashing the key again.
type hasher struct {
	pool sync.Pool
}

func newHasher(salt []byte) *hasher {
	key := slices.Clone(salt)
	h := &hasher{}
	h.pool.New = func() any { return hmac.New(sha256.New, key) }
	return h
}

func (h *hasher) hash(s string) string {
	m := h.pool.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(s))
	var sum [sha256.Size]byte
	out := hashText(m.Sum(sum[:0]))
	h.pool.Put(m)
	return out
}

// hashData returns a copy of data with every string value hashed, following
// Vault: values at any depth of maps and slices are hashed, map keys are not;
// a string whose closest enclosing map key is in skip stays in clear.
// data itself is never modified.
func (h *hasher) hashData(data map[string]any, skip []string) map[string]any {
	if data == nil {
		return nil
	}
	return h.hashMap(data, skip, false)
}

func (h *hasher) hashMap(m map[string]any, skip []string, numbersRaw bool) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = h.value(k, v, skip, numbersRaw)
	}
	return out
}

// value hashes v found under map key key. numbersRaw is set under a value that
// was rendered through JSON: its json.Numbers were numbers, not strings.
func (h *hasher) value(key string, v any, skip []string, numbersRaw bool) any {
	switch x := v.(type) {
	case nil, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return x
	case string:
		if slices.Contains(skip, key) {
			return x
		}
		return h.hash(x)
	case json.Number:
		if numbersRaw || slices.Contains(skip, key) {
			return x
		}
		return h.hash(string(x))
	case []byte:
		if slices.Contains(skip, key) {
			return x
		}
		return h.hash(string(x))
	case time.Time:
		// Vault logs times as text, unhashed; the format must never change.
		return x.Format(time.RFC3339Nano)
	case map[string]any:
		return h.hashMap(x, skip, numbersRaw)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = h.value(key, e, skip, numbersRaw)
		}
		return out
	case []string:
		if slices.Contains(skip, key) {
			return x
		}
		out := make([]string, len(x))
		for i, e := range x {
			out[i] = h.hash(e)
		}
		return out
	case map[string]string:
		out := make(map[string]string, len(x))
		for k, e := range x {
			if slices.Contains(skip, k) {
				out[k] = e
			} else {
				out[k] = h.hash(e)
			}
		}
		return out
	case []map[string]any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = h.hashMap(e, skip, numbersRaw)
		}
		return out
	case json.RawMessage:
		return h.viaJSON(key, []byte(x), skip)
	default:
		// Structs, typed slices and maps, anything with a MarshalJSON: render
		// through JSON, then hash that, so no type reaches the log unhashed.
		b, err := json.Marshal(x)
		if err != nil {
			return h.hash(fmt.Sprintf("%v", x))
		}
		return h.viaJSON(key, b, skip)
	}
}

func (h *hasher) viaJSON(key string, b []byte, skip []string) any {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return h.hash(string(b))
	}
	return h.value(key, generic, skip, true)
}
