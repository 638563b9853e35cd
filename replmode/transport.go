package replmode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/forwarder"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/secondary"
)

// transport carries forwarded writes over a secondary's sealed RPC
// (forwarder.Transport). The payload stays opaque on its way: the secondary
// seals it, the primary opens it and hands it to forwarder's server.
type transport struct{ s *secondary.Secondary }

func (t transport) RoundTrip(ctx context.Context, payload []byte) ([]byte, error) {
	// Heartbeats say the primary is gone: do not send at all, so the client
	// may be told for certain that the write was not applied. (A request
	// that was sent and went unanswered may have been applied: "no
	// responders" can be forged on the bus, so it proves nothing.)
	st := t.s.Status()
	if st.State == secondary.StateRevoked {
		return nil, classified{errors.New("the primary revoked this secondary (an authenticated answer)"), forwarder.ErrRevoked}
	}
	if !st.Connected && !st.LastHeartbeat.IsZero() {
		why := ""
		if st.HeartbeatError != "" {
			// Why the heartbeats fail: a clock skew past the replay window
			// reads here as a refusal "expired", not as a dead primary.
			why = "; the last heartbeat failed: " + st.HeartbeatError
		}
		return nil, classified{fmt.Errorf("no heartbeat of the primary answered since %s%s: the write was not sent", st.LastHeartbeat.UTC().Format(time.RFC3339), why), forwarder.ErrUnreachable}
	}
	out, err := t.s.Forward(ctx, payload)
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), errors.Is(err, bus.ErrInterrupted):
		// Sent, unanswered (the deadline, or this secondary stopping or
		// switching primaries under it): it may have been applied.
		return nil, classified{err, forwarder.ErrNoAnswer}
	case errors.Is(err, bus.ErrUnreachable):
		return nil, classified{err, forwarder.ErrUnreachable}
	case errors.Is(err, bus.ErrTooLarge):
		return nil, classified{err, forwarder.ErrTooLarge}
	case replication.IsRevoked(err):
		return nil, classified{err, forwarder.ErrRevoked}
	}
	return nil, err
}

func (t transport) WaitApplied(ctx context.Context, index uint64) error {
	return t.s.WaitRemoteWAL(ctx, index)
}

// classified keeps an error's message and adds the forwarder's class.
type classified struct{ err, class error }

func (c classified) Error() string   { return c.err.Error() }
func (c classified) Unwrap() []error { return []error{c.err, c.class} }

// handleForward is the primary's forward RPC handler: forwarder's server
// decodes, de-duplicates, checks and applies the request.
func (m *Manager) handleForward(ctx context.Context, secondaryID string, payload []byte) ([]byte, *replication.RPCError) {
	out, err := m.fwd.Handle(ctx, secondaryID, payload)
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, forwarder.ErrCorrupt), errors.Is(err, forwarder.ErrUnknownVersion):
		return nil, &replication.RPCError{Code: replication.CodeBadRequest, Msg: err.Error()}
	case errors.Is(err, forwarder.ErrStillRunning):
		return nil, &replication.RPCError{Code: replication.CodeUnavailable, Msg: err.Error()}
	}
	return nil, &replication.RPCError{Code: replication.CodeInternal, Msg: err.Error()}
}
