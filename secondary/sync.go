package secondary

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/internal/backoff"
	"github.com/cofferhq/coffer/merkle"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
)

// syncUntilDone runs the sync until it succeeds, ctx ends or the primary
// says revoked; it returns the machine's answer. floor is StartSync.Floor.
func (s *Secondary) syncUntilDone(ctx context.Context, floor uint64) []Action {
	bo := backoff.Backoff{Min: retryMin, Max: retryMax}
	for {
		idx, from, err := s.syncOnce(ctx, floor)
		if err == nil {
			if err := s.storeSecret(ctx); err != nil {
				return nil
			}
			s.log.Info().Uint64("wal_index", idx).Uint64("guard_from", from).Msg("sync done; streaming")
			return s.step(SyncDone{WALIndex: idx, GuardFrom: from})
		}
		if replication.IsRevoked(err) {
			return s.step(Revoked{})
		}
		if ctx.Err() != nil {
			return nil
		}
		s.setErr(err)
		wait := bo.Next()
		s.log.Warn().Err(err).Dur("retry_in", wait).Msg("sync failed; retrying")
		if !backoff.Sleep(ctx, wait) {
			return nil
		}
	}
}

// storeSecret writes the secret state once, retrying until ctx ends.
func (s *Secondary) storeSecret(ctx context.Context) error {
	bo := backoff.Backoff{Min: retryMin, Max: retryMax}
	for {
		s.mu.Lock()
		stored, snap := s.stored, s.sec.clone()
		s.mu.Unlock()
		if stored {
			return nil
		}
		err := saveSecret(ctx, s.cfg.State, snap)
		if err == nil {
			s.mu.Lock()
			s.stored = true
			s.mu.Unlock()
			return nil
		}
		s.setErr(err)
		s.log.Error().Err(err).Msg("cannot store the replication state after the first sync; retrying")
		if !bo.Wait(ctx) {
			return ctx.Err()
		}
	}
}

// errUseListing: this sync attempt cannot use the merkle index; it copies
// the full listing instead.
var errUseListing = errors.New("the merkle index cannot serve this sync")

// syncOnce runs one sync attempt: a merkle sync when there is an index, else
// (or when the index cannot serve it) the full listing. It returns where
// streaming resumes and SyncDone.GuardFrom.
func (s *Secondary) syncOnce(ctx context.Context, floor uint64) (uint64, uint64, error) {
	if x := s.index(); x != nil {
		idx, from, err := s.merkleSync(ctx, x, floor)
		if !errors.Is(err, errUseListing) {
			return idx, from, err
		}
		s.log.Warn().Err(err).Msg("syncing by full listing instead of merkle diff")
	}
	s.step(ListingStarted{})
	idx, err := s.fullSync(ctx)
	return idx, idx, err
}

// beginSync resets the progress and notes where a new durable starts: every
// message in the stream now was published before the sync's WAL index is
// taken (the primary's WAL index, or the one its index applied after
// catching up with that WAL), so a new durable can start after them.
func (s *Secondary) beginSync(ctx context.Context) error {
	s.mu.Lock()
	stream := s.sec.Stream
	s.syncDone, s.syncTotal = 0, 0
	s.mu.Unlock()
	_, last, _, err := s.bus.StreamState(ctx, stream)
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	s.mu.Lock()
	s.startSeq = last + 1
	s.mu.Unlock()
	return nil
}

