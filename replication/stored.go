package replication

import (
	"encoding/binary"
	"fmt"
)

// A batch's ops travel as a DEFLATE stream (RFC 1951), whatever its blocks:
// the format allows any level, and an opener inflates whatever a sealer
// wrote. The values are barrier ciphertext and do not compress, so
// SealBatch writes stored blocks (BTYPE 00), framed here by hand: one copy of
// the ops, no compressor. An opener takes a stream of stored blocks apart
// in place, and inflates any other stream (an older primary's, compressed)
// with compress/flate.

// maxStored is the most bytes one stored block holds (LEN is 16 bits).
const maxStored = 0xffff

// storedHeaderLen is a stored block's header: the byte holding BFINAL and
// BTYPE (its other bits padding), then LEN and NLEN, little-endian.
const storedHeaderLen = 5

// storedLen is the length of appendStored's stream of n bytes.
func storedLen(n int) int {
	blocks := max(1, (n+maxStored-1)/maxStored)
	return n + blocks*storedHeaderLen
}

// appendStored appends plain to dst as a DEFLATE stream of stored blocks,
// the last one final (an empty plain is one empty final block).
func appendStored(dst, plain []byte) []byte {
	for {
		n := min(len(plain), maxStored)
		final := byte(0)
		if n == len(plain) {
			final = 1
		}
		dst = append(dst, final)
		dst = binary.LittleEndian.AppendUint16(dst, uint16(n))
		dst = binary.LittleEndian.AppendUint16(dst, ^uint16(n))
		dst = append(dst, plain[:n]...)
		plain = plain[n:]
		if final == 1 {
			return dst
		}
	}
}

// unstore returns the data of z when z is a DEFLATE stream made of stored
// blocks only, moved to z's front in place (the result aliases z). ok is
// false, with z untouched, when a block is not stored: the caller inflates
// z. A stream that is not well formed (LEN and NLEN disagree, cut short, no
// final block, bytes after it) or holds more than max bytes is ErrCorrupt.
func unstore(z []byte, max int) (out []byte, ok bool, err error) {
	// Check the whole stream before moving anything.
	total, p := 0, 0
	for {
		if p >= len(z) {
			return nil, false, fmt.Errorf("%w: the compressed ops end before their final block", ErrCorrupt)
		}
		h := z[p]
		if h>>1&3 != 0 {
			return nil, false, nil // a compressed block: inflate
		}
		if len(z)-p < storedHeaderLen {
			return nil, false, fmt.Errorf("%w: a stored block's header is cut short", ErrCorrupt)
		}
		n := int(binary.LittleEndian.Uint16(z[p+1:]))
		if binary.LittleEndian.Uint16(z[p+3:]) != ^uint16(n) {
			return nil, false, fmt.Errorf("%w: a stored block's length and its complement disagree", ErrCorrupt)
		}
		p += storedHeaderLen
		if len(z)-p < n {
			return nil, false, fmt.Errorf("%w: a stored block of %d bytes is cut short", ErrCorrupt, n)
		}
		p += n
		total += n
		if total > max {
			return nil, false, fmt.Errorf("%w: ops inflate past %d bytes", ErrCorrupt, max)
		}
		if h&1 == 1 {
			break
		}
	}
	if p != len(z) {
		return nil, false, fmt.Errorf("%w: %d bytes after the compressed ops", ErrCorrupt, len(z)-p)
	}
	// Move each block's data over the headers before it.
	w, p := 0, 0
	for w < total {
		n := int(binary.LittleEndian.Uint16(z[p+1:]))
		p += storedHeaderLen
		if w == 0 && n == total {
			return z[p : p+n : p+n], true, nil // one block: nothing to move
		}
		w += copy(z[w:], z[p:p+n])
		p += n
	}
	return z[:total:total], true, nil
}
