package core

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/cofferhq/coffer/barrier/seal"
	"github.com/cofferhq/coffer/core/rootgen"
	"github.com/google/uuid"
)

// RootTokenLength is the length of the tokens the token store draws ("hvs."
// and 24 characters), and so of sys/generate-root's OTP (Vault's otp_length).
const RootTokenLength = 28

// GenerationStatus is a token generation attempt as sys/generate-root/attempt
// and sys/generate-root/update report it, with Vault's fields. OTP is set
// once, in the answer to the start that drew it; EncodedToken once, in the
// answer to the update that completed the attempt.
type GenerationStatus struct {
	Started          bool   `json:"started"`
	Nonce            string `json:"nonce"`
	Progress         int    `json:"progress"`
	Required         int    `json:"required"`
	Complete         bool   `json:"complete"`
	EncodedToken     string `json:"encoded_token"`
	EncodedRootToken string `json:"encoded_root_token"`
	PGPFingerprint   string `json:"pgp_fingerprint"`
	OTP              string `json:"otp"`
	OTPLength        int    `json:"otp_length"`
}

// generationKind names a kind of token generation for the messages of its
// endpoints, and says when it may run.
type generationKind struct {
	name string // "root token generation"
	path string // "sys/generate-root"
	cli  string // "coffer operator generate-root"
	// guard, when set, refuses every call while this kind cannot run here
	// (a DR operation token outside a DR secondary). It is called with
	// stateMu held shared, after the seal checks.
	guard func() error
}

// minter creates the token a generation ends with, and takes it back when it
// cannot be handed out. create must return a token exactly as long as the
// generation's OTP.
type minter struct {
	create func(ctx context.Context) (string, error)
	revoke func(ctx context.Context, token string) error
}

// TokenGeneration is one kind of token generation authorised by key shares
// instead of a token: the root token of sys/generate-root (RootGeneration)
// and the DR operation token of a DR secondary (DROperationTokenGeneration,
// droptoken.go). The attempt's bookkeeping is rootgen's;
// this glue adds what needs I/O: the seal's threshold, the check of the
// shares against the seal, and the token's creation. The attempt lives in
// memory only: a restart or a seal cancels it.
//
// Every method takes stateMu shared, then mu: the order seal takes them in.
type TokenGeneration struct {
	c    *Core
	kind generationKind
	mint minter

	mu  sync.Mutex
	gen *rootgen.Generation
}

func (c *Core) newTokenGeneration(kind generationKind, otpLength int, m minter) *TokenGeneration {
	return &TokenGeneration{c: c, kind: kind, mint: m, gen: rootgen.New(otpLength)}
}

// newRootGeneration is sys/generate-root: it ends with a new root token.
func (c *Core) newRootGeneration() *TokenGeneration {
	kind := generationKind{name: "root token generation", path: "sys/generate-root", cli: "coffer operator generate-root"}
	return c.newTokenGeneration(kind, RootTokenLength, minter{
		create: func(ctx context.Context) (string, error) {
			e, err := c.tokens.CreateRoot(ctx, "")
			if err != nil {
				return "", err
			}
			return e.ID, nil
		},
		revoke: func(ctx context.Context, token string) error { return c.tokens.Revoke(ctx, token) },
	})
}

// RootGeneration serves sys/generate-root.
func (c *Core) RootGeneration() *TokenGeneration { return c.rootGen }

// Status reports the attempt.
func (g *TokenGeneration) Status(ctx context.Context) (*GenerationStatus, error) {
	g.c.stateMu.RLock()
	defer g.c.stateMu.RUnlock()
	required, err := g.required(ctx)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.status(required), nil
}

// Start opens an attempt whose token will be encoded with otp. Without an
// otp it draws one and returns it in the status: the only time it is shown.
func (g *TokenGeneration) Start(ctx context.Context, otp string) (*GenerationStatus, error) {
	g.c.stateMu.RLock()
	defer g.c.stateMu.RUnlock()
	required, err := g.required(ctx)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	drawn := otp == ""
	if drawn {
		if otp, err = rootgen.NewOTP(rand.Reader, g.gen.OTPLength()); err != nil {
			return nil, err
		}
	}
	nonce := uuid.NewString()
	if err := g.gen.Start(nonce, otp); err != nil {
		return nil, g.explain(err, required)
	}
	g.c.logger.Info().Str("nonce", nonce).Int("required", required).Msg(g.kind.name + " started")
	st := g.status(required)
	if drawn {
		st.OTP = otp
	}
	return st, nil
}

// Cancel ends the attempt, if any.
func (g *TokenGeneration) Cancel(ctx context.Context) error {
	g.c.stateMu.RLock()
	defer g.c.stateMu.RUnlock()
	if _, err := g.required(ctx); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gen.Status(0).Started {
		g.c.logger.Info().Msg(g.kind.name + " canceled")
	}
	g.gen.Cancel()
	return nil
}

// Update gives the attempt named nonce one key share. At the threshold the
// shares are checked against the seal; a set that does not verify resets
// the progress and is a 400 that says nothing about which share was wrong.
// A set that verifies ends the attempt with a new token, returned encoded
// with the attempt's OTP.
func (g *TokenGeneration) Update(ctx context.Context, key []byte, nonce string) (*GenerationStatus, error) {
	g.c.stateMu.RLock()
	defer g.c.stateMu.RUnlock()
	required, err := g.required(ctx)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	shares, err := g.gen.Add(nonce, key, required)
	if err != nil {
		return nil, g.explain(err, required)
	}
	if shares == nil {
		return g.status(required), nil
	}
	defer func() {
		for _, s := range shares {
			clear(s)
		}
	}()
	if err := g.verify(ctx, shares, nonce, required); err != nil {
		return nil, err
	}
	encoded, err := g.complete(ctx, nonce)
	if err != nil {
		return nil, err
	}
	g.c.logger.Info().Str("nonce", nonce).Msg(g.kind.name + " completed: a new token was handed out")
	// encoded_root_token is Vault's older field, which vault/api still reads;
	// Vault fills it for every kind of generation, and so does Coffer.
	return &GenerationStatus{
		Started: true, Nonce: nonce, Progress: required, Required: required, Complete: true,
		EncodedToken: encoded, EncodedRootToken: encoded, OTPLength: g.gen.OTPLength(),
	}, nil
}

