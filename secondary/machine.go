package secondary

import "fmt"

// State is where a secondary stands. The strings are the "state" field of
// sys/replication/status: do not change them.
type State string

const (
	// StateIdle: not running (before Start, after Stop).
	StateIdle State = "idle"
	// StateConnecting: running, streaming requested, nothing heard from the
	// primary yet (no batch applied, no heartbeat answered).
	StateConnecting State = "connecting"
	// StateSync: a sync by full listing is running (fresh activation, a gap or
	// a guard mismatch, and no merkle index to diff).
	StateSync State = "sync"
	// StateMerkleDiff: a merkle sync is comparing the local index with the
	// primary's, top down.
	StateMerkleDiff State = "merkle-diff"
	// StateMerkleSync: a merkle sync is fetching and writing the keys the
	// diff found (Status.SyncKeysDone of SyncTotalKeys).
	StateMerkleSync State = "merkle-sync"
	// StateStreaming: applying WAL batches from the stream.
	StateStreaming State = "stream-wals"
	// StateRevoked: the primary refused this secondary, in a reply it signed
	// (or sealed) for this secondary's request: the driver reports Revoked
	// only for such a reply, never for a forgeable one. Terminal: re-activate
	// with a new token.
	StateRevoked State = "revoked"
)

// Event is an input to Machine.Step: something the driver observed.
type Event interface{ event() }

// Started: the driver runs. NeedSync is true after a fresh activation; Merkle
// when the driver syncs by merkle diff (it has a merkle index), so a sync
// starts in StateMerkleDiff rather than StateSync.
type Started struct {
	LastRemoteWAL uint64
	NeedSync      bool
	Merkle        bool
	// Generation is the newest generation of the set seen (stored with the
	// position, or the bundle's on activation; 0 when unknown).
	Generation uint64
}

// BatchArrived: an authentic batch arrived on the WAL stream (the driver
// verified its signature and GCM first, so a forged message never moves the
// machine: it is reported as BatchRejected).
type BatchArrived struct {
	First, Last uint64
	// Gen is the batch's generation (0 from primaries before generations).
	Gen uint64
}

// BatchApplied: the batch of the last ApplyBatch committed. Guard: it
// carried a guard (the primary's merkle root at Last).
type BatchApplied struct {
	Last  uint64
	Guard bool
}

// GuardMismatch: after applying a guarded batch ending at Last, the local
// merkle root differs from the batch's guard (the primary's root at Last).
type GuardMismatch struct{ Last uint64 }

// BatchRejected: a message failed verification (not a batch, bad signature,
// GCM, format, or an epoch the primary does not have): dropped.
type BatchRejected struct {
	First, Last uint64
	Err         error
}

// ApplyFailed: the batch verified but could not be committed (storage error,
// shutting down). It must be delivered again.
type ApplyFailed struct{ Err error }

// DiffStarted: a merkle sync attempt begins its diff.
type DiffStarted struct{}

// DiffDone: the diff found Keys keys to fetch or delete; they are being written.
type DiffDone struct{ Keys int }

// ListingStarted: a sync attempt copies the full listing instead (no usable
// merkle index).
type ListingStarted struct{}

// SyncAttempt: the driver is ready to run a sync attempt (the first one
// after StartSync, or the next one after RetrySync). Index: a local merkle
// index is available right now (Config.Merkle returned one).
type SyncAttempt struct{ Index bool }

// DiffCompared: the merkle diff of a RunDiff finished. RemoteApplied is the
// WAL index the primary's index had applied at the diff's first round (where
// streaming would resume); Keys the keys to fetch or delete.
type DiffCompared struct {
	RemoteApplied uint64
	Keys          int
}

// SyncFailed: a step of a sync attempt failed (RunDiff, FetchDiff or
// RunListing, including their writes); Cause classifies Err.
type SyncFailed struct {
	Cause Cause
	Err   error
}

// SyncDone: the sync finished. WALIndex is where streaming resumes: the
// primary's WAL index when the sync began (full listing) or the one its
// merkle index had applied at the diff's first round. GuardFrom is the
// primary's WAL index once the last value was read: the sync may have written
// values newer than WALIndex, which batches up to GuardFrom overwrite again,
// so the guards of batches ending before it are not compared.
type SyncDone struct{ WALIndex, GuardFrom uint64 }

// HeartbeatOK: the primary answered a heartbeat.
type HeartbeatOK struct {
	PrimaryLastWAL uint64
	// Gen is the generation the primary holds (0 from older primaries).
	Gen uint64
}

