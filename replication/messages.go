package replication

import (
	"encoding/json"
	"fmt"

	"github.com/cofferhq/coffer/storage"
)

// MessageVersion is the "v" of every RPC message. It is part of the wire
// format: do not change it; a change that old peers cannot ignore takes a new
// version.
const MessageVersion = 1

// MaxMessageSize bounds an RPC message DecodeMessage accepts (a sync page is at
// most about 1 MiB of values, 1.4 MiB in base64).
const MaxMessageSize = 16 << 20

// Message is one of the RPC message types below. EncodeMessage sets its "v";
// DecodeMessage checks it and the message's invariants.
type Message interface {
	header() *msgHeader
	validate() error
}

// msgHeader carries "v" in every message. Embedded unexported, so callers build
// messages with literals that leave it out; EncodeMessage fills it in.
type msgHeader struct {
	V int `json:"v"`
}

func (h *msgHeader) header() *msgHeader { return h }

// EncodeMessage returns the JSON of m with "v" set to MessageVersion.
func EncodeMessage(m Message) ([]byte, error) {
	m.header().V = MessageVersion
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("encode %T: %w", m, err)
	}
	return json.Marshal(m)
}

// DecodeMessage parses data into m, checks "v" (a higher one is
// ErrUnknownVersion, a missing one ErrCorrupt) and m's invariants (ErrCorrupt).
// Unknown fields are ignored: a newer peer may add fields within version 1.
// m should be a zero value.
func DecodeMessage(data []byte, m Message) error {
	if len(data) > MaxMessageSize {
		return fmt.Errorf("decode %T: %w: %d bytes, limit %d", m, ErrCorrupt, len(data), MaxMessageSize)
	}
	if err := json.Unmarshal(data, m); err != nil {
		return fmt.Errorf("decode %T: %w: %v", m, ErrCorrupt, err)
	}
	switch v := m.header().V; {
	case v > MessageVersion:
		return fmt.Errorf("decode %T: %w: v %d", m, ErrUnknownVersion, v)
	case v != MessageVersion:
		return fmt.Errorf("decode %T: %w: v %d", m, ErrCorrupt, v)
	}
	if err := m.validate(); err != nil {
		return fmt.Errorf("decode %T: %w: %v", m, ErrCorrupt, err)
	}
	return nil
}

// SyncRequest asks for a page of replicated keys strictly after After, in key
// order. MaxKeys and MaxBytes bound the page (0: the primary's defaults, 512
// keys and 1 MiB).
type SyncRequest struct {
	msgHeader
	After    string `json:"after"`
	MaxKeys  int    `json:"max_keys"`
	MaxBytes int    `json:"max_bytes"`
}

func (m *SyncRequest) validate() error {
	if m.MaxKeys < 0 || m.MaxBytes < 0 {
		return fmt.Errorf("negative page bound")
	}
	return nil
}

// SyncReply is one page: WALIndex is the primary's last WAL index when the page
// was read (the secondary streams from the one of its first page), Entries the
// keys and stored ciphertext in strictly increasing key order, Next the After of
// the next request, Done true on the last page.
type SyncReply struct {
	msgHeader
	WALIndex uint64 `json:"wal_index"`
	Entries  []KV   `json:"entries"`
	Next     string `json:"next,omitempty"`
	Done     bool   `json:"done"`
}

// KV is one stored key and its value (ciphertext, exactly as stored).
type KV struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

func (m *SyncReply) validate() error {
	for i := range m.Entries {
		if err := storage.ValidateKey(m.Entries[i].Key); err != nil {
			return fmt.Errorf("entry %d: %v", i, err)
		}
		if i > 0 && m.Entries[i-1].Key >= m.Entries[i].Key {
			return fmt.Errorf("entry %d: keys not strictly increasing", i)
		}
	}
	if !m.Done {
		if m.Next == "" {
			return fmt.Errorf("a page that is not the last has no next")
		}
		if n := len(m.Entries); n > 0 && m.Next < m.Entries[n-1].Key {
			return fmt.Errorf("next %q before the page's last key", m.Next)
		}
	}
	return nil
}

// MaxFetchKeys bounds the keys of one FetchRequest.
const MaxFetchKeys = 1024

// FetchRequest asks for the stored values of Keys (at most MaxFetchKeys,
// each valid and listed once): the values of the keys a merkle diff found.
type FetchRequest struct {
	msgHeader
	Keys []string `json:"keys"`
}

