package secondary

import (
	"errors"
	"reflect"
	"testing"
)

// step is one line of a script: deliver ev, expect these actions, this state
// and this last_remote_wal afterwards.
type step struct {
	ev    Event
	want  []Action
	state State
	last  uint64
}

var errBus = errors.New("bus down")

// machineScripts are the first scripts of the machine, as Go tables; the
// later ones are in testdata/*.txt (script_test.go).
var machineScripts = []struct {
	name  string
	steps []step
}{
	{"fresh activation syncs then streams", []step{
		{Started{NeedSync: true}, []Action{StartSync{}}, StateSync, 0},
		{BatchArrived{First: 1, Last: 3}, []Action{Nak{Reason: "sync running"}}, StateSync, 0},
		{SyncDone{WALIndex: 7}, []Action{StartStreaming{}}, StateStreaming, 7},
		{BatchArrived{First: 5, Last: 7}, []Action{Ack{Reason: ReasonReplay}}, StateStreaming, 7},
		{BatchArrived{First: 6, Last: 9}, []Action{ApplyBatch{After: 7}}, StateStreaming, 7},
		{BatchApplied{Last: 9}, []Action{Ack{}}, StateStreaming, 9},
		{BatchArrived{First: 10, Last: 10}, []Action{ApplyBatch{After: 9}}, StateStreaming, 9},
		{BatchApplied{Last: 10}, []Action{Ack{}}, StateStreaming, 10},
	}},
	{"restart streams from the persisted index", []step{
		{Started{LastRemoteWAL: 40}, []Action{StartStreaming{}}, StateConnecting, 40},
		{BatchArrived{First: 30, Last: 40}, []Action{Ack{Reason: ReasonReplay}}, StateConnecting, 40},
		{BatchArrived{First: 41, Last: 45}, []Action{ApplyBatch{After: 40}}, StateConnecting, 40},
		{BatchApplied{Last: 45}, []Action{Ack{}}, StateStreaming, 45},
	}},
	{"gap syncs, acks the message after the sync, resumes", []step{
		{Started{LastRemoteWAL: 5}, []Action{StartStreaming{}}, StateConnecting, 5},
		{HeartbeatOK{PrimaryLastWAL: 200}, nil, StateStreaming, 5},
		{BatchArrived{First: 100, Last: 120}, []Action{StartSync{Floor: 120}, Ack{Reason: ReasonGap}}, StateSync, 5},
		{SyncDone{WALIndex: 150}, nil, StateStreaming, 150},
		{BatchArrived{First: 121, Last: 150}, []Action{Ack{Reason: ReasonReplay}}, StateStreaming, 150},
		{BatchArrived{First: 140, Last: 160}, []Action{ApplyBatch{After: 150}}, StateStreaming, 150},
		{BatchApplied{Last: 160}, []Action{Ack{}}, StateStreaming, 160},
		{BatchArrived{First: 170, Last: 171}, []Action{StartSync{Floor: 171}, Ack{Reason: ReasonGap}}, StateSync, 160},
	}},
	{"merkle: activation diffs, fetches, streams", []step{
		{Started{NeedSync: true, Merkle: true}, []Action{StartSync{}}, StateMerkleDiff, 0},
		{DiffStarted{}, nil, StateMerkleDiff, 0},
		{BatchArrived{First: 1, Last: 3}, []Action{Nak{Reason: "sync running"}}, StateMerkleDiff, 0},
		{DiffDone{Keys: 12}, nil, StateMerkleSync, 0},
		{BatchArrived{First: 1, Last: 3}, []Action{Nak{Reason: "sync running"}}, StateMerkleSync, 0},
		{SyncDone{WALIndex: 7, GuardFrom: 9}, []Action{StartStreaming{}}, StateStreaming, 7},
		{BatchArrived{First: 6, Last: 8}, []Action{ApplyBatch{After: 7}}, StateStreaming, 7},
		{BatchApplied{Last: 8}, []Action{Ack{}}, StateStreaming, 8},
		// Its guard predates values the sync wrote (GuardFrom 9): not compared.
		{GuardMismatch{Last: 8}, nil, StateStreaming, 8},
		{BatchArrived{First: 9, Last: 9}, []Action{ApplyBatch{After: 8}}, StateStreaming, 8},
		{BatchApplied{Last: 9}, []Action{Ack{}}, StateStreaming, 9},
		{GuardMismatch{Last: 9}, []Action{StartSync{Floor: 9}}, StateMerkleDiff, 9},
		{GuardMismatch{Last: 9}, nil, StateMerkleDiff, 9},
		{HeartbeatOK{PrimaryLastWAL: 30}, nil, StateMerkleDiff, 9},
		{DiffDone{Keys: 1}, nil, StateMerkleSync, 9},
		{SyncDone{WALIndex: 20, GuardFrom: 21}, nil, StateStreaming, 20},
	}},
	{"merkle: a gap diffs; a failed attempt diffs again; no index lists", []step{
		{Started{LastRemoteWAL: 5, Merkle: true}, []Action{StartStreaming{}}, StateConnecting, 5},
		{BatchArrived{First: 50, Last: 60}, []Action{StartSync{Floor: 60}, Ack{Reason: ReasonGap}}, StateMerkleDiff, 5},
		{DiffDone{Keys: 3}, nil, StateMerkleSync, 5},
		{DiffStarted{}, nil, StateMerkleDiff, 5},
		{ListingStarted{}, nil, StateSync, 5},
		{SyncDone{WALIndex: 70, GuardFrom: 70}, nil, StateStreaming, 70},
		{DiffStarted{}, nil, StateStreaming, 70},
		{DiffDone{}, nil, StateStreaming, 70},
		{ListingStarted{}, nil, StateStreaming, 70},
		{SyncDone{WALIndex: 90}, nil, StateStreaming, 70},
	}},
	{"guard mismatch while connecting, idle or revoked", []step{
		{GuardMismatch{Last: 3}, nil, StateIdle, 0},
		{Started{LastRemoteWAL: 2}, []Action{StartStreaming{}}, StateConnecting, 2},
		{BatchArrived{First: 3, Last: 3}, []Action{ApplyBatch{After: 2}}, StateConnecting, 2},
		{BatchApplied{Last: 3}, []Action{Ack{}}, StateStreaming, 3},
		{GuardMismatch{Last: 3}, []Action{StartSync{Floor: 3}}, StateSync, 3},
		{Revoked{}, []Action{StopStreaming{}}, StateRevoked, 3},
		{GuardMismatch{Last: 4}, nil, StateRevoked, 3},
	}},
	{"bad batches are dropped, storage errors redelivered", []step{
		{Started{LastRemoteWAL: 1}, []Action{StartStreaming{}}, StateConnecting, 1},
		{BatchArrived{First: 2, Last: 2}, []Action{ApplyBatch{After: 1}}, StateConnecting, 1},
		{BatchRejected{First: 2, Last: 2, Err: errBus}, []Action{Ack{Reason: ReasonRejected}}, StateConnecting, 1},
		{BatchArrived{First: 2, Last: 3}, []Action{ApplyBatch{After: 1}}, StateConnecting, 1},
		{ApplyFailed{Err: errBus}, []Action{Nak{Reason: "apply failed"}}, StateConnecting, 1},
		{BatchArrived{First: 2, Last: 3}, []Action{ApplyBatch{After: 1}}, StateConnecting, 1},
		{BatchApplied{Last: 3}, []Action{Ack{}}, StateStreaming, 3},
	}},
	{"revoked is terminal", []step{
		{Started{LastRemoteWAL: 9}, []Action{StartStreaming{}}, StateConnecting, 9},
		{Revoked{}, []Action{StopStreaming{}}, StateRevoked, 9},
		{BatchArrived{First: 10, Last: 10}, []Action{Nak{Reason: "revoked"}}, StateRevoked, 9},
		{HeartbeatOK{PrimaryLastWAL: 10}, nil, StateRevoked, 9},
		{SyncDone{WALIndex: 20}, nil, StateRevoked, 9},
		{Stopped{}, nil, StateRevoked, 9},
	}},
	{"revoked during sync", []step{
		{Started{NeedSync: true}, []Action{StartSync{}}, StateSync, 0},
		{Revoked{}, []Action{StopStreaming{}}, StateRevoked, 0},
		{SyncDone{WALIndex: 3}, nil, StateRevoked, 0},
	}},
	{"stop", []step{
		{Started{LastRemoteWAL: 2}, []Action{StartStreaming{}}, StateConnecting, 2},
		{Stopped{}, nil, StateIdle, 2},
		{BatchArrived{First: 3, Last: 3}, []Action{Nak{Reason: "stopped"}}, StateIdle, 2},
	}},
}

