package primary

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/cofferhq/coffer/merkle"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/telemetry"
	"github.com/cofferhq/coffer/wal"
)

// Sync page bounds.
const (
	syncPageKeys  = 512
	syncPageBytes = 1 << 20
	// fetchPageBytes bounds the values of one fetch reply.
	fetchPageBytes = 1 << 20
	// merkleServeWait bounds how long a merkle request waits for the index to
	// apply the WAL committed when it arrived.
	merkleServeWait = 2 * time.Second
)

// serve starts the RPC server: one Serve per method.
func (p *Primary) serve() error {
	handlers := map[string]func(context.Context, []byte) []byte{
		replication.MethodActivate:  p.handleActivate,
		replication.MethodSync:      p.sealed(replication.MethodSync, p.handleSync),
		replication.MethodHeartbeat: p.sealed(replication.MethodHeartbeat, p.handleHeartbeat),
		replication.MethodKey:       p.sealed(replication.MethodKey, p.handleKey),
		replication.MethodForward:   p.sealed(replication.MethodForward, p.handleForward),
		replication.MethodMerkle:    p.sealed(replication.MethodMerkle, p.handleMerkle),
		replication.MethodFetch:     p.sealed(replication.MethodFetch, p.handleFetch),
	}
	for method, h := range handlers {
		stop, err := p.cfg.Bus.Serve(replication.RPCSubject(p.cfg.ClusterID, method), p.whileHolding(h))
		if err != nil {
			return fmt.Errorf("serve %s: %w", method, err)
		}
		p.stops = append(p.stops, stop)
	}
	return nil
}

// whileHolding answers only while this process holds the set's generation:
// a process that is still claiming, or fenced (a restored copy of this
// cluster beside the original, a primary superseded by a promotion), stays
// silent, so that secondaries hear the holder alone.
func (p *Primary) whileHolding(h func(context.Context, []byte) []byte) func(context.Context, []byte) []byte {
	return func(ctx context.Context, data []byte) []byte {
		if p.gen.Load() == 0 {
			return nil
		}
		return h(ctx, data)
	}
}

// sealed wraps a handler of an authenticated method: it picks the secondary's
// RPC key, opens the request, and seals the reply (or the error).
//
// A request that does not authenticate, or that the replay guard refuses,
// gets a plain error: a replay of the real request must not obtain an
// authenticated answer to it. An unknown, pending or revoked secondary (no
// RPC key here) gets an error signed with the signing key for this very
// request: that one ends the secondary, so it must be the primary's.
func (p *Primary) sealed(method string, h func(ctx context.Context, id string, payload []byte) ([]byte, *replication.RPCError)) func(context.Context, []byte) []byte {
	return func(ctx context.Context, data []byte) []byte {
		defer telemetry.MeasureSince(telemetry.RPCServerName(method), time.Now())
		id, _, err := replication.PeekRequest(data)
		if err != nil {
			return replication.PlainErrorReply(&replication.RPCError{Code: replication.CodeBadRequest, Msg: "malformed request"})
		}
		p.mu.Lock()
		r := p.st.Secondary[id]
		var key []byte
		if r != nil && r.State == SecondaryActive {
			key = r.RPCKey
		}
		state, signer := "", p.st.signer()
		if r != nil {
			state = r.State
		}
		p.mu.Unlock()
		if key == nil {
			return p.signedRefusal(signer, data, id, state)
		}
		_, payload, nonce, err := replication.OpenRequest(data, method, key, p.guard, p.cfg.Now())
		if err != nil {
			p.log.Warn().Err(err).Str("secondary_id", id).Str("method", method).Msg("refused an RPC request")
			return replication.PlainErrorReply(&replication.RPCError{Code: replication.ErrorCode(err), Msg: err.Error()})
		}
		out, rerr := h(ctx, id, payload)
		gen := p.gen.Load()
		if gen == 0 {
			return nil // fenced meanwhile: say nothing
		}
		var reply []byte
		if rerr != nil {
			reply, err = replication.SealErrorReplyGen(key, nonce, gen, rerr)
		} else {
			reply, err = replication.SealReplyGen(key, nonce, gen, out)
		}
		if err != nil {
			p.log.Error().Err(err).Str("method", method).Msg("cannot seal an RPC reply")
			return replication.PlainErrorReply(&replication.RPCError{Code: replication.CodeInternal, Msg: "cannot seal the reply"})
		}
		return reply
	}
}

