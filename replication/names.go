package replication

import (
	"errors"
	"fmt"
)

// RPC methods. The strings are part of the wire format (subjects and the AAD of
// every request): do not change them.
const (
	MethodActivate  = "activate"
	MethodSync      = "sync"
	MethodHeartbeat = "heartbeat"
	MethodKey       = "key"
	MethodForward   = "forward"
	// MethodMerkle carries merkle sync: the payload is merkle's own encoded
	// Request and the reply its encoded Response (merkle/doc.go), both
	// versioned and fuzzed there; the envelope seals them like any method.
	MethodMerkle = "merkle"
	// MethodFetch returns the stored values of listed keys (FetchRequest).
	MethodFetch = "fetch"
)

// MaxIDLen is the longest cluster or secondary id ValidateID accepts.
const MaxIDLen = 128

// ValidateID checks a secondary or cluster id: 1 to MaxIDLen bytes of ASCII
// letters, digits, '_' and '-'. Such an id is the same in every name below, so
// two valid ids never share a stream, subject or consumer. The primary should
// refuse a secondary-token for an id that fails it.
func ValidateID(id string) error {
	if id == "" {
		return errors.New("replication: empty id")
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("replication: id of %d bytes is longer than %d", len(id), MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !idByte(id[i]) {
			return fmt.Errorf("replication: id %q may hold only letters, digits, '_' and '-'", id)
		}
	}
	return nil
}

func idByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// sanitize maps every byte outside [A-Za-z0-9_-] to '_' (and, when dash is
// false, '-' too). It returns "_" for an empty id so a name never ends in a
// separator.
func sanitize(id string, dash bool) string {
	if id == "" {
		return "_"
	}
	b := []byte(id)
	for i, c := range b {
		if !idByte(c) || (!dash && c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

// StreamName is the JetStream stream holding the WAL of primary cluster
// clusterID: "COFFER_WAL_" + the id with '-' (and anything outside letters,
// digits, '_') replaced by '_'.
func StreamName(clusterID string) string { return "COFFER_WAL_" + sanitize(clusterID, false) }

// WALSubject is the subject the primary publishes batches on: "coffer.<id>.wal".
// Bytes that cannot appear in a subject token ('.', '*', '>', spaces, ...) are
// replaced by '_'.
func WALSubject(clusterID string) string { return "coffer." + sanitize(clusterID, true) + ".wal" }

// FilterSubject is the subject of the batch copies the primary ships for
// the paths filter of ID filterID (Filter.ID): WALSubject + ".f." + the id.
// The WAL stream captures FilterSubjects too.
func FilterSubject(clusterID, filterID string) string {
	return WALSubject(clusterID) + ".f." + sanitize(filterID, true)
}

// FilterSubjects is the wildcard of every FilterSubject of clusterID.
func FilterSubjects(clusterID string) string { return WALSubject(clusterID) + ".f.*" }

// RPCSubject is the request subject of method on primary cluster clusterID:
// "coffer.<id>.rpc.<method>".
func RPCSubject(clusterID, method string) string {
	return "coffer." + sanitize(clusterID, true) + ".rpc." + sanitize(method, true)
}

// ConsumerName is the durable consumer of secondary secondaryID: "sec_" + the id
// with anything outside letters, digits, '_' and '-' replaced by '_'.
func ConsumerName(secondaryID string) string { return "sec_" + sanitize(secondaryID, true) }