func TestMachineScripts(t *testing.T) {
	for _, sc := range machineScripts {
		t.Run(sc.name, func(t *testing.T) {
			m := NewMachine()
			for i, s := range sc.steps {
				got := m.Step(s.ev)
				if !reflect.DeepEqual(got, s.want) {
					t.Fatalf("step %d %T%+v: actions %#v, want %#v", i, s.ev, s.ev, got, s.want)
				}
				if m.State() != s.state || m.LastRemoteWAL() != s.last {
					t.Fatalf("step %d %T%+v: state %s last %d, want %s last %d", i, s.ev, s.ev, m.State(), m.LastRemoteWAL(), s.state, s.last)
				}
			}
		})
	}
}

func TestMachineConnected(t *testing.T) {
	m := NewMachine()
	m.Step(Started{LastRemoteWAL: 1})
	if m.Connected() {
		t.Fatal("connected before any heartbeat")
	}
	m.Step(HeartbeatOK{PrimaryLastWAL: 12})
	if !m.Connected() || m.PrimaryLastWAL() != 12 {
		t.Fatalf("after heartbeat: connected %v primary wal %d", m.Connected(), m.PrimaryLastWAL())
	}
	m.Step(HeartbeatFailed{Err: errors.New("timeout")})
	if m.Connected() {
		t.Fatal("connected after a failed heartbeat")
	}
}
