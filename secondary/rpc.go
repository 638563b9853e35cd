package secondary

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/telemetry"
)

// Forward sends an encoded forwarded write (opaque here: package forwarder
// encodes and decodes it) to the primary over the authenticated, sealed RPC
// and returns the opened reply payload. It fails fast (ErrUnreachable from
// the bus) when the primary cannot be reached; it never retries on its own,
// so a write the client saw fail is not applied later.
func (s *Secondary) Forward(ctx context.Context, payload []byte) ([]byte, error) {
	return s.callRaw(ctx, replication.MethodForward, payload)
}

// WaitRemoteWAL waits until this secondary has applied the primary's WAL up
// to index, or ctx ends (the caller bounds it: best_effort_wal_wait_duration).
func (s *Secondary) WaitRemoteWAL(ctx context.Context, index uint64) error {
	return s.waitRemoteWAL(ctx, index, s.generation())
}

// waitRemoteWAL is WaitRemoteWAL for index of generation gen.
func (s *Secondary) waitRemoteWAL(ctx context.Context, index, gen uint64) error {
	for {
		s.mu.Lock()
		changed := s.m.Generation() != gen
		done, ch := s.m.LastRemoteWAL() >= index, s.advanced
		s.mu.Unlock()
		if changed {
			// Another primary's WAL: its indexes say nothing of index.
			return fmt.Errorf("%w: the replication set moved from generation %d to %d while waiting for WAL index %d of the first",
				ErrPrimaryChanged, gen, s.generation(), index)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.revoked:
			return ErrRevoked
		case <-ch:
		}
	}
}

// epochKey returns the replication key of epoch, fetching it from the primary
// when unknown (one fetch at a time: the others find it known).
func (s *Secondary) epochKey(ctx context.Context, epoch uint32) ([]byte, error) {
	if k := s.knownKey(epoch); k != nil {
		return k, nil
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if k := s.knownKey(epoch); k != nil {
		return k, nil // fetched while this one waited
	}
	var reply replication.KeyReply
	if err := s.call(ctx, replication.MethodKey, &replication.KeyRequest{Epoch: epoch}, &reply); err != nil {
		return nil, err
	}
	if reply.Epoch != epoch {
		return nil, fmt.Errorf("key reply for epoch %d, asked %d", reply.Epoch, epoch)
	}
	if s.cfg.DR && len(reply.DRKey) != replication.KeySize {
		return nil, fmt.Errorf("the primary sent no DR key of epoch %d: is this secondary still registered as a DR secondary there?", epoch)
	}
	s.mu.Lock()
	s.sec.setKey(epoch, reply.Key)
	if s.cfg.DR {
		s.sec.setDRKey(epoch, reply.DRKey)
	}
	stored, snap := s.stored, s.sec.clone()
	s.mu.Unlock()
	s.log.Info().Uint32("epoch", epoch).Msg("fetched a new replication key epoch")
	if stored {
		if err := saveSecret(ctx, s.cfg.State, snap); err != nil {
			s.log.Warn().Err(err).Msg("cannot store the new replication key; it will be fetched again after a restart")
		}
	}
	return reply.Key, nil
}

// knownKey is epoch's key when this secondary has it (and, on a DR
// secondary, the DR key too), else nil.
func (s *Secondary) knownKey(epoch uint32) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.DR && s.sec.drKey(epoch) == nil {
		return nil // a DR secondary needs both
	}
	return s.sec.key(epoch)
}

// call sends one authenticated RPC and decodes its reply.
func (s *Secondary) call(ctx context.Context, method string, req, reply replication.Message) error {
	payload, err := replication.EncodeMessage(req)
	if err != nil {
		return err
	}
	out, err := s.callRaw(ctx, method, payload)
	if err != nil {
		return err
	}
	return replication.DecodeMessage(out, reply)
}

