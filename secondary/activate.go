package secondary

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/internal/backoff"
	"github.com/cofferhq/coffer/replication"
)

// RedemptionVersion is Redemption.V.
const RedemptionVersion = 1

// redeemTimeout bounds a redemption: its request is sent again, the same
// bytes, while no answer comes, each wait rpcTimeout.
const redeemTimeout = 30 * time.Second

// Redemption is an activation the primary has answered: its signed bundle,
// still sealed to this secondary's X25519 key, with that private key and the
// token's public claims. With it a secondary takes the bundle again after a
// restart (Resume) without the token and without asking the primary: the
// token is spent once redeemed. PrivateKey opens the bundle, which holds the
// primary's root key: store a Redemption only encrypted (replmode wraps it
// with the static seal's key). Its JSON is a stored format: a change old
// servers cannot read takes a new V.
type Redemption struct {
	V                int    `json:"v"`
	PrimaryClusterID string `json:"primary_cluster_id"`
	SecondaryID      string `json:"secondary_id"`
	SigningPublicKey []byte `json:"signing_public_key"`
	PrimaryAPIAddr   string `json:"primary_api_addr"`
	BusURL           string `json:"bus_url"`
	PrivateKey       []byte `json:"private_key"`
	SealedBundle     []byte `json:"sealed_bundle"`
}

// Activate redeems an activation token and resumes it at once: Redeem, then
// Resume. The caller then wipes its storage (Wipe), installs bundle.RootKey,
// and calls Start, which runs the first full sync; or Stop to abandon it.
func Activate(ctx context.Context, cfg Config, token, busURLOverride string) (*Secondary, *replication.Bundle, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	claims, err := replication.ParseToken(token, cfg.Now())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrActivation, err)
	}
	r, err := Redeem(ctx, cfg, claims, busURLOverride)
	if err != nil {
		return nil, nil, err
	}
	return Resume(ctx, cfg, r)
}

// Redeem runs the activation exchange for a parsed token (the caller checked
// its signature and expiry): it connects to the primary's NATS
// (busURLOverride, else the token's), sends the activation request (its id,
// the token's jti, a fresh X25519 public key and a nonce, MACed with the
// token's activation secret: never the token) and waits for the primary's
// signed answer to that request, ignoring every other reply. It returns only
// on an authenticated answer (the Redemption, or a refusal: ErrActivation) or
// when the wait ends (bus.ErrUnreachable): a stranger on the bus can delay it,
// not make it fail or succeed.
func Redeem(ctx context.Context, cfg Config, claims *replication.TokenClaims, busURLOverride string) (*Redemption, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	url := claims.BusURL
	if busURLOverride != "" {
		url = busURLOverride
	}
	b, own, err := cfg.openBus(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("activate: connect to the primary's NATS: %w", err)
	}
	if own {
		defer func() { _ = b.Close() }()
	}
	priv, sealed, err := redeem(ctx, b, claims)
	if err != nil {
		return nil, err
	}
	// Fail now rather than after a restart if the bundle does not open.
	if _, err := openBundle(sealed, priv, claims.Issuer, claims.Subject, claims.PublicKey); err != nil {
		return nil, err
	}
	return &Redemption{
		V: RedemptionVersion, PrimaryClusterID: claims.Issuer, SecondaryID: claims.Subject,
		SigningPublicKey: claims.PublicKey, PrimaryAPIAddr: claims.APIAddr, BusURL: url,
		PrivateKey: priv.Bytes(), SealedBundle: sealed,
	}, nil
}

// Resume opens a Redemption's bundle and returns the activated secondary, not
// started, with the bundle (its root key for the barrier). It needs no
// network but the connection to the primary's NATS the secondary keeps.
func Resume(ctx context.Context, cfg Config, r *Redemption) (*Secondary, *replication.Bundle, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if r.V != RedemptionVersion {
		return nil, nil, fmt.Errorf("activation record version %d, this build of coffer reads version %d: activate again with a new token", r.V, RedemptionVersion)
	}
	priv, err := ecdh.X25519().NewPrivateKey(r.PrivateKey)
	if err != nil {
		return nil, nil, fmt.Errorf("activation record: the private key is damaged (%w): activate again with a new token", err)
	}
	bundle, err := openBundle(r.SealedBundle, priv, r.PrimaryClusterID, r.SecondaryID, r.SigningPublicKey)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case cfg.DR && !bundle.DR:
		return nil, nil, fmt.Errorf("%w: this token activates a performance secondary: use it with sys/replication/performance/secondary/enable, or generate a DR token (dr/primary/secondary-token)", ErrActivation)
	case !cfg.DR && bundle.DR:
		return nil, nil, fmt.Errorf("%w: this token activates a DR secondary: use it with sys/replication/dr/secondary/enable, or generate a performance token", ErrActivation)
	}
	b, own, err := cfg.openBus(ctx, r.BusURL)
	if err != nil {
		return nil, nil, fmt.Errorf("activate: connect to the primary's NATS: %w", err)
	}
	sec := &secret{
		V: stateV, PrimaryClusterID: bundle.PrimaryClusterID, SecondaryID: bundle.SecondaryID,
		PrimaryAPIAddr: r.PrimaryAPIAddr, BusURL: r.BusURL, SigningPublicKey: bundle.SigningPublicKey,
		RPCKey: bundle.RPCKey, Stream: bundle.Stream, Subject: bundle.Subject, Keys: map[string][]byte{},
		FilterID: bundle.FilterID,
	}
	sec.setKey(bundle.Epoch, bundle.ReplicationKey)
	if bundle.DR {
		sec.setDRKey(bundle.Epoch, bundle.DRKey)
		sec.PrimaryState = bundle.PrimaryState
	}
	s := newSecondary(cfg, b, own, sec)
	s.needSync = true
	s.m.gen = bundle.Generation
	s.log.Info().Uint32("epoch", bundle.Epoch).Msg("activated; the first full sync starts with Start")
	return s, bundle, nil
}

