package replmode

import (
	"context"
	"net/http"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/secondary"
)

// recoverEndpoint serves sys/replication/recover. Vault: "attempts recovery
// if replication is in an adverse state". In Coffer it restarts this
// cluster's secondary (performance or DR) from its stored position: the
// consumer, the heartbeats and any sync in progress stop, and a fresh
// secondary starts from last_remote_wal as after a restart of the server. A
// retry loop or a back-off in progress (the merkle-sync loop detector's)
// ends, and the loop count starts again. Nothing is wiped and no token is
// needed. On a cluster that runs no secondary it is refused.
func (m *Manager) recoverEndpoint(ctx context.Context, _ map[string]any) (*logical.Response, error) {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	m.mu.RLock()
	s, dr := m.secondary, false
	if s == nil {
		s, dr = m.drSecondary, true
	}
	starting := m.starting != nil
	m.mu.RUnlock()
	switch {
	case s == nil && starting:
		return nil, logical.Errorf(http.StatusServiceUnavailable, "replication is starting and retries by itself (%s): retry sys/replication/recover when sys/replication/status shows a secondary state", m.startErr)
	case s == nil:
		return nil, logical.InvalidRequest("sys/replication/recover restarts a secondary's replication from its stored position; this cluster runs no secondary (performance mode %s, DR mode %s): nothing to recover here", m.Mode(), m.DRMode())
	}
	before := s.Status()
	s.Stop()
	ns, err := m.reopenSecondary(ctx, dr)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		// The stored role keeps trying in the background, as at unseal.
		if dr {
			m.drSecondary = nil
		} else {
			m.secondary, m.client = nil, nil
		}
		m.startErr = err.Error()
		rctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		m.starting = &retry{cancel: cancel, done: done}
		go m.retryStart(rctx, done)
		m.log.Warn().Err(err).Msg("sys/replication/recover: the secondary could not restart; retrying in the background")
		return nil, logical.Errorf(http.StatusServiceUnavailable, "the secondary stopped but could not restart (%v): it retries in the background; sys/replication/status shows state connecting and the last error", err)
	}
	if dr {
		m.drSecondary = ns
	} else {
		m.setSecondaryLocked(ns)
	}
	m.log.Info().Uint64("last_remote_wal", before.LastRemoteWAL).Str("previous_state", string(before.State)).
		Msg("sys/replication/recover: the secondary restarted from its stored position")
	return &logical.Response{
		Data: map[string]any{
			"previous_state": string(before.State), "previous_error": before.LastError, "last_remote_wal": before.LastRemoteWAL,
		},
		Warnings: []string{"replication restarted from the stored position (last_remote_wal); sys/replication/status shows its state"},
	}, nil
}

// reopenSecondary opens and starts a secondary from its stored state, as
// at unseal (openRole), without holding m.mu.
func (m *Manager) reopenSecondary(ctx context.Context, dr bool) (*secondary.Secondary, error) {
	m.mu.RLock()
	cfg := m.secondaryConfigOf(dr)
	m.mu.RUnlock()
	s, err := secondary.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Start(context.Background()); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}
