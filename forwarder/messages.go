package forwarder

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Forward messages travel inside the secondary's sealed RPC (method
// "forward"): the bus sees only ciphertext. Both are JSON objects with a
// version field "v", which is part of the wire format: do not change it; a
// change that old peers cannot ignore takes a new version. Unknown fields are
// ignored, so a newer peer may add fields within version 1.
//
//	Request  {"v":2, "id":"<uuid>", "seq":N, "operation":"update", "path":"secret/data/app",
//	          "data":{...raw JSON body...}, "wrap_ttl":0,
//	          "caller_display_name":"...", "caller_policies":["..."], "remote_addr":"..."}
//	Reply    {"v":2, "status":200, "body":{"data":...,"auth":...,"warnings":[...],"status_code":0},
//	          "errors":["..."], "wal_index":1234}
//
// Version 2 added "seq", the secondary's sequence number (seq.go): the
// primary admits each once, across restarts of either side. Version 1 (no
// seq, the replication.ForwardRequest of earlier builds) is refused with
// ErrOldVersion: a version 1 request could be replayed.
const Version = 2

// MaxMessageSize bounds a message Decode accepts.
const MaxMessageSize = 16 << 20

// Bounds on a request's identity fields.
const (
	maxIDLen   = 128
	maxPathLen = 4096
)

// Errors of the codec.
var (
	// ErrCorrupt: the bytes are not a valid message (bad JSON, missing
	// fields, out of range values, over MaxMessageSize).
	ErrCorrupt = errors.New("forwarder: corrupt message")
	// ErrUnknownVersion: "v" is newer than this build understands: upgrade
	// this server (secondaries are upgraded before their primary).
	ErrUnknownVersion = errors.New("forwarder: unknown message version (sent by a newer coffer? upgrade this server)")
	// ErrOldVersion: "v" is older than this build accepts (version 1 carried
	// no sequence number): upgrade the secondary that sent it.
	ErrOldVersion = errors.New("forwarder: forwarded request of an older version, which could be replayed: upgrade the secondary that sent it")
)

// Request is a write a secondary authenticated and authorized itself and
// forwards to the primary. ID is unique per client request: the primary
// answers a retry with the first reply instead of applying it twice. Data is
// the request body as JSON, kept raw so numbers stay exact.
type Request struct {
	V  int    `json:"v"`
	ID string `json:"id"`
	// Seq is the secondary's sequence number (never 0, never reused).
	Seq       uint64          `json:"seq"`
	Operation string          `json:"operation"`
	Path      string          `json:"path"`
	Data      json.RawMessage `json:"data,omitempty"`
	// WrapTTL asks the primary to wrap the response (seconds).
	WrapTTL int64 `json:"wrap_ttl,omitempty"`
	// Caller describes the secondary-side token, for the primary's audit log.
	CallerDisplayName string   `json:"caller_display_name,omitempty"`
	CallerPolicies    []string `json:"caller_policies,omitempty"`
	RemoteAddr        string   `json:"remote_addr,omitempty"`
}

func (m *Request) validate() error {
	if m.ID == "" || m.Operation == "" || m.Path == "" || m.Seq == 0 {
		return fmt.Errorf("forward request needs an id, a sequence number, an operation and a path")
	}
	if len(m.ID) > maxIDLen || len(m.Path) > maxPathLen {
		return fmt.Errorf("forward request id or path too long")
	}
	return nil
}

// Reply is the primary's answer: the response as the client would have had
// it from the primary (Body), or an error with its HTTP status, and WALIndex,
// the primary's WAL index once the write committed (the secondary waits for
// it before answering).
type Reply struct {
	V        int             `json:"v"`
	Status   int             `json:"status"`
	Body     json.RawMessage `json:"body,omitempty"`
	Errors   []string        `json:"errors,omitempty"`
	WALIndex uint64          `json:"wal_index"`
}

func (m *Reply) validate() error {
	if m.Status < 100 || m.Status > 599 {
		return fmt.Errorf("forward reply status %d out of range", m.Status)
	}
	return nil
}

// message is Request or Reply.
type message interface {
	version() *int
	validate() error
}

func (m *Request) version() *int { return &m.V }
func (m *Reply) version() *int   { return &m.V }

// EncodeRequest returns the wire form of m ("v" set to Version).
func EncodeRequest(m *Request) ([]byte, error) { return encode(m) }

// EncodeReply returns the wire form of m ("v" set to Version).
func EncodeReply(m *Reply) ([]byte, error) { return encode(m) }

// DecodeRequest parses and checks a Request.
func DecodeRequest(data []byte) (*Request, error) {
	var m Request
	return &m, decode(data, &m)
}

// DecodeReply parses and checks a Reply.
func DecodeReply(data []byte) (*Reply, error) {
	var m Reply
	return &m, decode(data, &m)
}

func encode(m message) ([]byte, error) {
	*m.version() = Version
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("encode %T: %w", m, err)
	}
	return json.Marshal(m)
}

func decode(data []byte, m message) error {
	if len(data) > MaxMessageSize {
		return fmt.Errorf("decode %T: %w: %d bytes, limit %d", m, ErrCorrupt, len(data), MaxMessageSize)
	}
	if err := json.Unmarshal(data, m); err != nil {
		return fmt.Errorf("decode %T: %w: %v", m, ErrCorrupt, err)
	}
	switch v := *m.version(); {
	case v > Version:
		return fmt.Errorf("decode %T: %w: v %d", m, ErrUnknownVersion, v)
	case v == 1:
		return fmt.Errorf("decode %T: %w", m, ErrOldVersion)
	case v != Version:
		return fmt.Errorf("decode %T: %w: v %d", m, ErrCorrupt, v)
	}
	if err := m.validate(); err != nil {
		return fmt.Errorf("decode %T: %w: %v", m, ErrCorrupt, err)
	}
	return nil
}
