package primary

import (
	"context"

	"github.com/cofferhq/coffer/replication"
)

// handleForward passes a forwarded write to cfg.Forward. The payload arrives
// opened from the secondary's sealed RPC and leaves as it came: a forwarded
// request is plaintext above the barrier, so this package carries it as
// opaque bytes and never decodes it (package forwarder does).
func (p *Primary) handleForward(ctx context.Context, id string, payload []byte) ([]byte, *replication.RPCError) {
	if p.cfg.Forward == nil {
		return nil, &replication.RPCError{Code: replication.CodeBadRequest, Msg: "this primary does not accept forwarded writes"}
	}
	return p.cfg.Forward(ctx, id, payload)
}
