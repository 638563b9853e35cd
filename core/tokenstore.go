package core

import (
	"errors"

	"github.com/cofferhq/coffer/core/tokens"
	"github.com/cofferhq/coffer/logical"
)

// newTokenStore makes the token store over the barrier, with the batch token
// keys of this file.
func (c *Core) newTokenStore() *tokens.Store {
	return tokens.New(logical.NewView(c.barrier, tokenStoragePrefix), tokens.Options{
		DefaultTTL:          c.cfg.DefaultLeaseTTL,
		MaxTTL:              c.cfg.MaxLeaseTTL,
		BatchKeyStorage:     c.barrier,
		BatchSigningKeyPath: batchTokenSigningKeyPath,
		BatchPublicKeyPath:  batchTokenPublicKeyPath,
		CanGenerateBatchKey: c.canGenerateBatchKey,
		CanPublishBatchKey:  c.canPublishBatchKey,
		RoleStorage:         logical.NewView(c.barrier, tokenRolesPrefix),
	}, c.logger.With().Str("component", "tokens").Logger())
}

// tokenStoragePrefix holds the token store's records (local class).
const tokenStoragePrefix = "sys/token/"

// tokenRolesPrefix holds the token roles (replicated class: roles are
// configuration, written on the primary, the tokens they make are local).
const tokenRolesPrefix = "core/token-roles/"

// The batch token keys (core/tokens/batch.go, "The keys").
const (
	// batchTokenSigningKeyPath holds this cluster's signing key. It is of
	// the local class ("core/local-"): performance replication never ships
	// it, so no performance secondary can sign a token its primary accepts;
	// DR replication does, so a promoted DR secondary signs as its primary.
	batchTokenSigningKeyPath = "core/local-token-batch-signing-key"
	// batchTokenPublicKeyPath holds the public key of the cluster that
	// publishes (canPublishBatchKey), of the replicated class: its
	// performance and DR secondaries verify its batch tokens with it.
	batchTokenPublicKeyPath = "core/token-batch-pub"
)

// canGenerateBatchKey lets every cluster but a DR secondary make its batch
// token signing key: a DR secondary serves no request, and its key is its
// primary's (local class, shipped by DR replication).
func (c *Core) canGenerateBatchKey() error {
	if c.replication().DRMode() == ModeSecondary {
		return errors.New("this cluster is a DR secondary: its batch token signing key is its primary's and comes by DR replication")
	}
	return nil
}

// canPublishBatchKey lets only a cluster that writes its own replicated data
// publish its batch token public key: a performance or DR secondary receives
// its primary's, and one of its own would replace it there (and diverge
// from the set's). A performance secondary still signs batch tokens with its
// own key, which only it trusts.
func (c *Core) canPublishBatchKey() error {
	r := c.replication()
	switch {
	case r.Mode() == ModeSecondary:
		return errors.New("this cluster is a performance secondary: the published batch token key is its primary's")
	case r.DRMode() == ModeSecondary:
		return errors.New("this cluster is a DR secondary: the published batch token key is its primary's")
	}
	return nil
}