// callRaw sends one authenticated RPC with an opaque payload and returns the
// opened reply payload, an authenticated *replication.RPCError (sealed with
// the RPC key, or signed by the primary for this request), or a transport
// error (bus.ErrUnreachable when no authenticated reply came in time). Every
// reply that does not open as the primary's answer to this request (garbage,
// replays, forged or unauthenticated errors) is ignored and the wait goes on:
// the first reply on the bus may be a stranger's.
func (s *Secondary) callRaw(ctx context.Context, method string, payload []byte) ([]byte, error) {
	defer telemetry.MeasureSince(telemetry.RPCClientName(method), time.Now())
	s.mu.Lock()
	sid, cid, key, pub := s.sec.SecondaryID, s.sec.PrimaryClusterID, s.sec.RPCKey, s.sec.pub()
	s.mu.Unlock()
	msg, err := replication.SealRequest(sid, method, key, payload, s.cfg.Now())
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	var out []byte
	var rerr error
	_, err = s.bus.RequestVerified(rctx, replication.RPCSubject(cid, method), msg, func(reply []byte) error {
		p, gen, err := replication.OpenReplyGen(reply, msg, key, pub)
		var re *replication.RPCError
		if err != nil && !(errors.As(err, &re) && re.Authenticated) {
			return err
		}
		if newest := s.generation(); gen != 0 && gen < newest {
			// A superseded primary that has not noticed yet: its state is
			// not the set's any more. Wait for the holder's answer.
			return fmt.Errorf("an answer of generation %d, older than the newest seen (%d)", gen, newest)
		}
		out, rerr = p, err
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, rerr
}

// heartbeats sends a heartbeat every interval until ctx ends or revocation.
func (s *Secondary) heartbeats(ctx context.Context) {
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		s.heartbeat(ctx)
		select {
		case <-ctx.Done():
			return
		case <-s.revoked:
			return
		case <-t.C:
		}
	}
}

func (s *Secondary) heartbeat(ctx context.Context) {
	s.mu.Lock()
	req := &replication.HeartbeatRequest{LastRemoteWAL: s.m.LastRemoteWAL(), APIAddr: s.cfg.APIAddr, ClusterID: s.cfg.ClusterID, Generation: s.m.Generation(),
		SentAt: s.cfg.Now().UnixNano(), LastRTTMicros: s.hbRTT.Microseconds(), LastRemoteCommit: s.remoteCommit}
	if s.cfg.DR {
		sum := sha256.Sum256(s.sec.PrimaryState)
		req.StateDigest = sum[:]
	}
	s.mu.Unlock()
	var reply replication.HeartbeatReply
	sent := s.cfg.Now()
	err := s.call(ctx, replication.MethodHeartbeat, req, &reply)
	switch {
	case err == nil:
		s.mu.Lock()
		s.lastHeartbeat = s.cfg.Now()
		s.hbRTT = s.lastHeartbeat.Sub(sent)
		if !s.isRevoked() { // an answer in flight as the revocation came: the revocation stays
			s.lastErr, s.hbErr = "", "" // the primary answers again: an old failure is no longer the state
		}
		if reply.APIAddr != "" {
			s.sec.PrimaryAPIAddr = reply.APIAddr
		}
		changed := false
		if s.cfg.DR && reply.PrimaryState != nil {
			s.sec.PrimaryState = reply.PrimaryState
			changed = true
		}
		refilter := !s.cfg.DR && reply.FilterID != s.sec.FilterID
		if refilter {
			s.sec.FilterID = reply.FilterID
			changed = true
		}
		var snap *secret
		if changed && s.stored {
			snap = s.sec.clone()
		}
		s.mu.Unlock()
		if snap != nil {
			if err := saveSecret(ctx, s.cfg.State, snap); err != nil {
				s.log.Warn().Err(err).Msg("cannot store the replication state the primary's heartbeat changed; the next heartbeat brings it again")
			}
		}
		if refilter {
			s.log.Info().Str("filter_id", reply.FilterID).Msg("the primary applies another paths filter to this secondary: resyncing on its batches")
			s.execAside(ctx, s.step(FilterChanged{}))
		}
		s.execAside(ctx, s.step(HeartbeatOK{PrimaryLastWAL: reply.LastWAL, Gen: reply.Generation}))
	case replication.IsRevoked(err):
		s.setErr(err)
		s.exec(ctx, s.step(Revoked{}), &turn{})
	case ctx.Err() != nil:
	default:
		s.setErr(err)
		s.mu.Lock()
		s.hbErr = err.Error()
		s.mu.Unlock()
		s.exec(ctx, s.step(HeartbeatFailed{Err: err}), &turn{})
	}
}

// execAside carries out what a heartbeat's answer led to (a resync the stall
// check or a new generation starts) on a goroutine of its own, so that
// heartbeats, and with them the connection state and the lag the status
// shows, go on during a long sync and its loop back-off. One goroutine runs
// at a time; actions that arrive meanwhile queue behind it, in order.
func (s *Secondary) execAside(ctx context.Context, acts []Action) {
	if len(acts) == 0 {
		return
	}
	s.asideMu.Lock()
	s.asideQ = append(s.asideQ, acts...)
	if s.asideRunning {
		s.asideMu.Unlock()
		return
	}
	s.asideRunning = true
	s.asideMu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			s.asideMu.Lock()
			q := s.asideQ
			s.asideQ = nil
			if len(q) == 0 {
				s.asideRunning = false
				s.asideMu.Unlock()
				return
			}
			s.asideMu.Unlock()
			s.exec(ctx, q, &turn{})
		}
	}()
}