// merkleSync makes this cluster's replicated keys those of the primary by
// merkle diff: it compares the local index with the primary's (state
// merkle-diff), then fetches the values of the added and changed keys in
// pages and deletes the deleted ones, each page one WAL write, so the
// Follower brings the local index along (state merkle-sync). It stores and
// returns last_remote_wal = the WAL index the primary's index had applied at
// the diff's first round (at least floor, else the attempt fails and is
// retried), and the primary's WAL index after the last value was read. Values
// written meanwhile on the primary may be missed or newer: streaming from the
// returned index re-applies them.
func (s *Secondary) merkleSync(ctx context.Context, x *merkle.Index, floor uint64) (uint64, uint64, error) {
	s.step(DiffStarted{})
	if err := s.beginSync(ctx); err != nil {
		return 0, 0, err
	}
	// The local index must reflect every local write before it is compared.
	local := s.cfg.WAL.LastIndex()
	wctx, cancel := context.WithTimeout(ctx, indexWait)
	err := x.WaitApplied(wctx, local)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		return 0, 0, fmt.Errorf("%w: the local index has applied the local WAL up to %d of %d (is its follower running?)", errUseListing, x.Applied(), local)
	}
	remote := merkle.SourceFunc(func(ctx context.Context, req []byte) ([]byte, error) {
		return s.callRaw(ctx, replication.MethodMerkle, req)
	})
	res, err := merkle.Diff(ctx, x, remote, merkle.DiffOptions{})
	var re *replication.RPCError
	switch {
	case errors.Is(err, merkle.ErrReindexRequired):
		return 0, 0, fmt.Errorf("%w: the local index: %w", errUseListing, err)
	case errors.As(err, &re) && re.Code == replication.CodeNoMerkle:
		return 0, 0, fmt.Errorf("%w: %w", errUseListing, err)
	case errors.Is(err, bus.ErrUnreachable) && s.Status().Connected:
		// The primary answers heartbeats but nobody serves the merkle subject:
		// a primary from before merkle sync.
		return 0, 0, fmt.Errorf("%w: the primary does not serve merkle sync: %w", errUseListing, err)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("merkle diff: %w", err)
	}
	if res.RemoteApplied < floor {
		// Resuming the stream below floor would lose what was already taken
		// off it; the primary's index lags its WAL (the primary waited for it).
		return 0, 0, fmt.Errorf("%w: the primary's merkle index has applied its WAL up to %d only, and this secondary read the stream up to %d", errUseListing, res.RemoteApplied, floor)
	}
	total := res.Keys()
	s.mu.Lock()
	s.syncTotal = total
	s.mu.Unlock()
	s.log.Info().Int("added", len(res.Added)).Int("changed", len(res.Changed)).Int("deleted", len(res.Deleted)).
		Int("rounds", res.Rounds).Int64("bytes_received", res.BytesReceived).Uint64("remote_applied", res.RemoteApplied).
		Msg("merkle diff done; fetching the differing keys")
	s.step(DiffDone{Keys: total})

	guardFrom := res.RemoteApplied
	fetch := make([]string, 0, len(res.Added)+len(res.Changed))
	skipped := 0
	for _, k := range slices.Concat(res.Added, res.Changed) {
		if s.accept(k) {
			fetch = append(fetch, k)
		} else {
			skipped++
		}
	}
	for len(fetch) > 0 {
		chunk := fetch[:min(len(fetch), replication.MaxFetchKeys)]
		var reply replication.FetchReply
		if err := s.call(ctx, replication.MethodFetch, &replication.FetchRequest{Keys: chunk}, &reply); err != nil {
			return 0, 0, fmt.Errorf("merkle sync: fetch: %w", err)
		}
		if reply.Answered < 1 || reply.Answered > len(chunk) {
			return 0, 0, fmt.Errorf("merkle sync: the primary answered %d keys of %d", reply.Answered, len(chunk))
		}
		asked := make(map[string]struct{}, reply.Answered)
		for _, k := range chunk[:reply.Answered] {
			asked[k] = struct{}{}
		}
		ops := make([]*storage.TxnOp, 0, reply.Answered)
		keys := make([]string, 0, reply.Answered)
		take := func(k string) error {
			if _, ok := asked[k]; !ok {
				return fmt.Errorf("merkle sync: the primary answered key %q, not asked or answered twice", k)
			}
			delete(asked, k)
			keys = append(keys, k)
			return nil
		}
		for _, kv := range reply.Entries {
			if err := take(kv.Key); err != nil {
				return 0, 0, err
			}
			ops = append(ops, &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: kv.Key, Value: kv.Value}})
		}
		for _, k := range reply.Absent { // gone since the diff: the stream brings its deletion too
			if err := take(k); err != nil {
				return 0, 0, err
			}
			ops = append(ops, &storage.TxnOp{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: k}})
		}
		if _, err := s.cfg.WAL.Write(ctx, ops); err != nil {
			return 0, 0, fmt.Errorf("merkle sync: write fetched values: %w", err)
		}
		s.cfg.OnApplied(keys)
		guardFrom = max(guardFrom, reply.WALIndex)
		fetch = fetch[reply.Answered:]
		s.mu.Lock()
		s.syncDone += reply.Answered
		s.mu.Unlock()
	}
	doomed := make([]string, 0, len(res.Deleted))
	for _, k := range res.Deleted {
		if s.cfg.Classify(k) == wal.Replicated && s.accept(k) {
			doomed = append(doomed, k)
		} else {
			skipped++
		}
	}
	if err := s.deleteKeys(ctx, doomed, res.RemoteApplied); err != nil {
		return 0, 0, fmt.Errorf("merkle sync: %w", err)
	}
	if skipped > 0 {
		s.log.Warn().Int("keys", skipped).Msg("merkle sync: skipped keys this secondary does not replicate")
	}
	return res.RemoteApplied, guardFrom, nil
}