// signedRefusal answers a request of secondary id, in registry state state
// ("" when unknown), that has no RPC key here: revoked, or unknown.
func (p *Primary) signedRefusal(signer ed25519.PrivateKey, request []byte, id, state string) []byte {
	e := &replication.RPCError{Code: replication.CodeUnknownSecondary,
		Msg: fmt.Sprintf("secondary %q is unknown to primary %s", id, p.cfg.ClusterID)}
	switch state {
	case SecondaryRevoked:
		e = &replication.RPCError{Code: replication.CodeRevoked,
			Msg: fmt.Sprintf("secondary %q was revoked on primary %s: re-activate it with a new token", id, p.cfg.ClusterID)}
	case SecondaryPending:
		e.Msg = fmt.Sprintf("secondary %q is not activated on primary %s", id, p.cfg.ClusterID)
	}
	out, err := replication.SignErrorReply(signer, request, e)
	if err != nil {
		p.log.Error().Err(err).Msg("cannot sign an RPC refusal")
		return replication.PlainErrorReply(&replication.RPCError{Code: replication.CodeInternal, Msg: "cannot sign the reply"})
	}
	return out
}

func internalErr(err error) *replication.RPCError {
	return &replication.RPCError{Code: replication.CodeInternal, Msg: err.Error()}
}

func (p *Primary) handleHeartbeat(_ context.Context, id string, payload []byte) ([]byte, *replication.RPCError) {
	var req replication.HeartbeatRequest
	if err := replication.DecodeMessage(payload, &req); err != nil {
		return nil, &replication.RPCError{Code: replication.CodeBadRequest, Msg: err.Error()}
	}
	now := p.cfg.Now()
	li := &liveInfo{apiAddr: req.APIAddr, lastRemoteWAL: req.LastRemoteWAL, lastHeartbeat: now,
		rtt: time.Duration(req.LastRTTMicros) * time.Microsecond, remoteCommit: req.LastRemoteCommit}
	if req.SentAt != 0 {
		li.clockSkew = time.Unix(0, req.SentAt).Add(li.rtt / 2).Sub(now)
	}
	p.mu.Lock()
	p.live[id] = li
	p.mu.Unlock()
	gen := p.gen.Load()
	if last := p.cfg.WAL.LastIndex(); gen != 0 && req.Generation == gen && req.LastRemoteWAL > last {
		p.noteBehind(fmt.Sprintf("secondary %s applied generation %d up to %d, this primary's WAL ends at %d", id, gen, req.LastRemoteWAL, last))
	}
	if req.Generation > gen {
		// The secondary has seen a newer generation: check the claim now.
		select {
		case p.leaseWake <- struct{}{}:
		default:
		}
	}
	reply := &replication.HeartbeatReply{LastWAL: p.cfg.WAL.LastIndex(), APIAddr: p.cfg.APIAddr, Generation: gen}
	p.mu.Lock()
	reply.FilterID = p.filterIDOf(id)
	p.mu.Unlock()
	if p.isDR(id) {
		// A DR secondary keeps a copy of this primary's replication state,
		// to take the set over when promoted: send it when it changed.
		p.mu.Lock()
		st, err := stateRecord.Encode(p.st)
		p.mu.Unlock()
		if err != nil {
			return nil, internalErr(err)
		}
		if sum := sha256.Sum256(st); !bytes.Equal(sum[:], req.StateDigest) {
			reply.PrimaryState = st
		}
	}
	out, err := replication.EncodeMessage(reply)
	if err != nil {
		return nil, internalErr(err)
	}
	return out, nil
}

func (p *Primary) handleKey(_ context.Context, id string, payload []byte) ([]byte, *replication.RPCError) {
	var req replication.KeyRequest
	if err := replication.DecodeMessage(payload, &req); err != nil {
		return nil, &replication.RPCError{Code: replication.CodeBadRequest, Msg: err.Error()}
	}
	p.mu.Lock()
	key := p.st.key(req.Epoch)
	var drKey []byte
	if r := p.st.Secondary[id]; r != nil && r.Kind == KindDR {
		drKey = p.st.drKey(req.Epoch)
	}
	if fid := p.filterIDOf(id); fid != "" && key != nil {
		key = replication.FilterKey(key, fid) // its filter's: never the unfiltered key
	}
	p.mu.Unlock()
	if key == nil {
		return nil, &replication.RPCError{Code: replication.CodeUnknownEpoch, Msg: fmt.Sprintf("primary %s has no replication key of epoch %d", p.cfg.ClusterID, req.Epoch)}
	}
	p.log.Info().Str("secondary_id", id).Uint32("epoch", req.Epoch).Msg("replication key handed out")
	out, err := replication.EncodeMessage(&replication.KeyReply{Epoch: req.Epoch, Key: key, DRKey: drKey})
	if err != nil {
		return nil, internalErr(err)
	}
	return out, nil
}