// HeartbeatFailed: a heartbeat got no answer (bus down, primary down).
type HeartbeatFailed struct{ Err error }

// Revoked: the primary answered an RPC with "revoked" (or "unknown secondary")
// in a reply authenticated for that request (replication.IsRevoked).
type Revoked struct{}

// FilterChanged: the primary applies another paths filter to this
// secondary (or none now); the driver has noted its subject, which the next
// StartStreaming uses.
type FilterChanged struct{}

// Stopped: the driver stops.
type Stopped struct{}

func (Started) event()         {}
func (BatchArrived) event()    {}
func (BatchApplied) event()    {}
func (GuardMismatch) event()   {}
func (DiffStarted) event()     {}
func (DiffDone) event()        {}
func (ListingStarted) event()  {}
func (SyncAttempt) event()     {}
func (DiffCompared) event()    {}
func (SyncFailed) event()      {}
func (BatchRejected) event()   {}
func (ApplyFailed) event()     {}
func (SyncDone) event()        {}
func (HeartbeatOK) event()     {}
func (HeartbeatFailed) event() {}
func (Revoked) event()         {}
func (Stopped) event()         {}
func (FilterChanged) event()   {}

// Cause classifies the error of a failed sync step (SyncFailed) into the facts
// the machine decides on. The driver classifies; the machine chooses between
// retrying, falling back to the full listing, and stopping.
type Cause uint8

const (
	// CauseTransient: anything else (bus, storage, an error answer of the
	// primary): retry the sync with backoff.
	CauseTransient Cause = iota
	// CauseStopping: the driver's context ended (Stop).
	CauseStopping
	// CauseRevoked: the primary answered "revoked" or "unknown secondary".
	CauseRevoked
	// CauseIndexBehind: the local merkle index did not apply the local WAL
	// within indexWait (its follower stalled), or went away.
	CauseIndexBehind
	// CauseReindex: the local merkle index must be rebuilt
	// (merkle.ErrReindexRequired).
	CauseReindex
	// CauseNoMerkle: the primary has no merkle index (CodeNoMerkle).
	CauseNoMerkle
	// CauseUnreachable: nobody answered the merkle RPC (bus.ErrUnreachable).
	CauseUnreachable
)

var causeNames = [...]string{"transient", "stopping", "revoked", "index-behind", "reindex", "no-merkle", "unreachable"}

// String names the cause for logs and test scripts.
func (c Cause) String() string {
	if int(c) < len(causeNames) {
		return causeNames[c]
	}
	return fmt.Sprintf("cause(%d)", uint8(c))
}

// Action is an output of Machine.Step: an effect the driver carries out, in
// order.
type Action interface{ action() }

// StartSync: a sync begins; report SyncAttempt when ready to run its first
// attempt. Floor is the least WAL index the sync may resume streaming from:
// the stream messages up to it were already taken off the stream (a gap's
// batch, an applied batch), so resuming below it would lose entries. The
// machine keeps it and checks DiffCompared against it.
type StartSync struct{ Floor uint64 }

// RunDiff: report DiffStarted, then compare the local merkle index with the
// primary's; report DiffCompared, or SyncFailed.
type RunDiff struct{}

// FetchDiff: the diff is usable; report DiffDone, fetch the Keys it found and
// delete those the primary no longer has, then report SyncDone (WALIndex the
// diff's RemoteApplied) or SyncFailed.
type FetchDiff struct{ Keys int }

// RunListing: report ListingStarted, copy the primary's full listing, then
// report SyncDone or SyncFailed. Fallback says why a merkle sync gave way to
// it ("" when there was no index to diff with); Err is the error behind it,
// if any.
type RunListing struct {
	Fallback string
	Err      error
}

// RetrySync: the attempt failed with Err; wait the backoff of retry number
// Attempt (1 for the first), then report SyncAttempt.
type RetrySync struct {
	Attempt int
	Err     error
}

// CheckGuard: compare the local merkle root with the guard of the batch just
// applied (ending at Last) once the local index has applied that write; report
// GuardMismatch when they differ. Past guardWait, or without an index now,
// report nothing.
type CheckGuard struct{ Last uint64 }

// StartStreaming: start the durable consumer (if not running).
type StartStreaming struct{}

// StopStreaming: stop the durable consumer and the heartbeats for good.
type StopStreaming struct{}

// DropConsumer: stop the durable consumer and delete it; StartStreaming
// creates it anew (on the subject of the secondary's paths filter).
type DropConsumer struct{}

