package primary

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/cofferhq/coffer/replication"
)

// legacyRefusal answers a version 1 activation request, which carried the
// token itself on the bus.
const legacyRefusal = "this primary accepts only activation protocol 2, in which the token never travels on the bus: " +
	"upgrade this secondary to the primary's coffer version, then generate a new token on the primary " +
	"(the one just used was sent on the bus in clear)"

// handleActivate answers an activation request (protocol 2, docs/replication.md
// "Activation"): the request names the secondary and the token's jti and is
// MACed with the token's activation secret; the answer, a bundle sealed to
// the request's public key or a refusal, is signed with the signing key and
// names the request by its digest. The token itself never reaches the primary.
func (p *Primary) handleActivate(ctx context.Context, data []byte) []byte {
	if replication.IsLegacyActivateRequest(data) {
		p.log.Warn().Msg("refused a version 1 activation request: it carries the activation token in clear on the bus; upgrade that secondary and generate a new token")
		return replication.LegacyActivateRefusal(legacyRefusal)
	}
	req, err := replication.ParseActivateRequest(data)
	if err != nil {
		p.mu.Lock()
		signer := p.st.signer()
		p.mu.Unlock()
		return p.activateRefusal(signer, replication.Digest(data), replication.CodeBadRequest, "the activation request is malformed: "+err.Error())
	}
	out, fresh := p.activate(ctx, req)
	if fresh {
		// A durable left over from an earlier activation of this id would start
		// at an old position: start clean before the secondary creates its own
		// (best effort: an old position only costs skipped replays). Only for
		// the request that activated: a replay of it must not touch the
		// consumer the secondary may be using already.
		if err := p.cfg.Bus.DeleteConsumer(ctx, p.stream, replication.ConsumerName(req.SecondaryID)); err != nil {
			p.log.Warn().Err(err).Str("secondary_id", req.SecondaryID).Msg("activation: cannot delete an old consumer")
		}
	}
	return out
}

// activate does handleActivate's work for a parsed request; fresh is true when
// this request activated the secondary just now.
//
// The same request delivered again (a replay from the bus, or the secondary
// sending it again after a transient refusal) gets the same answer: the bundle
// sealed to the same key, which only that secondary can open. Any other
// request for a used token is refused, so the first request with a valid MAC
// wins, and only the token's holder can make one.
func (p *Primary) activate(ctx context.Context, req *replication.ActivateRequest) (out []byte, fresh bool) {
	now := p.cfg.Now()
	root, rootErr := p.cfg.RootKey()
	p.mu.Lock()
	defer p.mu.Unlock()
	signer := p.st.signer()
	id := req.SecondaryID
	refuse := func(code, msg string) ([]byte, bool) {
		return p.activateRefusal(signer, req.Digest, code, msg), false
	}
	r := p.st.Secondary[id]
	switch {
	case r == nil || r.JTI == "":
		return refuse(replication.CodeTokenInvalid, fmt.Sprintf("primary %s issued no activation token for secondary %q", p.cfg.ClusterID, id))
	case r.JTI != req.TokenID:
		return refuse(replication.CodeTokenUsed, fmt.Sprintf("this activation token is not the one primary %s holds for secondary %q (revoked, or replaced by a newer one): use the newest token, or generate a new one on the primary", p.cfg.ClusterID, id))
	case r.State == SecondaryActive && bytes.Equal(r.ActivatedBy, req.Digest):
		if rootErr != nil {
			return p.rootUnavailable(signer, req, rootErr), false
		}
		out, _ := p.bundleReply(signer, req, root, r.RPCKey, r.Kind, refuse)
		return out, false // not fresh: the consumer the secondary may use already stays
	case r.State == SecondaryRevoked:
		return refuse(replication.CodeTokenUsed, "activation token was revoked: generate a new one on the primary")
	case r.State == SecondaryActive:
		return refuse(replication.CodeTokenUsed, "activation token was already used: revoke the secondary and generate a new token")
	case len(r.Secret) == 0:
		return refuse(replication.CodeTokenInvalid, "this activation token was issued by an older coffer, without an activation secret: generate a new one on the primary")
	}
	if err := req.Verify(p.cfg.ClusterID, r.Secret); err != nil {
		p.log.Warn().Err(err).Str("secondary_id", id).Msg("refused an activation request that the token's secret does not authenticate (a stranger on the bus, or a token of another primary with the same ids)")
		return refuse(replication.CodeTokenInvalid, "the activation request is not authenticated by the secret of the token issued for this secondary: use the token the primary issued, unaltered")
	}
	if !now.Before(r.TokenExpires) {
		return refuse(replication.CodeTokenExpired, "activation token has expired: generate a new one on the primary")
	}
	if rootErr != nil {
		return p.rootUnavailable(signer, req, rootErr), false
	}
	rpcKey := randomKey()
	out, ok := p.bundleReply(signer, req, root, rpcKey, r.Kind, refuse)
	if !ok {
		return out, false
	}
	old := *r
	r.State, r.RPCKey, r.ActivatedAt, r.ActivatedBy, r.Secret = SecondaryActive, rpcKey, now, req.Digest, nil
	if err := saveState(ctx, p.cfg.State, p.st); err != nil {
		*r = old
		p.log.Error().Err(err).Str("secondary_id", id).Msg("activation: cannot store the registry")
		return refuse(replication.CodeUnavailable, "the primary cannot store the activation right now: retry later")
	}
	p.live[id] = &liveInfo{lastHeartbeat: now}
	p.log.Info().Str("secondary_id", id).Uint32("epoch", p.st.Epoch).Msg("secondary activated")
	return out, true
}