func (m *FetchRequest) validate() error {
	if len(m.Keys) > MaxFetchKeys {
		return fmt.Errorf("%d keys, limit %d", len(m.Keys), MaxFetchKeys)
	}
	seen := make(map[string]struct{}, len(m.Keys))
	for i, k := range m.Keys {
		if err := storage.ValidateKey(k); err != nil {
			return fmt.Errorf("key %d: %v", i, err)
		}
		if _, dup := seen[k]; dup {
			return fmt.Errorf("key %d: %q listed twice", i, k)
		}
		seen[k] = struct{}{}
	}
	return nil
}

// FetchReply answers the first Answered keys of a FetchRequest, in request
// order: those stored in Entries (the value exactly as stored), those absent
// in Absent. A reply holds about 1 MiB of values at most but always answers
// at least one key of a non-empty request; the secondary asks again for the
// rest. WALIndex is the primary's last WAL index read after the values.
type FetchReply struct {
	msgHeader
	WALIndex uint64   `json:"wal_index"`
	Answered int      `json:"answered"`
	Entries  []KV     `json:"entries"`
	Absent   []string `json:"absent,omitempty"`
}

func (m *FetchReply) validate() error {
	if m.Answered < 0 || m.Answered != len(m.Entries)+len(m.Absent) {
		return fmt.Errorf("answered %d keys with %d entries and %d absent", m.Answered, len(m.Entries), len(m.Absent))
	}
	for i := range m.Entries {
		if err := storage.ValidateKey(m.Entries[i].Key); err != nil {
			return fmt.Errorf("entry %d: %v", i, err)
		}
	}
	for i, k := range m.Absent {
		if err := storage.ValidateKey(k); err != nil {
			return fmt.Errorf("absent %d: %v", i, err)
		}
	}
	return nil
}

// HeartbeatRequest is sent by a secondary every 2 s.
type HeartbeatRequest struct {
	msgHeader
	LastRemoteWAL uint64 `json:"last_remote_wal"`
	APIAddr       string `json:"api_addr"`
	ClusterID     string `json:"cluster_id"`
	// Generation is the newest generation of the set the secondary has seen
	// (absent from older secondaries).
	Generation uint64 `json:"generation,omitempty"`
	// StateDigest is, from DR secondaries, the SHA-256 of the primary state
	// copy they hold.
	StateDigest []byte `json:"state_digest,omitempty"`
	// SentAt is the secondary's clock when it sent the heartbeat (Unix
	// nanoseconds), for the primary's clock skew estimate; LastRTTMicros the
	// round trip of its previous heartbeat; LastRemoteCommit the primary's
	// commit time (Unix nanoseconds, the primary's clock) of the newest entry
	// applied there, for the lag in seconds. All three are informational
	// (status and metrics only) and absent from older secondaries.
	SentAt           int64 `json:"sent_at,omitempty"`
	LastRTTMicros    int64 `json:"last_rtt_us,omitempty"`
	LastRemoteCommit int64 `json:"last_remote_commit,omitempty"`
}

func (m *HeartbeatRequest) validate() error { return nil }

// HeartbeatReply carries the primary's last WAL index and API address.
type HeartbeatReply struct {
	msgHeader
	LastWAL uint64 `json:"last_wal"`
	APIAddr string `json:"api_addr"`
	// Generation is the generation the primary holds (absent from older
	// primaries).
	Generation uint64 `json:"generation,omitempty"`
	// PrimaryState is, for DR secondaries only, the primary's replication
	// state (as in the DR bundle) when it changed since StateDigest, the
	// SHA-256 of the copy the secondary holds.
	PrimaryState []byte `json:"primary_state,omitempty"`
	// FilterID is the ID of the paths filter the primary applies to this
	// secondary ("" for none): its batches arrive on FilterSubject and its
	// key is FilterKey. A change restarts its consumer and resyncs it.
	FilterID string `json:"filter_id,omitempty"`
}

func (m *HeartbeatReply) validate() error { return nil }

// KeyRequest asks for the replication key of Epoch.
type KeyRequest struct {
	msgHeader
	Epoch uint32 `json:"epoch"`
}

func (m *KeyRequest) validate() error { return nil }

// KeyReply carries the replication key of Epoch (32 bytes).
type KeyReply struct {
	msgHeader
	Epoch uint32 `json:"epoch"`
	Key   []byte `json:"key"`
	// DRKey is the DR key of Epoch, for DR secondaries only.
	DRKey []byte `json:"dr_key,omitempty"`
}

func (m *KeyReply) validate() error { return checkKey(m.Key) }

// Compile-time checks.
var (
	_ Message = (*SyncRequest)(nil)
	_ Message = (*SyncReply)(nil)
	_ Message = (*HeartbeatRequest)(nil)
	_ Message = (*HeartbeatReply)(nil)
	_ Message = (*KeyRequest)(nil)
	_ Message = (*KeyReply)(nil)
	_ Message = (*FetchRequest)(nil)
	_ Message = (*FetchReply)(nil)
)