// verify checks shares against the seal: unseal key shares under the shamir
// seal, recovery key shares under an auto-unseal seal.
func (g *TokenGeneration) verify(ctx context.Context, shares [][]byte, nonce string, required int) error {
	err := g.c.seal.VerifyShares(ctx, g.c.wal, shares)
	if err == nil {
		return nil
	}
	keys := "unseal"
	if g.c.seal.RecoveryKeySupported() {
		keys = "recovery"
	}
	if errors.Is(err, seal.ErrInvalidShares) || errors.Is(err, seal.ErrInvalidRecoveryShares) || errors.Is(err, seal.ErrTooFewShares) {
		// The seal's message may say which share is malformed: it goes to
		// the log, the caller only learns that the set is wrong.
		g.c.logger.Warn().Err(err).Str("nonce", nonce).Msg(g.kind.name + ": the key shares given do not verify; progress reset")
		return Invalidf("%s aborted: the %d key shares given do not verify against this server's %s keys. The attempt (nonce %s) is still open with its progress reset to 0 of %d: give %d shares from this cluster's sys/init again, or cancel it with %s -cancel",
			g.kind.name, required, keys, nonce, required, required, g.kind.cli)
	}
	return fmt.Errorf("%s: check the %s key shares: %w", g.kind.name, keys, err)
}

// complete creates the token and ends the attempt with it encoded.
func (g *TokenGeneration) complete(ctx context.Context, nonce string) (string, error) {
	token, err := g.mint.create(ctx)
	if err != nil {
		return "", fmt.Errorf("%s: create the token: %w", g.kind.name, err)
	}
	encoded, err := g.gen.Complete(nonce, token)
	if err != nil {
		// Nobody will ever see this token: take it back.
		if rerr := g.mint.revoke(ctx, token); rerr != nil {
			g.c.logger.Error().Err(rerr).Msg(g.kind.name + ": revoking a token that could not be encoded")
		}
		return "", fmt.Errorf("%s: encode the new token: %w", g.kind.name, err)
	}
	return encoded, nil
}

// reset cancels the attempt as the core seals (stateMu held exclusively).
func (g *TokenGeneration) reset() {
	g.mu.Lock()
	g.gen.Cancel()
	g.mu.Unlock()
}

// required checks that the core can run a generation and returns the number
// of shares it takes. stateMu is held.
func (g *TokenGeneration) required(ctx context.Context) (int, error) {
	c := g.c
	if c.replacing {
		return 0, ErrReplacing
	}
	cfg, err := c.seal.Config(ctx, c.wal)
	if err != nil {
		return 0, fmt.Errorf("read seal configuration: %w", err)
	}
	if cfg == nil {
		return 0, ErrNotInitialized
	}
	if c.barrier.Sealed() {
		return 0, ErrSealed
	}
	if g.kind.guard != nil {
		if err := g.kind.guard(); err != nil {
			return 0, err
		}
	}
	if c.seal.RecoveryKeySupported() {
		return cfg.RecoveryThreshold, nil
	}
	return cfg.SecretThreshold, nil
}

// status renders the attempt; mu is held.
func (g *TokenGeneration) status(required int) *GenerationStatus {
	s := g.gen.Status(required)
	return &GenerationStatus{Started: s.Started, Nonce: s.Nonce, Progress: s.Progress, Required: s.Required, OTPLength: s.OTPLength}
}

// explain words rootgen's refusals for this kind's endpoints; mu is held.
func (g *TokenGeneration) explain(err error, required int) error {
	k, st := g.kind, g.gen.Status(required)
	switch {
	case errors.Is(err, rootgen.ErrInProgress):
		return Invalidf("a %s is already in progress (nonce %s, %d of %d key shares given): finish it, or cancel it with DELETE %s/attempt (%s -cancel) and start again",
			k.name, st.Nonce, st.Progress, st.Required, k.path, k.cli)
	case errors.Is(err, rootgen.ErrNotStarted):
		return Invalidf("no %s is in progress: start one with PUT %s/attempt (%s -init)", k.name, k.path, k.cli)
	case errors.Is(err, rootgen.ErrNonceMismatch):
		return Invalidf("the nonce given is not the one of the %s in progress: read it with GET %s/attempt (%s -status) and check with whoever started the attempt that it is the one you mean to give your key share to",
			k.name, k.path, k.cli)
	case errors.Is(err, rootgen.ErrDuplicateShare):
		return Invalidf("this key share was already given in this %s (%d of %d key shares given): the next share must come from another key holder",
			k.name, st.Progress, st.Required)
	case errors.Is(err, rootgen.ErrShareSize):
		return Invalidf("%v: give one key share exactly as sys/init printed it, in hex or base64", err)
	case errors.Is(err, rootgen.ErrOTPLength):
		return Invalidf("%v: the otp must be %d characters long (otp_length); omit it to have the server draw one (%s -init), or draw one with %s -generate-otp",
			err, g.gen.OTPLength(), k.cli, k.cli)
	}
	return err
}
