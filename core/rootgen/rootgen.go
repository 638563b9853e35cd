package rootgen

import (
	"crypto/subtle"
	"errors"
	"fmt"
)

// Bounds of a key share Add accepts. Coffer's shares are 32 bytes (a
// threshold of 1) or 33 (Shamir's, one byte of x coordinate more); the
// bounds are loose on purpose, the seal decides at the threshold. The upper
// one also bounds what a caller without a token can park in memory: at most
// the threshold times MaxShareSize bytes.
const (
	MinShareSize = 16
	MaxShareSize = 64
)

// Errors of an attempt. Each is a request the caller must correct (a 400);
// the caller words it for its endpoint.
var (
	// ErrInProgress: Start while an attempt is open.
	ErrInProgress = errors.New("a token generation is already in progress")
	// ErrNotStarted: Add or Complete without an open attempt.
	ErrNotStarted = errors.New("no token generation is in progress")
	// ErrNonceMismatch: Add or Complete with another attempt's nonce.
	ErrNonceMismatch = errors.New("the nonce does not match the token generation in progress")
	// ErrDuplicateShare: Add of a share this attempt already holds; the
	// progress is unchanged.
	ErrDuplicateShare = errors.New("this key share was already given in this attempt")
	// ErrShareSize: Add of a share outside [MinShareSize, MaxShareSize].
	ErrShareSize = errors.New("the key share has the wrong size")
	// ErrOTPLength: Start with an OTP that is not OTPLength bytes long.
	ErrOTPLength = errors.New("the one-time password has the wrong length")
	// ErrTokenLength: Complete or Encode with a token that is not as long as
	// the OTP; the caller created a token of another kind than it declared.
	ErrTokenLength = errors.New("the token and the one-time password differ in length")
)

// Status is an attempt as Vault's attempt endpoint reports it.
type Status struct {
	Started   bool
	Nonce     string
	Progress  int
	Required  int
	OTPLength int
}

// Generation holds at most one attempt. It is not safe for concurrent use:
// the caller serializes its calls.
type Generation struct {
	otpLength int
	cur       *attempt
}

type attempt struct {
	nonce  string
	otp    string
	shares [][]byte
}

// New returns a Generation of tokens otpLength bytes long: every OTP, and
// every token Complete encodes, has that length.
func New(otpLength int) *Generation {
	if otpLength <= 0 {
		panic("rootgen: the OTP length must be positive")
	}
	return &Generation{otpLength: otpLength}
}

// OTPLength is the length of the OTP an attempt takes.
func (g *Generation) OTPLength() int { return g.otpLength }

// Start opens an attempt named nonce whose token will be encoded with otp.
func (g *Generation) Start(nonce, otp string) error {
	if g.cur != nil {
		return ErrInProgress
	}
	if nonce == "" {
		return errors.New("rootgen: an attempt needs a nonce")
	}
	if len(otp) != g.otpLength {
		return fmt.Errorf("%w: %d bytes, want %d", ErrOTPLength, len(otp), g.otpLength)
	}
	g.cur = &attempt{nonce: nonce, otp: otp}
	return nil
}

// Status reports the attempt; required is the threshold the caller's seal
// asks for now.
func (g *Generation) Status(required int) Status {
	s := Status{Required: required, OTPLength: g.otpLength}
	if g.cur != nil {
		s.Started, s.Nonce, s.Progress = true, g.cur.nonce, len(g.cur.shares)
	}
	return s
}

// Add gives the attempt named nonce one key share (copied). Once required
// shares are in it returns them all and forgets them: the attempt's progress
// is back to 0 whether the caller then finds them valid or not. Before that
// it returns nil.
func (g *Generation) Add(nonce string, share []byte, required int) ([][]byte, error) {
	if err := g.check(nonce); err != nil {
		return nil, err
	}
	if required < 1 {
		return nil, fmt.Errorf("rootgen: a threshold of %d shares", required)
	}
	if len(share) < MinShareSize || len(share) > MaxShareSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d to %d", ErrShareSize, len(share), MinShareSize, MaxShareSize)
	}
	for _, s := range g.cur.shares {
		if subtle.ConstantTimeCompare(s, share) == 1 {
			return nil, ErrDuplicateShare
		}
	}
	g.cur.shares = append(g.cur.shares, append([]byte(nil), share...))
	if len(g.cur.shares) < required {
		return nil, nil
	}
	shares := g.cur.shares
	g.cur.shares = nil
	return shares, nil
}

// Complete ends the attempt named nonce with token and returns the token
// encoded with the attempt's OTP (see Encode).
func (g *Generation) Complete(nonce, token string) (string, error) {
	if err := g.check(nonce); err != nil {
		return "", err
	}
	encoded, err := Encode(token, g.cur.otp)
	if err != nil {
		return "", err
	}
	g.Cancel()
	return encoded, nil
}

// Cancel ends the attempt, if any, and wipes the shares it held.
func (g *Generation) Cancel() {
	if g.cur == nil {
		return
	}
	for _, s := range g.cur.shares {
		clear(s)
	}
	g.cur = nil
}

// check reports why nonce cannot act on the attempt, or nil.
func (g *Generation) check(nonce string) error {
	switch {
	case g.cur == nil:
		return ErrNotStarted
	case nonce != g.cur.nonce:
		return ErrNonceMismatch
	}
	return nil
}
