package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// Format constants. They are part of the disk and wire format: do not change them.
const (
	entryVersion = 1
	metaVersion  = 1

	// entryHeaderLen is version + index + time.
	entryHeaderLen = 1 + 8 + 8
	crcLen         = 4
	// minEntryLen is a header, a one-byte op count and the CRC.
	minEntryLen = entryHeaderLen + 1 + crcLen
	// minOpLen is kind, class, a one-byte key length, a one-byte key and a one-byte value length.
	minOpLen = 5

	metaLen = 1 + 8 + 8 + crcLen
)

// Key layout under the reserved prefix.
const (
	reservedPrefix = "wal/"
	logPrefix      = "wal/logs/"
	metaKey        = "wal/meta"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Decoding errors. Both mean the bytes cannot be trusted; neither is retryable.
var (
	// ErrCorrupt is returned for an entry or meta record that is truncated, fails
	// its checksum or breaks the format. The storage file is damaged: restore it
	// from a backup, or on a secondary re-activate replication to resync.
	ErrCorrupt = errors.New("wal: corrupt record")
	// ErrUnknownVersion is returned for a record whose version byte this build
	// does not know: it was written by a newer Coffer. Upgrade this server.
	ErrUnknownVersion = errors.New("wal: unknown record version (written by a newer coffer? upgrade this server)")
)

// Entry is one WAL entry: the non-ignored operations of one write, in order.
type Entry struct {
	// Index is the WAL index, from 1.
	Index uint64
	// Time is the commit time in Unix nanoseconds.
	Time int64
	// Ops are the write's replicated and local operations, in the order applied.
	Ops []Op
}

// CommitTime returns Time as a time.Time.
func (e *Entry) CommitTime() time.Time { return time.Unix(0, e.Time) }

// Op is one operation of an entry.
type Op struct {
	Kind  storage.Operation
	Class Class
	Key   string
	// Value is the stored bytes (ciphertext) of a put; nil for a delete.
	Value []byte
}

// EncodeEntry returns the version 1 encoding of e (see the package doc). The
// value of a delete is not encoded.
func EncodeEntry(e *Entry) []byte {
	size := entryHeaderLen + uvarintLen(uint64(len(e.Ops))) + crcLen
	for i := range e.Ops {
		op := &e.Ops[i]
		size += 2 + uvarintLen(uint64(len(op.Key))) + len(op.Key)
		if op.Kind == storage.PutOperation {
			size += uvarintLen(uint64(len(op.Value))) + len(op.Value)
		} else {
			size++
		}
	}
	buf := make([]byte, entryHeaderLen, size)
	buf[0] = entryVersion
	binary.BigEndian.PutUint64(buf[1:9], e.Index)
	binary.BigEndian.PutUint64(buf[9:17], uint64(e.Time))
	buf = binary.AppendUvarint(buf, uint64(len(e.Ops)))
	for i := range e.Ops {
		buf = AppendOp(buf, &e.Ops[i])
	}
	buf = buf[:size]
	sealEntry(buf, e.Index, e.Time)
	return buf
}

// encodeOwned encodes an entry of ops (its index and time stamped at
// commit) and returns it with the entry the log keeps in memory, whose values
// are slices of the encoding rather than copies: the log owns both, and a
// caller may reuse its buffers once Write returns. The storage copies what it
// is given, so the encoding is never written to after the commit.
func encodeOwned(ops []Op) ([]byte, *Entry) {
	body := EncodeEntry(&Entry{Ops: ops})
	owned := make([]Op, len(ops))
	at := entryHeaderLen + uvarintLen(uint64(len(ops)))
	for i, op := range ops {
		at += 2 + uvarintLen(uint64(len(op.Key))) + len(op.Key)
		if op.Kind != storage.PutOperation {
			op.Value = nil
			at++
		} else {
			at += uvarintLen(uint64(len(op.Value)))
			op.Value = body[at : at+len(op.Value) : at+len(op.Value)]
			at += len(op.Value)
		}
		owned[i] = op
	}
	return body, &Entry{Ops: owned}
}

// AppendOp appends op in the op encoding shared by WAL entries and
// replication batches (part of both formats, never change):
//
//	kind(1: put=1, delete=2) | class(1) | keylen(uvarint) key | vallen(uvarint) value
//
// A delete is encoded with an empty value.
func AppendOp(buf []byte, op *Op) []byte {
	buf = append(buf, byte(op.Kind), byte(op.Class))
	buf = binary.AppendUvarint(buf, uint64(len(op.Key)))
	buf = append(buf, op.Key...)
	if op.Kind == storage.PutOperation {
		buf = binary.AppendUvarint(buf, uint64(len(op.Value)))
		return append(buf, op.Value...)
	}
	return append(buf, 0)
}

// DecodeOp parses one op of AppendOp's encoding from p into op and returns
// the bytes after it. It checks the kind, the class and the key, and that a
// delete carries no value; the value is copied, so op does not alias p.
func DecodeOp(p []byte, op *Op) ([]byte, error) {
	rest, err := DecodeOpShared(p, op)
	if err == nil && op.Value != nil {
		op.Value = append(make([]byte, 0, len(op.Value)), op.Value...)
	}
	return rest, err
}

// DecodeOpShared is DecodeOp without the copy: op's value is a slice of p
// (its capacity clipped), for a caller that owns p and never changes it (a
// batch's freshly inflated ops: a copy of every value was a tenth of what
// a catching-up secondary allocated).
func DecodeOpShared(p []byte, op *Op) ([]byte, error) {
	if len(p) < 2 {
		return nil, errors.New("truncated")
	}
	op.Kind, op.Class = storage.Operation(p[0]), Class(p[1])
	if op.Kind != storage.PutOperation && op.Kind != storage.DeleteOperation {
		return nil, fmt.Errorf("unknown kind %d", p[0])
	}
	if !op.Class.valid() {
		return nil, fmt.Errorf("unknown class %d", p[1])
	}
	key, p, err := readBytes(p[2:])
	if err != nil {
		return nil, fmt.Errorf("key: %v", err)
	}
	if err := storage.ValidateKey(string(key)); err != nil {
		return nil, fmt.Errorf("key: %v", err)
	}
	val, p, err := readBytes(p)
	if err != nil {
		return nil, fmt.Errorf("value: %v", err)
	}
	op.Key = string(key)
	if op.Kind == storage.PutOperation {
		op.Value = val[:len(val):len(val)]
		if op.Value == nil {
			op.Value = []byte{}
		}
	} else if len(val) != 0 {
		return nil, errors.New("a delete carrying a value")
	}
	return p, nil
}

// sealEntry stamps index and time into an encoded entry and recomputes its CRC.
func sealEntry(buf []byte, index uint64, unixNanos int64) {
	binary.BigEndian.PutUint64(buf[1:9], index)
	binary.BigEndian.PutUint64(buf[9:17], uint64(unixNanos))
	n := len(buf) - crcLen
	binary.BigEndian.PutUint32(buf[n:], crc32.Checksum(buf[:n], castagnoli))
}

// DecodeEntry parses an encoded entry. It returns ErrUnknownVersion or ErrCorrupt
// (wrapped, with detail) for bytes it cannot trust. The result does not alias buf.
// It never allocates more than a small multiple of len(buf).
func DecodeEntry(buf []byte) (*Entry, error) {
	if len(buf) == 0 {
		return nil, fmt.Errorf("%w: empty entry", ErrCorrupt)
	}
	if buf[0] != entryVersion {
		return nil, fmt.Errorf("%w: entry version %d", ErrUnknownVersion, buf[0])
	}
	if len(buf) < minEntryLen {
		return nil, fmt.Errorf("%w: entry of %d bytes is shorter than the minimum %d", ErrCorrupt, len(buf), minEntryLen)
	}
	body := buf[:len(buf)-crcLen]
	if want, got := binary.BigEndian.Uint32(buf[len(body):]), crc32.Checksum(body, castagnoli); want != got {
		return nil, fmt.Errorf("%w: entry checksum mismatch", ErrCorrupt)
	}
	e := &Entry{
		Index: binary.BigEndian.Uint64(body[1:9]),
		Time:  int64(binary.BigEndian.Uint64(body[9:17])),
	}
	p := body[entryHeaderLen:]
	count, p, err := readUvarint(p)
	if err != nil {
		return nil, fmt.Errorf("%w: op count: %v", ErrCorrupt, err)
	}
	if count > uint64(len(p)/minOpLen) {
		return nil, fmt.Errorf("%w: op count %d does not fit in %d bytes", ErrCorrupt, count, len(p))
	}
	if count > 0 {
		e.Ops = make([]Op, count)
	}
	for i := range e.Ops {
		if p, err = DecodeOp(p, &e.Ops[i]); err != nil {
			return nil, fmt.Errorf("%w: op %d: %v", ErrCorrupt, i, err)
		}
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after the last op", ErrCorrupt, len(p))
	}
	return e, nil
}

// readUvarint reads a uvarint in its shortest form.
func readUvarint(p []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(p)
	if n <= 0 {
		return 0, nil, errors.New("bad uvarint")
	}
	if n != uvarintLen(v) {
		return 0, nil, errors.New("uvarint not in shortest form")
	}
	return v, p[n:], nil
}

// readBytes reads a uvarint length and that many bytes, without copying.
func readBytes(p []byte) ([]byte, []byte, error) {
	n, p, err := readUvarint(p)
	if err != nil {
		return nil, nil, err
	}
	if n > uint64(len(p)) {
		return nil, nil, fmt.Errorf("length %d exceeds the %d bytes left", n, len(p))
	}
	return p[:n], p[n:], nil
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// meta is the record at "wal/meta".
type meta struct {
	last      uint64
	truncated uint64
}

func encodeMeta(m meta) []byte {
	buf := make([]byte, metaLen)
	buf[0] = metaVersion
	binary.BigEndian.PutUint64(buf[1:9], m.last)
	binary.BigEndian.PutUint64(buf[9:17], m.truncated)
	binary.BigEndian.PutUint32(buf[17:], crc32.Checksum(buf[:17], castagnoli))
	return buf
}

func decodeMeta(buf []byte) (meta, error) {
	if len(buf) == 0 {
		return meta{}, fmt.Errorf("%w: empty meta record", ErrCorrupt)
	}
	if buf[0] != metaVersion {
		return meta{}, fmt.Errorf("%w: meta version %d", ErrUnknownVersion, buf[0])
	}
	if len(buf) != metaLen {
		return meta{}, fmt.Errorf("%w: meta record of %d bytes, want %d", ErrCorrupt, len(buf), metaLen)
	}
	if binary.BigEndian.Uint32(buf[17:]) != crc32.Checksum(buf[:17], castagnoli) {
		return meta{}, fmt.Errorf("%w: meta checksum mismatch", ErrCorrupt)
	}
	m := meta{last: binary.BigEndian.Uint64(buf[1:9]), truncated: binary.BigEndian.Uint64(buf[9:17])}
	if m.truncated > m.last {
		return meta{}, fmt.Errorf("%w: meta truncated index %d past last index %d", ErrCorrupt, m.truncated, m.last)
	}
	return m, nil
}

// logKey returns "wal/logs/" and index as 20 zero-padded decimal digits.
func logKey(index uint64) string {
	var b [len(logPrefix) + 20]byte
	copy(b[:], logPrefix)
	for i := len(b) - 1; i >= len(logPrefix); i-- {
		b[i] = byte('0' + index%10)
		index /= 10
	}
	return string(b[:])
}
