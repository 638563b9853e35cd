package secondary

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/internal/backoff"
	"github.com/cofferhq/coffer/merkle"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/telemetry"
	"github.com/cofferhq/coffer/wal"
)

// syncRetry is the pause between sync attempts: RetrySync.Attempt picks it.
var syncRetry = backoff.Backoff{Min: retryMin, Max: retryMax}

// attempt reports that a sync attempt can run, with the fact the machine
// chooses the method on: is there a local merkle index now. The index is kept
// for the attempt, so a reindex swapping it meanwhile does not change it
// under the diff.
func (s *Secondary) attempt(t *turn) []Action {
	t.index, t.diff = s.index(), nil
	return s.step(SyncAttempt{Index: t.index != nil})
}

// retrySync waits the backoff of the attempt that failed, then reports the
// next attempt; nothing when ctx ends first.
func (s *Secondary) retrySync(ctx context.Context, a RetrySync, t *turn) []Action {
	if a.Err != nil {
		s.setErr(a.Err)
	}
	wait := syncRetry.Delay(a.Attempt)
	s.log.Warn().Err(a.Err).Int("attempt", a.Attempt).Dur("retry_in", wait).Msg("sync failed; retrying")
	if !backoff.Sleep(ctx, wait) {
		return nil
	}
	return s.attempt(t)
}

// failed reports a failed sync step, its error classified: the primary
// revoked this secondary, the driver stops, or anything else (transient).
func (s *Secondary) failed(ctx context.Context, err error) []Action {
	if replication.IsRevoked(err) {
		s.setErr(err) // the reason the status shows from now on
	}
	return s.step(SyncFailed{Cause: causeOf(ctx, err), Err: err})
}

func causeOf(ctx context.Context, err error) Cause {
	switch {
	case replication.IsRevoked(err):
		return CauseRevoked
	case ctx.Err() != nil:
		return CauseStopping
	}
	return CauseTransient
}

// diffCause classifies an error of merkle.Diff: besides causeOf's, the facts
// the machine weighs to fall back to the full listing.
func diffCause(ctx context.Context, err error) Cause {
	if c := causeOf(ctx, err); c != CauseTransient {
		return c
	}
	var re *replication.RPCError
	switch {
	case errors.Is(err, merkle.ErrReindexRequired):
		return CauseReindex
	case errors.As(err, &re) && re.Authenticated && re.Code == replication.CodeNoMerkle:
		return CauseNoMerkle
	case errors.Is(err, bus.ErrUnreachable):
		return CauseUnreachable
	}
	return CauseTransient
}

// finishSync stores the secret state (once, after the first sync) and
// reports SyncDone: streaming resumes after walIndex.
func (s *Secondary) finishSync(ctx context.Context, walIndex, guardFrom uint64) []Action {
	if err := s.storeSecret(ctx); err != nil {
		return nil
	}
	s.log.Info().Uint64("wal_index", walIndex).Uint64("guard_from", guardFrom).Msg("sync done; streaming")
	return s.step(SyncDone{WALIndex: walIndex, GuardFrom: guardFrom})
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

// beginSync resets the progress and notes where a new durable starts: every
// message in the stream now was published before the sync's WAL index is
// taken (the primary's WAL index, or the one its index applied after
// catching up with that WAL), so a new durable can start after them.
func (s *Secondary) beginSync(ctx context.Context) error {
	telemetry.IncrCounter(telemetry.NameResyncs, 1)
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

// runDiff is the diff step of a merkle sync (state merkle-diff): it waits
// for the local index to apply every local write, then compares it with the
// primary's index top down over the "merkle" RPC, and reports the outcome.
func (s *Secondary) runDiff(ctx context.Context, t *turn) []Action {
	defer telemetry.MeasureSince(telemetry.NameMerkleDiff, time.Now())
	s.exec(ctx, s.step(DiffStarted{}), t)
	if err := s.beginSync(ctx); err != nil {
		return s.failed(ctx, err)
	}
	x := t.index
	local := s.cfg.WAL.LastIndex()
	wctx, cancel := context.WithTimeout(ctx, indexWait)
	err := x.WaitApplied(wctx, local)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return s.step(SyncFailed{Cause: CauseStopping, Err: ctx.Err()})
		}
		return s.step(SyncFailed{Cause: CauseIndexBehind,
			Err: fmt.Errorf("the local index has applied the local WAL up to %d of %d (is its follower running?)", x.Applied(), local)})
	}
	remote := merkle.SourceFunc(func(ctx context.Context, req []byte) ([]byte, error) {
		return s.callRaw(ctx, replication.MethodMerkle, req)
	})
	res, err := merkle.Diff(ctx, x, remote, merkle.DiffOptions{})
	if err != nil {
		return s.step(SyncFailed{Cause: diffCause(ctx, err), Err: fmt.Errorf("merkle diff: %w", err)})
	}
	t.diff = res
	s.loopDiffered(res)
	return s.step(DiffCompared{RemoteApplied: res.RemoteApplied, Keys: res.Keys()})
}

