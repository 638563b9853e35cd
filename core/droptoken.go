package core

import (
	"context"
	"fmt"
	"strings"

	"github.com/cofferhq/coffer/core/acl"
	"github.com/cofferhq/coffer/core/drtoken"
	"github.com/cofferhq/coffer/logical"
)

// DR operation tokens (Vault's sys/replication/dr/secondary/*): the token
// that authorises promoting a DR secondary or pointing it at a new primary,
// when the cluster serves no other client request.
//
// A DR secondary generates one from a threshold of key shares, with the flow
// of sys/generate-root (TokenGeneration) and its own minter: the token is
// kept in memory (core/drtoken: a SHA-256 of it, for DROperationTokenTTL),
// never in the token store, which holds the primary's tokens and is replaced
// by a resync. It is gone at its expiry, at
// sys/replication/dr/secondary/operation-token/delete, at a seal and at a
// restart; a resync (ReplaceData) keeps it.
//
// The replication layer asks CheckDROperationToken before each DR
// operation: a live DR operation token passes, and so does a token of the
// token store (one created on the primary and replicated, a root token)
// whose policies grant update on the operation's path.

// DROperationTokenPath is the base of the DR operation token generation
// endpoints (attempt, update).
const DROperationTokenPath = "sys/replication/dr/secondary/generate-operation-token"

// DROperationTokenTTL is how long a generated DR operation token lives.
const DROperationTokenTTL = drtoken.DefaultTTL

// drHowTo says how to get a token CheckDROperationToken accepts.
const drHowTo = "generate a DR operation token on this DR secondary with a threshold of its key shares " +
	"(coffer operator generate-root -dr-token -init, then one share per key holder; it lives 1h), " +
	"or give a token created on the primary whose policies grant \"update\" on %s"

// newDRGeneration is sys/replication/dr/secondary/generate-operation-token:
// it ends with a DR operation token in c.drTokens. It runs on a DR
// secondary only.
func (c *Core) newDRGeneration() *TokenGeneration {
	kind := generationKind{
		name:  "DR operation token generation",
		path:  DROperationTokenPath,
		cli:   "coffer operator generate-root -dr-token",
		guard: c.requireDRSecondary,
	}
	return c.newTokenGeneration(kind, drtoken.Length, minter{
		create: func(context.Context) (string, error) {
			tok, exp, err := c.drTokens.Mint()
			if err != nil {
				return "", err
			}
			c.logger.Info().Time("expires", exp).Msg("DR operation token generated (held in memory: a seal or a restart drops it)")
			return tok, nil
		},
		revoke: func(_ context.Context, token string) error {
			c.drTokens.Revoke(token)
			return nil
		},
	})
}

// DROperationTokenGeneration serves
// sys/replication/dr/secondary/generate-operation-token.
func (c *Core) DROperationTokenGeneration() *TokenGeneration { return c.drGen }

// requireDRSecondary refuses what only a DR secondary serves.
func (c *Core) requireDRSecondary() error {
	mode := c.replication().DRMode()
	if mode == ModeSecondary {
		return nil
	}
	return Invalidf("this cluster is not a DR secondary: its DR replication mode is %q. DR operation tokens exist to promote a DR secondary or change its primary; on this cluster use a token with the right policies, or a root token (coffer operator generate-root)", mode)
}

// RevokeDROperationToken serves
// sys/replication/dr/secondary/operation-token/delete: it drops a DR
// operation token generated here. The token authorises its own deletion;
// anything else is ErrPermissionDenied. Tokens of the token store are not
// revoked here: they are the primary's (revoke them there).
func (c *Core) RevokeDROperationToken(ctx context.Context, token string) error {
	if err := c.requireDRSecondary(); err != nil {
		return err
	}
	if token == "" {
		return Invalidf("'dr_operation_token' must be specified in the request body: the DR operation token to delete, as decoded by coffer operator generate-root -dr-token -decode")
	}
	if !c.drTokens.Revoke(token) {
		return fmt.Errorf("%w: dr_operation_token is not a live DR operation token of this cluster: it expired (they live %s), was deleted already, or was dropped by a seal or a restart; nothing to delete. A token of the token store is revoked on the primary (coffer token revoke), and the revocation replicates",
			ErrPermissionDenied, DROperationTokenTTL)
	}
	c.logger.Info().Msg("DR operation token deleted")
	return nil
}

// CheckDROperationToken reports whether token authorises the DR operation
// at path ("sys/replication/dr/secondary/promote"): nil for a live DR
// operation token generated here, or for a token of the token store whose
// policies grant update on path (with sudo where the path needs it, as a
// request would); otherwise an error wrapping ErrPermissionDenied that says
// how to get one (or ErrSealed while the token store is sealed).
//
// The replication layer calls it before each operation on a DR secondary.
// It takes no core lock (only those of the token set, the token store and
// the policy cache), so it may be called while the replication layer holds
// its own. A use-limited store token is refused: spending a use would write
// to a token store that is the primary's copy.
func (c *Core) CheckDROperationToken(ctx context.Context, token, path string) error {
	if token == "" {
		return fmt.Errorf("%w: missing dr_operation_token: %s", ErrPermissionDenied, fmt.Sprintf(drHowTo, path))
	}
	if c.drTokens.Valid(token) {
		return nil
	}
	norm, err := NormalizePath(path, logical.UpdateOperation)
	if err != nil {
		return err
	}
	te, err := c.tokens.Lookup(ctx, token)
	if err != nil {
		return mapBarrierErr(err)
	}
	if te == nil {
		return fmt.Errorf("%w: dr_operation_token is neither a live DR operation token of this cluster (they expire after %s and are dropped by a seal or a restart) nor a valid token: %s",
			ErrPermissionDenied, DROperationTokenTTL, fmt.Sprintf(drHowTo, norm))
	}
	if te.NumUses != 0 {
		return fmt.Errorf("%w: dr_operation_token is a token with a use limit, which cannot authorise a DR operation (its uses cannot be spent in a DR secondary's copy of the primary's token store): %s",
			ErrPermissionDenied, fmt.Sprintf(drHowTo, norm))
	}
	a, err := c.policies.aclFor(ctx, te.Policies)
	if err != nil {
		return fmt.Errorf("load policies of token: %w", err)
	}
	allowed, sudo := a.Allowed(norm, acl.Operation(logical.UpdateOperation))
	if !allowed || (acl.RequiresSudo(norm) && !sudo && !a.IsRoot()) {
		return fmt.Errorf("%w: the dr_operation_token's policies (%s) do not grant \"update\" on %q: %s",
			ErrPermissionDenied, strings.Join(te.Policies, ", "), norm, fmt.Sprintf(drHowTo, norm))
	}
	return nil
}