// RunAside: carry Acts out on a goroutine of the driver's own, not the
// consumer's (they stop the consumer, which waits for its handler), under
// the secondary's context rather than the handler's.
type RunAside struct{ Acts []Action }

// ApplyBatch: apply the verified batch that just arrived, only its entries
// after After (the part already applied is skipped), together with the new
// last_remote_wal; report BatchApplied or ApplyFailed.
type ApplyBatch struct{ After uint64 }

// Ack: acknowledge the current message; Reason says why when nothing was
// applied ("" after an apply), for the log.
type Ack struct{ Reason string }

// Nak: hand the current message back for redelivery.
type Nak struct{ Reason string }

func (StartSync) action()      {}
func (StartStreaming) action() {}
func (StopStreaming) action()  {}
func (DropConsumer) action()   {}
func (RunAside) action()       {}
func (ApplyBatch) action()     {}
func (Ack) action()            {}
func (Nak) action()            {}
func (RunDiff) action()        {}
func (FetchDiff) action()      {}
func (RunListing) action()     {}
func (RetrySync) action()      {}
func (CheckGuard) action()     {}

// Ack reasons.
const (
	ReasonReplay   = "replay"   // the batch is at or below last_remote_wal
	ReasonGap      = "gap"      // the batch left a gap; the sync covers it
	ReasonRejected = "rejected" // the batch failed verification: dropped
	ReasonStale    = "stale"    // the batch is of an older generation than the newest seen: dropped
	ReasonNewGen   = "new-generation"
)

// Machine holds the secondary's replication decisions and does no I/O (etcd
// raft's RawNode style): the driver feeds it Events and carries out the
// Actions it returns. It is not safe for concurrent use; the driver serialises
// Step.
//
// Rules:
//   - A batch whose Last is at or below last_remote_wal is a replay: acked,
//     nothing applied.
//   - A batch whose First is past last_remote_wal+1 is a gap: the stream lost
//     entries (limits) or they were never shipped. The machine syncs
//     ("merkle-diff" then "merkle-sync", or "sync" without merkle); the message
//     is acked after the sync, which covers it (StartSync.Floor is its Last:
//     the sync resumes at or past it).
//   - Otherwise the batch is applied, from last_remote_wal+1 on. An applied
//     batch with a guard has it checked (CheckGuard) when there is a merkle
//     index and the batch does not end before the last sync's GuardFrom.
//   - A guard mismatch after an applied batch starts a sync, unless the batch
//     ends before the last sync's GuardFrom (its guard predates values the
//     sync wrote) or a sync is already running.
//   - A sync attempt diffs when a local index is available (SyncAttempt),
//     else lists. The diff gives way to the listing when the local index
//     cannot serve (behind its WAL, needing a reindex), when the primary has
//     no index, when nobody serves merkle RPCs while the primary answers
//     heartbeats (a primary from before merkle sync; while heartbeats fail
//     too, the primary is just unreachable: retry), and when the primary's
//     index has applied less than the floor (resuming there would lose
//     stream entries already consumed). Any other failure retries the whole
//     sync with backoff (RetrySync counts the attempts); "revoked" is Revoked.
//   - SyncDone sets last_remote_wal to the sync's WALIndex (later batches
//     re-apply what changed since: harmless, entries carry whole values and
//     tombstones), and streams.
//   - Generations (docs/replication.md): a batch of an older generation than
//     the newest seen is dropped (acked, nothing applied). A batch or a
//     heartbeat reply of a newer one means another primary took the set
//     over (a promotion, or a primary whose storage went back in time): its
//     WAL indexes do not continue ours, so last_remote_wal is forgotten and
//     a sync brings this cluster to the new primary's state; a batch that
//     announced it is acked after the sync, which covers it.
//   - Revoked is terminal.
type Machine struct {
	state      State
	gen        uint64
	lastRemote uint64
	connected  bool
	primaryWAL uint64
	streaming  bool
	// refilter: the paths filter changed during a sync; another one follows.
	refilter  bool
	merkle    bool
	guardFrom uint64
	floor     uint64 // of the running sync
	attempts  int    // failed attempts of the running sync
	// stalled counts the heartbeats in a row that found the primary ahead
	// while streaming made no progress (from stallMark).
	stalled   int
	stallMark uint64
}

// StallHeartbeats is how many heartbeats in a row may find the primary
// ahead of a streaming secondary that makes no progress before the secondary
// resyncs: batches lost on the bus (a stream deleted or re-created by anyone
// on it) show no gap until a newer batch arrives, which may be never.
const StallHeartbeats = 5