// redeem runs the activation exchange of protocol 2 (docs/replication.md,
// "Activation") for the token claims: it sends the MACed request and waits
// for the primary's signed answer to it. An authenticated transient refusal
// (the primary is sealed, its storage failed) sends the same request again
// after a backoff: the primary answers a request it already took with the
// same bundle. Everything else that arrives (garbage, forged refusals,
// replies to other requests, a bundle re-sealed by a man in the middle) is
// ignored until the deadline. It returns the private key and the bundle
// still sealed to it.
func redeem(ctx context.Context, b *bus.Bus, claims *replication.TokenClaims) (*ecdh.PrivateKey, []byte, error) {
	priv, err := replication.NewActivationKey()
	if err != nil {
		return nil, nil, err
	}
	req, err := replication.SealActivateRequest(claims, priv.PublicKey())
	if err != nil {
		return nil, nil, fmt.Errorf("activate: %w", err)
	}
	subject := replication.RPCSubject(claims.Issuer, replication.MethodActivate)
	rctx, cancel := context.WithTimeout(ctx, redeemTimeout)
	defer cancel()
	bo := backoff.Backoff{Min: retryMin, Max: retryMax}
	for {
		actx, acancel := context.WithTimeout(rctx, rpcTimeout)
		sealed, refusal, err := askActivate(actx, b, subject, req, claims)
		acancel()
		switch {
		case err != nil && errors.Is(err, bus.ErrUnreachable) && rctx.Err() == nil:
			// No answer (NATS moving under a failover, say): the same
			// request again. The primary answers a request it took with
			// the same bundle, so resending is safe.
			if !bo.Wait(rctx) {
				return nil, nil, fmt.Errorf("activate: %w", err)
			}
			continue
		case err != nil:
			return nil, nil, fmt.Errorf("activate: %w", err)
		case refusal == nil:
			return priv, sealed, nil
		case refusal.Permanent():
			return nil, nil, fmt.Errorf("%w: %s", ErrActivation, refusal.Msg)
		}
		if !bo.Wait(rctx) {
			return nil, nil, fmt.Errorf("activate: %w: the primary answered %q and nothing better came before the deadline; retry later",
				bus.ErrUnreachable, refusal.Msg)
		}
	}
}

// askActivate sends the request once and returns the primary's authenticated
// answer: the sealed bundle, or its signed refusal.
func askActivate(ctx context.Context, b *bus.Bus, subject string, req []byte, claims *replication.TokenClaims) ([]byte, *replication.RPCError, error) {
	var sealed []byte
	var refusal *replication.RPCError
	_, err := b.RequestVerified(ctx, subject, req, func(reply []byte) error {
		out, err := replication.OpenActivateReply(reply, req, claims.PublicKey)
		var re *replication.RPCError
		switch {
		case err == nil:
			sealed = out
		case errors.As(err, &re) && re.Authenticated:
			refusal = re
		default:
			return err
		}
		return nil
	})
	return sealed, refusal, err
}

// openBundle opens the bundle the primary signed for this request and checks
// it against the token's claims (issuer, subject, signing key).
func openBundle(sealed []byte, priv *ecdh.PrivateKey, issuer, subject string, signingKey []byte) (*replication.Bundle, error) {
	bundle, err := replication.OpenBundle(sealed, priv)
	if err != nil {
		return nil, fmt.Errorf("activate: the primary's signed bundle does not open: %w (report this: the primary sealed it to another key)", err)
	}
	if bundle.PrimaryClusterID != issuer || bundle.SecondaryID != subject || !bytes.Equal(bundle.SigningPublicKey, signingKey) {
		return nil, fmt.Errorf("%w: the bundle does not match the token (another primary answered?)", ErrActivation)
	}
	return bundle, nil
}
