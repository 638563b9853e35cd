package secondary

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/internal/backoff"
	"github.com/cofferhq/coffer/replication"
)

// redeem runs the activation exchange of protocol 2 (docs/replication.md,
// "Activation") for the token claims: it sends the MACed request and waits
// for the primary's signed answer to it. An authenticated transient refusal
// (the primary is sealed, its storage failed) sends the same request again
// after a backoff: the primary answers a request it already took with the
// same bundle. Everything else that arrives (garbage, forged refusals,
// replies to other requests, a bundle re-sealed by a man in the middle) is
// ignored until the deadline.
func redeem(ctx context.Context, b *bus.Bus, claims *replication.TokenClaims) (*replication.Bundle, error) {
	priv, err := replication.NewActivationKey()
	if err != nil {
		return nil, err
	}
	req, err := replication.SealActivateRequest(claims, priv.PublicKey())
	if err != nil {
		return nil, fmt.Errorf("activate: %w", err)
	}
	subject := replication.RPCSubject(claims.Issuer, replication.MethodActivate)
	rctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	bo := backoff.Backoff{Min: retryMin, Max: retryMax}
	for {
		sealed, refusal, err := askActivate(rctx, b, subject, req, claims)
		switch {
		case err != nil:
			return nil, fmt.Errorf("activate: %w", err)
		case refusal == nil:
			return openBundle(sealed, priv, claims)
		case refusal.Permanent():
			return nil, fmt.Errorf("%w: %s", ErrActivation, refusal.Msg)
		}
		if !bo.Wait(rctx) {
			return nil, fmt.Errorf("activate: %w: the primary answered %q and nothing better came before the deadline; retry later",
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
// it against the token.
func openBundle(sealed []byte, priv *ecdh.PrivateKey, claims *replication.TokenClaims) (*replication.Bundle, error) {
	bundle, err := replication.OpenBundle(sealed, priv)
	if err != nil {
		return nil, fmt.Errorf("activate: the primary's signed bundle does not open: %w (report this: the primary sealed it to another key)", err)
	}
	if bundle.PrimaryClusterID != claims.Issuer || bundle.SecondaryID != claims.Subject ||
		!bytes.Equal(bundle.SigningPublicKey, claims.PublicKey) {
		return nil, fmt.Errorf("%w: the bundle does not match the token (another primary answered?)", ErrActivation)
	}
	return bundle, nil
}