// handleSync answers one page of the full listing of replicated keys, in key
// order, strictly after req.After, with their values as stored.
func (p *Primary) handleSync(ctx context.Context, id string, payload []byte) ([]byte, *replication.RPCError) {
	var req replication.SyncRequest
	if err := replication.DecodeMessage(payload, &req); err != nil {
		return nil, &replication.RPCError{Code: replication.CodeBadRequest, Msg: err.Error()}
	}
	maxKeys, maxBytes := req.MaxKeys, req.MaxBytes
	if maxKeys <= 0 || maxKeys > syncPageKeys {
		maxKeys = syncPageKeys
	}
	if limit := p.replyBudget(syncPageBytes); maxBytes <= 0 || maxBytes > limit {
		maxBytes = limit
	}
	l, err := p.laneOf(id)
	if err != nil {
		return nil, &replication.RPCError{Code: replication.CodeUnavailable, Msg: err.Error()}
	}
	var reply replication.SyncReply
	if req.After == "" {
		// Taken before the first key is read: every later change is re-applied
		// from the stream, so the listing may be fuzzy.
		reply.WALIndex = p.cfg.WAL.LastIndex()
	}
	size := 0
	full := false
	err = p.walk(ctx, "", req.After, p.isDR(id), func(key string) (bool, error) {
		if l != nil && !l.keep.allows(key) {
			return true, nil // outside its paths filter
		}
		if len(reply.Entries) >= maxKeys {
			full = true
			return false, nil
		}
		e, err := p.cfg.Raw.Get(ctx, key)
		if err != nil {
			return false, err
		}
		if e == nil {
			return true, nil // deleted since listed
		}
		if len(reply.Entries) > 0 && size+len(key)+len(e.Value) > maxBytes {
			full = true // it opens the next page
			return false, nil
		}
		reply.Entries = append(reply.Entries, replication.KV{Key: key, Value: e.Value})
		size += len(key) + len(e.Value)
		return true, nil
	})
	if err != nil {
		p.log.Error().Err(err).Str("secondary_id", id).Msg("sync page: cannot read storage")
		return nil, &replication.RPCError{Code: replication.CodeUnavailable, Msg: "the primary cannot read its storage: " + err.Error()}
	}
	if full && len(reply.Entries) > 0 {
		reply.Next = reply.Entries[len(reply.Entries)-1].Key
	} else {
		reply.Done = true
	}
	if reply.Entries == nil {
		reply.Entries = []replication.KV{}
	}
	out, err := replication.EncodeMessage(&reply)
	if err != nil {
		return nil, internalErr(err)
	}
	return out, nil
}

// handleMerkle answers one merkle sync request (merkle's own encoded Request)
// from this cluster's index with its encoded Response. It first lets the index
// catch up (bounded) with the WAL committed when the request arrived, hence
// with every batch already published: the Applied it reports is where the
// secondary resumes streaming, and it must not be behind a batch the secondary
// already took off the stream.
func (p *Primary) handleMerkle(ctx context.Context, id string, payload []byte) ([]byte, *replication.RPCError) {
	l, err := p.laneOf(id)
	if err != nil {
		return nil, &replication.RPCError{Code: replication.CodeUnavailable, Msg: err.Error()}
	}
	var x *merkle.Index
	switch {
	case l != nil:
		x = l.live.Index() // the view of its paths filter
	case p.cfg.Merkle != nil:
		x = p.cfg.Merkle()
	}
	if x == nil {
		return nil, &replication.RPCError{Code: replication.CodeNoMerkle,
			Msg: fmt.Sprintf("primary %s has no merkle index right now (starting, or reindexing): sync by full listing", p.cfg.ClusterID)}
	}
	wctx, cancel := context.WithTimeout(ctx, merkleServeWait)
	_ = x.WaitApplied(wctx, p.cfg.WAL.LastIndex()) // late: serve what it has, the secondary checks Applied
	cancel()
	out, err := x.ServeRPC(ctx, payload)
	switch {
	case errors.Is(err, merkle.ErrCorrupt), errors.Is(err, merkle.ErrUnknownVersion), errors.Is(err, merkle.ErrBadRef):
		return nil, &replication.RPCError{Code: replication.CodeBadRequest, Msg: err.Error()}
	case err != nil:
		p.log.Error().Err(err).Str("secondary_id", id).Msg("merkle sync request: cannot serve it")
		return nil, &replication.RPCError{Code: replication.CodeUnavailable, Msg: "the primary cannot serve merkle pages: " + err.Error()}
	}
	return out, nil
}