// bundleReply seals the bootstrap bundle to the request's key and signs the
// reply; ok is false (and out a refusal) when that fails. p.mu is held.
func (p *Primary) bundleReply(signer ed25519.PrivateKey, req *replication.ActivateRequest, root, rpcKey []byte, kind string,
	refuse func(code, msg string) ([]byte, bool)) (out []byte, ok bool) {
	bundle := &replication.Bundle{
		PrimaryClusterID: p.cfg.ClusterID,
		SecondaryID:      req.SecondaryID,
		RootKey:          root,
		ReplicationKey:   p.st.key(p.st.Epoch),
		Epoch:            p.st.Epoch,
		SigningPublicKey: signer.Public().(ed25519.PublicKey),
		RPCKey:           rpcKey,
		Stream:           p.stream,
		Subject:          p.subj,
		DevRootTokenID:   p.cfg.DevRootTokenID,
		Generation:       p.gen.Load(),
	}
	if fid := p.filterIDOf(req.SecondaryID); fid != "" {
		// A filtered secondary never holds the unfiltered key.
		bundle.ReplicationKey, bundle.FilterID = replication.FilterKey(bundle.ReplicationKey, fid), fid
	}
	var err error
	if kind == KindDR {
		bundle.DR, bundle.DRKey = true, p.st.drKey(p.st.Epoch)
		bundle.PrimaryState, err = stateRecord.Encode(p.st)
	}
	var sealed []byte
	if err == nil {
		sealed, err = replication.SealBundle(bundle, req.PublicKey)
	}
	if err == nil {
		out, err = replication.SignActivateReply(signer, req.Digest, sealed)
	}
	if err != nil {
		p.log.Error().Err(err).Str("secondary_id", req.SecondaryID).Msg("activation: cannot seal the bootstrap bundle")
		out, _ = refuse(replication.CodeInternal, "the primary cannot seal the bootstrap bundle: see its log")
		return out, false
	}
	return out, true
}

func (p *Primary) rootUnavailable(signer ed25519.PrivateKey, req *replication.ActivateRequest, err error) []byte {
	p.log.Error().Err(err).Msg("activation: cannot read the root key")
	return p.activateRefusal(signer, req.Digest, replication.CodeUnavailable, "the primary cannot read its root key right now (sealed?): retry later")
}

// activateRefusal is a signed refusal of the request of digest.
func (p *Primary) activateRefusal(signer ed25519.PrivateKey, digest []byte, code, msg string) []byte {
	out, err := replication.SignActivateRefusal(signer, digest, &replication.RPCError{Code: code, Msg: msg})
	if err != nil {
		// Only a damaged signing key gets here: say nothing the secondary
		// could take for the primary's answer.
		p.log.Error().Err(err).Msg("activation: cannot sign the refusal")
		return nil
	}
	return out
}