// deleteKeys deletes doomed in WAL writes of at most deleteChunk keys, the
// last one (even when doomed is empty) storing last_remote_wal = position.
func (s *Secondary) deleteKeys(ctx context.Context, doomed []string, position uint64) error {
	for {
		n := min(len(doomed), deleteChunk)
		ops := make([]*storage.TxnOp, 0, n+1)
		for _, k := range doomed[:n] {
			ops = append(ops, &storage.TxnOp{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: k}})
		}
		last := n == len(doomed)
		if last {
			ops = append(ops, positionOp(s.cfg.StateKey, position))
		}
		if _, err := s.cfg.WAL.Write(ctx, ops); err != nil {
			return fmt.Errorf("delete keys the primary no longer has: %w", err)
		}
		if n > 0 {
			s.cfg.OnApplied(doomed[:n])
		}
		s.mu.Lock()
		s.syncDone += n
		s.mu.Unlock()
		doomed = doomed[n:]
		if last {
			return nil
		}
	}
}

// fullSync copies every replicated key of the primary, deletes the local
// replicated keys it does not list, and stores last_remote_wal = the
// primary's WAL index at the start. It returns that index.
func (s *Secondary) fullSync(ctx context.Context) (uint64, error) {
	if err := s.beginSync(ctx); err != nil {
		return 0, err
	}
	listed := make(map[string]struct{})
	var walIndex uint64
	after := ""
	for page := 0; ; page++ {
		var reply replication.SyncReply
		if err := s.call(ctx, replication.MethodSync, &replication.SyncRequest{After: after}, &reply); err != nil {
			return 0, fmt.Errorf("sync page after %q: %w", after, err)
		}
		if page == 0 {
			walIndex = reply.WALIndex
		}
		ops := make([]*storage.TxnOp, 0, len(reply.Entries))
		keys := make([]string, 0, len(reply.Entries))
		for _, kv := range reply.Entries {
			listed[kv.Key] = struct{}{}
			if !s.accept(kv.Key) {
				continue
			}
			ops = append(ops, &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: kv.Key, Value: kv.Value}})
			keys = append(keys, kv.Key)
		}
		if len(ops) > 0 {
			if _, err := s.cfg.WAL.Write(ctx, ops); err != nil {
				return 0, fmt.Errorf("sync: write page: %w", err)
			}
			s.cfg.OnApplied(keys)
		}
		s.mu.Lock()
		s.syncDone += len(ops)
		s.mu.Unlock()
		if reply.Done {
			break
		}
		if reply.Next == "" || reply.Next <= after {
			return 0, fmt.Errorf("sync: the primary's page after %q does not advance", after)
		}
		after = reply.Next
	}
	var doomed []string
	if err := storage.Walk(ctx, s.cfg.Raw, "", "", func(k string) (bool, error) {
		if _, ok := listed[k]; !ok && s.cfg.Classify(k) == wal.Replicated && s.accept(k) {
			doomed = append(doomed, k)
		}
		return true, nil
	}); err != nil {
		return 0, fmt.Errorf("sync: list local keys: %w", err)
	}
	if err := s.deleteKeys(ctx, doomed, walIndex); err != nil {
		return 0, fmt.Errorf("sync: %w", err)
	}
	return walIndex, nil
}