// handleFetch answers the stored values of the keys a merkle diff found, in
// request order, stopping before the reply would hold more than
// replyBudget(fetchPageBytes) of keys and values (one key at least). A key that is not replicated here is reported absent, like a
// key not stored: a secondary reads nothing through fetch that sync would not
// list.
func (p *Primary) handleFetch(ctx context.Context, id string, payload []byte) ([]byte, *replication.RPCError) {
	var req replication.FetchRequest
	if err := replication.DecodeMessage(payload, &req); err != nil {
		return nil, &replication.RPCError{Code: replication.CodeBadRequest, Msg: err.Error()}
	}
	l, err := p.laneOf(id)
	if err != nil {
		return nil, &replication.RPCError{Code: replication.CodeUnavailable, Msg: err.Error()}
	}
	reply := replication.FetchReply{Entries: []replication.KV{}}
	size, limit := 0, p.replyBudget(fetchPageBytes)
	for _, key := range req.Keys {
		var e *storage.Entry
		if p.ships(key, p.isDR(id)) && (l == nil || l.keep.allows(key)) {
			var err error
			if e, err = p.cfg.Raw.Get(ctx, key); err != nil {
				p.log.Error().Err(err).Str("secondary_id", id).Msg("fetch: cannot read storage")
				return nil, &replication.RPCError{Code: replication.CodeUnavailable, Msg: "the primary cannot read its storage: " + err.Error()}
			}
		}
		if e != nil && reply.Answered > 0 && size+len(key)+len(e.Value) > limit {
			break // the secondary asks again for the keys not answered
		}
		if e == nil {
			reply.Absent = append(reply.Absent, key)
		} else {
			reply.Entries = append(reply.Entries, replication.KV{Key: key, Value: e.Value})
			size += len(key) + len(e.Value)
		}
		reply.Answered++
	}
	// Read after the values: no value above reflects a WAL entry past it (but
	// for an entry committed and not yet published as the WAL's last index).
	reply.WALIndex = p.cfg.WAL.LastIndex()
	out, err := replication.EncodeMessage(&reply)
	if err != nil {
		return nil, internalErr(err)
	}
	return out, nil
}

// replyBudget bounds the keys and values of one sync or fetch reply: at most
// limit, and below the NATS server's max_payload once JSON has written the
// values in base64 (4 bytes for 3) and the reply is sealed. A reply above it
// is never sent, and the secondary would wait for it again and again (found
// by the fault campaign, on a server at NATS' own 1 MiB default).
func (p *Primary) replyBudget(limit int) int {
	if room := p.payloadRoom(); room > 0 {
		return min(limit, room*3/4)
	}
	return limit
}

// walk visits the keys a secondary receives (replicated; local too for a DR
// secondary) under prefix strictly after `after`, in byte order (a
// depth-first walk of sorted one-level listings is in byte order of the full
// keys), until fn returns false. Folders whose keys all sort at or before
// `after` are not listed.
func (p *Primary) walk(ctx context.Context, prefix, after string, dr bool, fn func(key string) (bool, error)) error {
	return storage.Walk(ctx, p.cfg.Raw, prefix, after, func(key string) (bool, error) {
		if !p.ships(key, dr) {
			return true, nil
		}
		return fn(key)
	})
}

// ships reports whether a secondary receives key: replicated keys, and local
// ones for a DR secondary.
func (p *Primary) ships(key string, dr bool) bool {
	switch p.cfg.Classify(key) {
	case wal.Replicated:
		return true
	case wal.Local:
		return dr
	}
	return false
}

// isDR reports whether secondary id is a DR secondary.
func (p *Primary) isDR(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.st.Secondary[id]
	return r != nil && r.Kind == KindDR
}
