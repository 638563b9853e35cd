package drtoken

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/cofferhq/coffer/core/rootgen"
	"github.com/cofferhq/coffer/internal/clock"
)

// The shape of a DR operation token: Prefix and Length-len(Prefix)
// characters drawn uniformly from rootgen.OTPAlphabet (24 base62
// characters: about 143 bits). Length is the OTP length of a DR operation
// token generation (otp_length), the length of Coffer's service tokens, so
// that an OTP drawn for either kind fits both.
const (
	Prefix = "dro."
	Length = 28
)

// DefaultTTL is how long a DR operation token lives when Set.TTL is zero.
const DefaultTTL = time.Hour

// Set is the live DR operation tokens of one cluster. It is safe for
// concurrent use; the zero value is ready to use.
type Set struct {
	// TTL is every token's lifetime from its mint; zero means DefaultTTL.
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand is the randomness tokens are drawn from; nil means crypto/rand.
	Rand io.Reader

	mu   sync.Mutex
	live []entry
}

// entry is one live token: its digest and when it stops being valid.
type entry struct {
	sum     [sha256.Size]byte
	expires time.Time
}

// Mint draws a new token, keeps its digest until it expires, and returns
// the token (the only time it exists in clear here) and its expiry.
func (s *Set) Mint() (token string, expires time.Time, err error) {
	r := s.Rand
	if r == nil {
		r = rand.Reader
	}
	body, err := rootgen.NewOTP(r, Length-len(Prefix))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("draw a DR operation token: %w", err)
	}
	token = Prefix + body
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.pruneLocked(now)
	expires = now.Add(s.ttl())
	s.live = append(s.live, entry{sum: sha256.Sum256([]byte(token)), expires: expires})
	return token, expires, nil
}

// Valid reports whether token is a live token of the set. Its digest is
// compared with every live digest in constant time.
func (s *Set) Valid(token string) bool {
	if token == "" {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(s.now())
	return s.indexLocked(sum) >= 0
}

// Revoke removes token and reports whether it was live.
func (s *Set) Revoke(token string) bool {
	if token == "" {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(s.now())
	i := s.indexLocked(sum)
	if i < 0 {
		return false
	}
	s.live = append(s.live[:i], s.live[i+1:]...)
	return true
}

// Clear forgets every token (the core seals).
func (s *Set) Clear() {
	s.mu.Lock()
	s.live = nil
	s.mu.Unlock()
}

// Len is the number of live tokens.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(s.now())
	return len(s.live)
}

// indexLocked returns the index of sum among the live digests, or -1. It
// looks at every digest whatever it finds, each in constant time.
func (s *Set) indexLocked(sum [sha256.Size]byte) int {
	found := -1
	for i := range s.live {
		if subtle.ConstantTimeCompare(s.live[i].sum[:], sum[:]) == 1 {
			found = i
		}
	}
	return found
}

// pruneLocked drops the tokens expired at now.
func (s *Set) pruneLocked(now time.Time) {
	kept := s.live[:0]
	for _, e := range s.live {
		if now.Before(e.expires) {
			kept = append(kept, e)
		}
	}
	clear(s.live[len(kept):])
	s.live = kept
}

func (s *Set) now() time.Time {
	if s.Now == nil {
		return clock.Now()
	}
	return s.Now()
}

func (s *Set) ttl() time.Duration {
	if s.TTL <= 0 {
		return DefaultTTL
	}
	return s.TTL
}