// NewMachine returns a machine in StateIdle.
func NewMachine() *Machine { return &Machine{state: StateIdle} }

// State is the current state.
func (m *Machine) State() State { return m.state }

// LastRemoteWAL is the primary WAL index applied up to.
func (m *Machine) LastRemoteWAL() uint64 { return m.lastRemote }

// Generation is the newest generation of the set seen.
func (m *Machine) Generation() uint64 { return m.gen }

// GuardFrom is the last sync's GuardFrom: the guards of batches ending
// before it are not compared.
func (m *Machine) GuardFrom() uint64 { return m.guardFrom }

// Connected reports whether the last heartbeat was answered.
func (m *Machine) Connected() bool { return m.connected }

// PrimaryLastWAL is the primary's last WAL index from its last heartbeat reply.
func (m *Machine) PrimaryLastWAL() uint64 { return m.primaryWAL }

// Syncing reports whether a sync runs (StateSync, StateMerkleDiff or
// StateMerkleSync).
func (m *Machine) Syncing() bool {
	return m.state == StateSync || m.state == StateMerkleDiff || m.state == StateMerkleSync
}

// checkStall resyncs a streaming secondary that the primary is ahead of and
// that has made no progress for StallHeartbeats heartbeats.
func (m *Machine) checkStall() []Action {
	if m.state != StateStreaming || m.primaryWAL <= m.lastRemote || m.lastRemote != m.stallMark {
		m.stalled, m.stallMark = 0, m.lastRemote
		return nil
	}
	if m.stalled++; m.stalled < StallHeartbeats {
		return nil
	}
	m.stalled = 0
	return []Action{m.startSync(m.lastRemote)}
}

// startSync enters the sync state.
func (m *Machine) startSync(floor uint64) StartSync {
	m.state = StateSync
	if m.merkle {
		m.state = StateMerkleDiff
	}
	m.floor, m.attempts = floor, 0
	return StartSync{Floor: floor}
}

// Step applies one event and returns the actions to carry out, in order.
func (m *Machine) Step(ev Event) []Action {
	if m.state == StateRevoked {
		// Terminal: hand back whatever is in flight, ignore the rest.
		if _, ok := ev.(BatchArrived); ok {
			return []Action{Nak{Reason: "revoked"}}
		}
		return nil
	}
	switch ev := ev.(type) {
	case Started:
		m.lastRemote = ev.LastRemoteWAL
		m.merkle = ev.Merkle
		m.gen = ev.Generation
		if ev.NeedSync {
			return []Action{m.startSync(0)}
		}
		m.state = StateConnecting
		m.streaming = true
		return []Action{StartStreaming{}}
	case BatchArrived:
		return m.batchArrived(ev)
	case BatchApplied:
		return m.batchApplied(ev)
	case GuardMismatch:
		if m.Syncing() || m.state == StateIdle || ev.Last < m.guardFrom {
			return nil
		}
		return []Action{m.startSync(max(ev.Last, m.lastRemote))}
	case BatchRejected:
		return []Action{Ack{Reason: ReasonRejected}}
	case ApplyFailed:
		return []Action{Nak{Reason: "apply failed"}}
	case SyncAttempt, DiffStarted, DiffCompared, DiffDone, ListingStarted, SyncFailed, SyncDone:
		if !m.Syncing() {
			return nil // a sync step arriving after Stop (or a stray one)
		}
		return m.syncStep(ev)
	case HeartbeatOK:
		m.connected = true
		m.primaryWAL = ev.PrimaryLastWAL
		if ev.Gen > m.gen {
			m.gen = ev.Gen
			if m.Syncing() || m.state == StateIdle {
				return nil // a running sync already reads the holder's state
			}
			m.lastRemote = 0
			return []Action{m.startSync(0)}
		}
		if m.state == StateConnecting {
			m.state = StateStreaming
		}
		return m.checkStall()
	case HeartbeatFailed:
		m.connected = false
		return nil
	case FilterChanged:
		return m.filterChanged()
	case Revoked:
		return m.revoke()
	case Stopped:
		m.state = StateIdle
		m.streaming = false
		return nil
	}
	panic(fmt.Sprintf("secondary: unknown event %T", ev))
}

