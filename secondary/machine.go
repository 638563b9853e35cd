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
	// StateRevoked: the primary refused this secondary. Terminal: re-activate
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
}

// BatchArrived: an authentic batch arrived on the WAL stream (the driver
// verified its signature and GCM first, so a forged message never moves the
// machine: it is reported as BatchRejected).
type BatchArrived struct{ First, Last uint64 }

// BatchApplied: the batch of the last ApplyBatch committed.
type BatchApplied struct{ Last uint64 }

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

// SyncDone: the sync finished. WALIndex is where streaming resumes: the
// primary's WAL index when the sync began (full listing) or the one its
// merkle index had applied at the diff's first round. GuardFrom is the
// primary's WAL index once the last value was read: the sync may have written
// values newer than WALIndex, which batches up to GuardFrom overwrite again,
// so the guards of batches ending before it are not compared.
type SyncDone struct{ WALIndex, GuardFrom uint64 }

// HeartbeatOK: the primary answered a heartbeat.
type HeartbeatOK struct{ PrimaryLastWAL uint64 }

// HeartbeatFailed: a heartbeat got no answer (bus down, primary down).
type HeartbeatFailed struct{ Err error }

// Revoked: the primary answered an RPC with "revoked" (or "unknown secondary").
type Revoked struct{}

// Stopped: the driver stops.
type Stopped struct{}

func (Started) event()         {}
func (BatchArrived) event()    {}
func (BatchApplied) event()    {}
func (GuardMismatch) event()   {}
func (DiffStarted) event()     {}
func (DiffDone) event()        {}
func (ListingStarted) event()  {}
func (BatchRejected) event()   {}
func (ApplyFailed) event()     {}
func (SyncDone) event()        {}
func (HeartbeatOK) event()     {}
func (HeartbeatFailed) event() {}
func (Revoked) event()         {}
func (Stopped) event()         {}

// Action is an output of Machine.Step: an effect the driver carries out, in
// order.
type Action interface{ action() }

// StartSync: run a sync now (merkle diff, or the full listing without an
// index); report DiffStarted/DiffDone or ListingStarted, then SyncDone. Floor
// is the least WAL index the sync may resume streaming from: the stream
// messages up to it were already taken off the stream (a gap's batch, an
// applied batch), so resuming below it would lose entries.
type StartSync struct{ Floor uint64 }

// StartStreaming: start the durable consumer (if not running).
type StartStreaming struct{}

// StopStreaming: stop the durable consumer and the heartbeats for good.
type StopStreaming struct{}

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
func (ApplyBatch) action()     {}
func (Ack) action()            {}
func (Nak) action()            {}

// Ack reasons.
const (
	ReasonReplay   = "replay"   // the batch is at or below last_remote_wal
	ReasonGap      = "gap"      // the batch left a gap; the sync covers it
	ReasonRejected = "rejected" // the batch failed verification: dropped
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
//   - Otherwise the batch is applied, from last_remote_wal+1 on.
//   - A guard mismatch after an applied batch starts a sync, unless the batch
//     ends before the last sync's GuardFrom (its guard predates values the
//     sync wrote) or a sync is already running.
//   - SyncDone sets last_remote_wal to the sync's WALIndex (later batches
//     re-apply what changed since: harmless, entries carry whole values and
//     tombstones).
//   - Revoked is terminal.
type Machine struct {
	state      State
	lastRemote uint64
	connected  bool
	primaryWAL uint64
	streaming  bool
	merkle     bool
	guardFrom  uint64
}

// NewMachine returns a machine in StateIdle.
func NewMachine() *Machine { return &Machine{state: StateIdle} }

// State is the current state.
func (m *Machine) State() State { return m.state }

// LastRemoteWAL is the primary WAL index applied up to.
func (m *Machine) LastRemoteWAL() uint64 { return m.lastRemote }

// Connected reports whether the last heartbeat was answered.
func (m *Machine) Connected() bool { return m.connected }

// PrimaryLastWAL is the primary's last WAL index from its last heartbeat reply.
func (m *Machine) PrimaryLastWAL() uint64 { return m.primaryWAL }

// Syncing reports whether a sync runs (StateSync, StateMerkleDiff or
// StateMerkleSync).
func (m *Machine) Syncing() bool {
	return m.state == StateSync || m.state == StateMerkleDiff || m.state == StateMerkleSync
}

// startSync enters the sync state.
func (m *Machine) startSync(floor uint64) StartSync {
	m.state = StateSync
	if m.merkle {
		m.state = StateMerkleDiff
	}
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
		if ev.NeedSync {
			return []Action{m.startSync(0)}
		}
		m.state = StateConnecting
		m.streaming = true
		return []Action{StartStreaming{}}

	case BatchArrived:
		switch {
		case m.state == StateIdle:
			return []Action{Nak{Reason: "stopped"}}
		case m.Syncing():
			return []Action{Nak{Reason: "sync running"}}
		case ev.Last <= m.lastRemote:
			return []Action{Ack{Reason: ReasonReplay}}
		case ev.First > m.lastRemote+1:
			return []Action{m.startSync(ev.Last), Ack{Reason: ReasonGap}}
		}
		return []Action{ApplyBatch{After: m.lastRemote}}

	case BatchApplied:
		if ev.Last > m.lastRemote {
			m.lastRemote = ev.Last
		}
		if m.state == StateConnecting {
			m.state = StateStreaming
		}
		return []Action{Ack{}}

	case GuardMismatch:
		if m.Syncing() || m.state == StateIdle || ev.Last < m.guardFrom {
			return nil
		}
		return []Action{m.startSync(max(ev.Last, m.lastRemote))}

	case DiffStarted:
		if m.Syncing() {
			m.state = StateMerkleDiff
		}
		return nil

	case DiffDone:
		if m.Syncing() {
			m.state = StateMerkleSync
		}
		return nil

	case ListingStarted:
		if m.Syncing() {
			m.state = StateSync
		}
		return nil

	case BatchRejected:
		return []Action{Ack{Reason: ReasonRejected}}

	case ApplyFailed:
		return []Action{Nak{Reason: "apply failed"}}

	case SyncDone:
		if !m.Syncing() {
			return nil
		}
		m.lastRemote = ev.WALIndex
		m.guardFrom = ev.GuardFrom
		m.state = StateStreaming
		m.connected = true
		if !m.streaming {
			m.streaming = true
			return []Action{StartStreaming{}}
		}
		return nil

	case HeartbeatOK:
		m.connected = true
		m.primaryWAL = ev.PrimaryLastWAL
		if m.state == StateConnecting {
			m.state = StateStreaming
		}
		return nil

	case HeartbeatFailed:
		m.connected = false
		return nil

	case Revoked:
		m.state = StateRevoked
		m.connected = false
		m.streaming = false
		return []Action{StopStreaming{}}

	case Stopped:
		m.state = StateIdle
		m.streaming = false
		return nil
	}
	panic(fmt.Sprintf("secondary: unknown event %T", ev))
}
