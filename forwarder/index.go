package forwarder

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// X-Vault-Index, Vault's layout:
//
//	base64( "v1:" set-id ":" local-index ":" replicated-index ":" hex(HMAC-SHA256(key, state)) )
//
// where state is everything before the last colon. set-id is the
// replication set's id (the primary's cluster id, with "@g<generation>" once
// the set has generations: WAL indexes of two generations do not compare; a
// cluster outside replication uses its own id); replicated-index counts in
// the primary's WAL;
// local-index is the issuing cluster's own WAL index and is informational.
// The HMAC key is derived from the root key (IndexKey), which every cluster of
// a set shares, so a header verifies on every cluster of the set and nowhere
// else. "v1" is part of the format: do not change it.

// Header names of read-after-write consistency.
const (
	HeaderIndex        = "X-Vault-Index"
	HeaderInconsistent = "X-Vault-Inconsistent"
)

const indexVersion = "v1"

// IndexState is what one X-Vault-Index header says.
type IndexState struct {
	SetID      string
	Local      uint64
	Replicated uint64
}

// Errors of DecodeIndex; each is a 400 for the client.
var (
	ErrIndexEncoding = errors.New("X-Vault-Index is not base64: send back the header a write returned")
	ErrIndexNoMAC    = errors.New("X-Vault-Index has no HMAC")
	ErrIndexMAC      = errors.New("X-Vault-Index does not verify: it was altered, or comes from another replication set")
	ErrIndexLayout   = errors.New("X-Vault-Index has an unknown layout")
	ErrIndexValue    = errors.New("X-Vault-Index has a bad replicated index")
)

// IndexKey derives the X-Vault-Index HMAC key from a root key.
func IndexKey(root []byte) ([]byte, error) {
	if len(root) == 0 {
		return nil, errors.New("no root key")
	}
	return hkdf.Key(sha256.New, root, nil, "coffer x-vault-index v1", 32)
}

// EncodeIndex renders the header for s under key.
func EncodeIndex(key []byte, s IndexState) string {
	state := fmt.Sprintf("%s:%s:%d:%d", indexVersion, s.SetID, s.Local, s.Replicated)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(state))
	return base64.StdEncoding.EncodeToString([]byte(state + ":" + hex.EncodeToString(m.Sum(nil))))
}

// DecodeIndex verifies one header under key and returns what it says.
// Only the fields the reader relies on are parsed strictly: the set id and
// the replicated index.
func DecodeIndex(key []byte, header string) (IndexState, error) {
	cooked, err := base64.StdEncoding.DecodeString(header)
	if err != nil {
		return IndexState{}, ErrIndexEncoding
	}
	s := string(cooked)
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return IndexState{}, ErrIndexNoMAC
	}
	state, mac := s[:i], s[i+1:]
	want := hmac.New(sha256.New, key)
	want.Write([]byte(state))
	got, err := hex.DecodeString(mac)
	if err != nil || !hmac.Equal(got, want.Sum(nil)) {
		return IndexState{}, ErrIndexMAC
	}
	parts := strings.Split(state, ":")
	if len(parts) != 4 || parts[0] != indexVersion {
		return IndexState{}, ErrIndexLayout
	}
	n, err := strconv.ParseUint(parts[3], 10, 64)
	if err != nil {
		return IndexState{}, ErrIndexValue
	}
	local, _ := strconv.ParseUint(parts[2], 10, 64)
	return IndexState{SetID: parts[1], Local: local, Replicated: n}, nil
}

// RequiredIndex returns the highest replicated index that the headers of
// set setID ask for. Headers of another set are ignored; a header that does
// not verify is an error (the client must not be served on a forged state).
func RequiredIndex(key []byte, headers []string, setID string) (uint64, error) {
	var need uint64
	for _, h := range headers {
		s, err := DecodeIndex(key, h)
		if err != nil {
			return 0, err
		}
		if s.SetID == setID {
			need = max(need, s.Replicated)
		}
	}
	return need, nil
}
