package merkle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

// Format constants: part of the disk format, do not change them.
const (
	pageVersion       = 1
	checkpointVersion = 1

	pageHeaderLen = 1 + 4 + 8 // version, bucket, pageLSN
	itemLen       = 8 + ValueHashSize
	crcLen        = 4
	checkpointLen = 1 + 1 + 1 + 8 + crcLen
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Decoding errors. Neither is retryable: a corrupt page needs a reindex.
var (
	// ErrCorrupt is returned for a page, checkpoint or RPC message that is
	// truncated, fails its checksum or breaks the format.
	ErrCorrupt = errors.New("merkle: corrupt record")
	// ErrUnknownVersion is returned for a record whose version byte this build
	// does not know (written by a newer coffer: upgrade this server).
	ErrUnknownVersion = errors.New("merkle: unknown record version (written by a newer coffer? upgrade this server)")
)

// page is the decoded form of one stored leaf page.
type page struct {
	bucket uint32
	lsn    uint64
	items  []item
	keys   []string // same order as items; nil when decoded without keys
}

// encodePage encodes bucket b at pageLSN lsn holding items (sorted by fp) and
// their keys (same order).
func encodePage(b uint32, lsn uint64, items []item, keys []string) []byte {
	size := pageHeaderLen + uvarintLen(uint64(len(items))) + len(items)*itemLen + crcLen
	for _, k := range keys {
		size += uvarintLen(uint64(len(k))) + len(k)
	}
	buf := make([]byte, 0, size)
	buf = append(buf, pageVersion)
	buf = binary.BigEndian.AppendUint32(buf, b)
	buf = binary.BigEndian.AppendUint64(buf, lsn)
	buf = binary.AppendUvarint(buf, uint64(len(items)))
	for _, it := range items {
		buf = binary.BigEndian.AppendUint64(buf, it.fp)
		buf = append(buf, it.vh[:]...)
	}
	for _, k := range keys {
		buf = binary.AppendUvarint(buf, uint64(len(k)))
		buf = append(buf, k...)
	}
	return binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
}

// decodePage decodes a page stored for bucket want. withKeys decodes the keys
// and checks that each one hashes to its bucket and fingerprint; without, the
// key section is only walked (recovery needs the fingerprints alone).
func decodePage(data []byte, want uint32, withKeys bool) (*page, error) {
	if len(data) < 1 {
		return nil, fmt.Errorf("%w: empty page", ErrCorrupt)
	}
	if data[0] != pageVersion {
		return nil, fmt.Errorf("%w: page version %d", ErrUnknownVersion, data[0])
	}
	if len(data) < pageHeaderLen+1+crcLen {
		return nil, fmt.Errorf("%w: page of %d bytes is too short", ErrCorrupt, len(data))
	}
	body := data[:len(data)-crcLen]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(data[len(body):]) {
		return nil, fmt.Errorf("%w: page checksum mismatch", ErrCorrupt)
	}
	p := &page{bucket: binary.BigEndian.Uint32(body[1:5]), lsn: binary.BigEndian.Uint64(body[5:13])}
	if p.bucket != want {
		return nil, fmt.Errorf("%w: page holds bucket %d, stored as %d", ErrCorrupt, p.bucket, want)
	}
	rest := body[pageHeaderLen:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || k != uvarintLen(n) {
		return nil, fmt.Errorf("%w: page item count", ErrCorrupt)
	}
	rest = rest[k:]
	if n == 0 || n > uint64(len(rest)/(itemLen+2)) {
		return nil, fmt.Errorf("%w: page item count %d for %d bytes", ErrCorrupt, n, len(rest))
	}
	p.items = make([]item, n)
	for i := range p.items {
		it := &p.items[i]
		it.fp = binary.BigEndian.Uint64(rest[:8])
		copy(it.vh[:], rest[8:itemLen])
		rest = rest[itemLen:]
		if i > 0 && it.fp <= p.items[i-1].fp {
			return nil, fmt.Errorf("%w: page items out of order", ErrCorrupt)
		}
	}
	if withKeys {
		p.keys = make([]string, n)
	}
	for i := range p.items {
		l, k := binary.Uvarint(rest)
		if k <= 0 || k != uvarintLen(l) || l == 0 || l > uint64(len(rest)-k) {
			return nil, fmt.Errorf("%w: page key %d", ErrCorrupt, i)
		}
		key := rest[k : k+int(l)]
		rest = rest[k+int(l):]
		if !withKeys {
			continue
		}
		s := string(key)
		if strings.IndexByte(s, 0) >= 0 {
			return nil, fmt.Errorf("%w: page key %d holds a NUL byte", ErrCorrupt, i)
		}
		b, fp := keyHash(s)
		if b != want || fp != p.items[i].fp {
			return nil, fmt.Errorf("%w: page key %d does not hash to its item", ErrCorrupt, i)
		}
		p.keys[i] = s
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes in page", ErrCorrupt, len(rest))
	}
	return p, nil
}

func encodeCheckpoint(redo uint64) []byte {
	buf := make([]byte, 0, checkpointLen)
	buf = append(buf, checkpointVersion, Fanout, Depth)
	buf = binary.BigEndian.AppendUint64(buf, redo)
	return binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
}

// decodeCheckpoint returns the redo point, or ErrReindexRequired (wrapped)
// when the stored geometry is not this build's.
func decodeCheckpoint(data []byte) (uint64, error) {
	if len(data) < 1 {
		return 0, fmt.Errorf("%w: empty checkpoint", ErrCorrupt)
	}
	if data[0] != checkpointVersion {
		return 0, fmt.Errorf("%w: checkpoint version %d", ErrUnknownVersion, data[0])
	}
	if len(data) != checkpointLen {
		return 0, fmt.Errorf("%w: checkpoint of %d bytes", ErrCorrupt, len(data))
	}
	if crc32.Checksum(data[:checkpointLen-crcLen], castagnoli) != binary.BigEndian.Uint32(data[checkpointLen-crcLen:]) {
		return 0, fmt.Errorf("%w: checkpoint checksum mismatch", ErrCorrupt)
	}
	if data[1] != Fanout || data[2] != Depth {
		return 0, fmt.Errorf("%w: stored geometry fan-out %d depth %d, this build uses %d and %d", ErrReindexRequired, data[1], data[2], Fanout, Depth)
	}
	redo := binary.BigEndian.Uint64(data[3:11])
	if redo == 0 {
		return 0, fmt.Errorf("%w: checkpoint redo point 0", ErrCorrupt)
	}
	return redo, nil
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