func (m *Machine) batchArrived(ev BatchArrived) []Action {
	switch {
	case m.state == StateIdle:
		return []Action{Nak{Reason: "stopped"}}
	case ev.Gen < m.gen:
		return []Action{Ack{Reason: ReasonStale}}
	case m.Syncing():
		return []Action{Nak{Reason: "sync running"}}
	case ev.Gen > m.gen:
		m.gen = ev.Gen
		m.lastRemote = 0
		return []Action{m.startSync(ev.Last), Ack{Reason: ReasonNewGen}}
	case ev.Last <= m.lastRemote:
		return []Action{Ack{Reason: ReasonReplay}}
	case ev.First > m.lastRemote+1:
		return []Action{m.startSync(ev.Last), Ack{Reason: ReasonGap}}
	}
	return []Action{ApplyBatch{After: m.lastRemote}}
}

func (m *Machine) batchApplied(ev BatchApplied) []Action {
	if ev.Last > m.lastRemote {
		m.lastRemote = ev.Last
	}
	if m.state == StateConnecting {
		m.state = StateStreaming
	}
	if ev.Guard && m.merkle && ev.Last >= m.guardFrom && !m.Syncing() {
		return []Action{Ack{}, CheckGuard{Last: ev.Last}}
	}
	return []Action{Ack{}}
}

// syncStep handles the events of a running sync.
func (m *Machine) syncStep(ev Event) []Action {
	switch ev := ev.(type) {
	case SyncAttempt:
		if ev.Index {
			return []Action{RunDiff{}}
		}
		return []Action{RunListing{}}
	case DiffStarted:
		m.state = StateMerkleDiff
	case DiffCompared:
		if ev.RemoteApplied < m.floor {
			return []Action{RunListing{Fallback: fmt.Sprintf("the primary's merkle index has applied its WAL up to %d only, and this secondary read the stream up to %d", ev.RemoteApplied, m.floor)}}
		}
		return []Action{FetchDiff{Keys: ev.Keys}}
	case DiffDone:
		m.state = StateMerkleSync
	case ListingStarted:
		m.state = StateSync
	case SyncFailed:
		return m.syncFailed(ev)
	case SyncDone:
		m.lastRemote = ev.WALIndex
		m.guardFrom = ev.GuardFrom
		m.state = StateStreaming
		m.connected = true
		if m.refilter {
			// The filter changed during this sync: it may have copied
			// under the old one. Its consumer reads the old subject.
			m.refilter = false
			m.streaming = false
			return []Action{RunAside{Acts: []Action{DropConsumer{}, m.startSync(0)}}}
		}
		if !m.streaming {
			m.streaming = true
			return []Action{StartStreaming{}}
		}
	}
	return nil
}

// syncFailed decides what follows a failed sync step: nothing (stopping),
// the end (revoked), the full listing instead of the diff, or a retry.
func (m *Machine) syncFailed(ev SyncFailed) []Action {
	switch ev.Cause {
	case CauseStopping:
		return nil
	case CauseRevoked:
		return m.revoke()
	}
	if m.state == StateMerkleDiff {
		if why := m.listingInstead(ev.Cause); why != "" {
			return []Action{RunListing{Fallback: why, Err: ev.Err}}
		}
	}
	m.attempts++
	return []Action{RetrySync{Attempt: m.attempts, Err: ev.Err}}
}

// listingInstead says why a diff that failed with cause gives way to the full
// listing, or "" when the sync retries instead.
func (m *Machine) listingInstead(cause Cause) string {
	switch cause {
	case CauseIndexBehind:
		return "the local merkle index has not applied the local WAL"
	case CauseReindex:
		return "the local merkle index needs a reindex"
	case CauseNoMerkle:
		return "the primary has no merkle index"
	case CauseUnreachable:
		// The primary answers heartbeats but nobody serves the merkle
		// subject: a primary from before merkle sync. Without heartbeats
		// either, the primary is just unreachable for now.
		if m.connected {
			return "the primary answers heartbeats but does not serve merkle sync (a primary from before it)"
		}
	}
	return ""
}

// filterChanged drops the consumer (it reads the old filter's subject) and
// resyncs: what the new filter allows arrives, what it no longer allows is
// deleted. A sync already running finishes first (it may run on the
// consumer's own goroutine), then the consumer is dropped and another sync
// runs.
func (m *Machine) filterChanged() []Action {
	switch {
	case m.state == StateIdle:
		return nil // stopped: the first heartbeat after Start brings it again
	case m.Syncing():
		m.refilter = true
		return nil
	}
	acts := []Action{}
	if m.streaming {
		m.streaming = false
		acts = append(acts, DropConsumer{})
	}
	return []Action{RunAside{Acts: append(acts, m.startSync(0))}}
}

func (m *Machine) revoke() []Action {
	m.state = StateRevoked
	m.connected = false
	m.streaming = false
	return []Action{StopStreaming{}}
}