// fetchDiff is the fetch step of a merkle sync (state merkle-sync): it
// fetches the values of the added and changed keys in pages and deletes the
// deleted ones, each page one WAL write, so the Follower brings the local
// index along. It stores last_remote_wal = the WAL index the primary's index
// had applied at the diff's first round, and reports SyncDone with GuardFrom
// the primary's WAL index after the last value was read. Values written
// meanwhile on the primary may be missed or newer: streaming from the
// returned index re-applies them.
func (s *Secondary) fetchDiff(ctx context.Context, t *turn, total int) []Action {
	defer telemetry.MeasureSince(telemetry.NameMerkleSync, time.Now())
	res := t.diff
	s.mu.Lock()
	s.syncTotal = total
	s.mu.Unlock()
	s.log.Info().Int("added", len(res.Added)).Int("changed", len(res.Changed)).Int("deleted", len(res.Deleted)).
		Int("rounds", res.Rounds).Int64("bytes_received", res.BytesReceived).Uint64("remote_applied", res.RemoteApplied).
		Msg("merkle diff done; fetching the differing keys")
	s.exec(ctx, s.step(DiffDone{Keys: total}), t)

	fetch := make([]string, 0, len(res.Added)+len(res.Changed))
	skipped := 0
	for _, k := range slices.Concat(res.Added, res.Changed) {
		if s.accept(k) {
			fetch = append(fetch, k)
		} else {
			skipped++
		}
	}
	guardFrom, err := s.fetchValues(ctx, fetch)
	if err != nil {
		return s.failed(ctx, fmt.Errorf("merkle sync: %w", err))
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
		return s.failed(ctx, fmt.Errorf("merkle sync: %w", err))
	}
	if skipped > 0 {
		s.log.Warn().Int("keys", skipped).Msg("merkle sync: skipped keys this secondary does not replicate")
	}
	return s.finishSync(ctx, res.RemoteApplied, max(res.RemoteApplied, guardFrom))
}

// fetchValues fetches and writes the values of keys, a page per "fetch"
// RPC and WAL write, and returns the highest primary WAL index a reply
// carried (0 for no keys).
func (s *Secondary) fetchValues(ctx context.Context, keys []string) (uint64, error) {
	var walIndex uint64
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), replication.MaxFetchKeys)]
		var reply replication.FetchReply
		if err := s.call(ctx, replication.MethodFetch, &replication.FetchRequest{Keys: chunk}, &reply); err != nil {
			return 0, fmt.Errorf("fetch: %w", err)
		}
		if err := s.writeFetched(ctx, chunk, &reply); err != nil {
			return 0, err
		}
		walIndex = max(walIndex, reply.WALIndex)
		keys = keys[reply.Answered:]
		s.mu.Lock()
		s.syncDone += reply.Answered
		s.mu.Unlock()
	}
	return walIndex, nil
}

// writeFetched checks that reply answers the first reply.Answered keys of
// asked, each once, and writes them in one WAL write: present values put,
// absent keys deleted (gone since the diff: the stream brings their deletion
// too).
func (s *Secondary) writeFetched(ctx context.Context, asked []string, reply *replication.FetchReply) error {
	if reply.Answered < 1 || reply.Answered > len(asked) {
		return fmt.Errorf("the primary answered %d keys of %d", reply.Answered, len(asked))
	}
	pending := make(map[string]struct{}, reply.Answered)
	for _, k := range asked[:reply.Answered] {
		pending[k] = struct{}{}
	}
	ops := make([]*storage.TxnOp, 0, reply.Answered)
	keys := make([]string, 0, reply.Answered)
	take := func(k string, op storage.Operation, value []byte) error {
		if _, ok := pending[k]; !ok {
			return fmt.Errorf("the primary answered key %q, not asked or answered twice", k)
		}
		delete(pending, k)
		keys = append(keys, k)
		ops = append(ops, &storage.TxnOp{Operation: op, Entry: &storage.Entry{Key: k, Value: value}})
		return nil
	}
	for _, kv := range reply.Entries {
		if err := take(kv.Key, storage.PutOperation, kv.Value); err != nil {
			return err
		}
	}
	for _, k := range reply.Absent {
		if err := take(k, storage.DeleteOperation, nil); err != nil {
			return err
		}
	}
	if err := s.writeCut(ctx, ops); err != nil {
		return fmt.Errorf("write fetched values: %w", err)
	}
	s.cfg.OnApplied(keys)
	return nil
}

// runListing is a sync by full listing (state sync): the copy of every
// replicated key of the primary, when there is no usable merkle index.
func (s *Secondary) runListing(ctx context.Context, a RunListing, t *turn) []Action {
	defer telemetry.MeasureSince(telemetry.NameMerkleSync, time.Now())
	if a.Fallback != "" {
		s.log.Warn().Err(a.Err).Str("reason", a.Fallback).Msg("syncing by full listing instead of merkle diff")
	}
	s.exec(ctx, s.step(ListingStarted{}), t)
	idx, err := s.fullSync(ctx)
	if err != nil {
		return s.failed(ctx, err)
	}
	return s.finishSync(ctx, idx, idx)
}

// deleteKeys deletes doomed in WAL writes of at most deleteChunk keys, the
// last one (even when doomed is empty) storing last_remote_wal = position.
func (s *Secondary) deleteKeys(ctx context.Context, doomed []string, position uint64) error {
	chunk := deleteChunk
	if limit := storage.MaxOps(s.cfg.WAL); limit > 1 {
		chunk = min(chunk, limit-1) // and the position
	}
	for {
		n := min(len(doomed), chunk)
		ops := make([]*storage.TxnOp, 0, n+1)
		for _, k := range doomed[:n] {
			ops = append(ops, &storage.TxnOp{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: k}})
		}
		last := n == len(doomed)
		if last {
			ops = append(ops, positionOp(s.cfg.StateKey, position, s.generation()))
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
			if err := s.writeCut(ctx, ops); err != nil {
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
		if _, ok := listed[k]; !ok && s.cfg.Classify(k) != wal.Ignored && s.accept(k) {
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
