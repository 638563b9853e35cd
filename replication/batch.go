package replication

import (
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
)

// Batch format constants. They are part of the wire format: do not change them.
const (
	// batchVersion1 is the first layout, without a guard: still opened.
	batchVersion1 = 1
	// batchVersion2 is version 1 plus the guard: still opened.
	batchVersion2 = 2
	// batchVersion3 is version 2 plus the primary's generation after the
	// last index and the DR section's length, signed with Ed25519ph: still
	// opened.
	batchVersion3 = 3
	// batchVersion4 is version 3's layout signed with Ed25519ctx over a
	// SHA-256 of the body (batchSigV4) rather than Ed25519ph's SHA-512,
	// which ran at a third of SHA-256's speed here: still opened.
	batchVersion4 = 4
	// batchVersion is the layout SealBatch writes: version 4's plus the
	// tags of the secondaries (tag.go) before the signature, which covers
	// them (batchSigV5).
	batchVersion = 5
	// genLen is the generation's length in a version 3 header, drLenLen
	// the DR section length's.
	genLen   = 8
	drLenLen = 4
	// drAADLabel starts the associated data of a batch's DR section.
	drAADLabel = "coffer-wal-dr"
	// batchHeaderLen is version + epoch + first + last (the version 1 header,
	// and the fixed part of the version 2 header).
	batchHeaderLen = 1 + 4 + 8 + 8
	// GuardSize is the length of a batch's guard: a merkle root.
	GuardSize = 32
	nonceLen  = 12
	tagLen    = 16
	sigLen    = ed25519.SignatureSize
	// batchMinLen is a version 1 header, a nonce, an empty GCM ciphertext and a
	// signature: the shortest batch of any version.
	batchMinLen = batchHeaderLen + nonceLen + tagLen + sigLen
	// batchAADLabel starts the associated data of a batch's GCM.
	batchAADLabel = "coffer-wal"
	// batchSigContext is the Ed25519ph context of a version 1-3 batch
	// signature, batchSigContextV4 the Ed25519ctx context of version 4's.
	batchSigContext   = "coffer-wal"
	batchSigContextV4 = "coffer-wal-v4"
	batchSigContextV5 = "coffer-wal-v5"
	// batchEntryMinLen is index + time + a one-byte op count.
	batchEntryMinLen = 8 + 8 + 1
	// opMinLen is kind, class, a one-byte key length, a one-byte key and a one-byte value length.
	opMinLen = 5
)

// MaxBatchPayload bounds the decompressed ops of one batch. SealBatch refuses a
// batch whose encoded ops are larger, and OpenBatch stops inflating past it, so
// a decompression bomb fails with ErrCorrupt instead of exhausting memory.
const MaxBatchPayload = 64 << 20

// KeySize is the size of the replication key and of each RPC key (AES-256).
const KeySize = 32

// Batch is a run of WAL entries shipped as one message on the WAL stream.
type Batch struct {
	// ClusterID is the primary's cluster id. It is not carried in clear: it is
	// part of the GCM associated data, so OpenBatch takes it from the receiver,
	// and a batch of another primary fails with ErrDecrypt.
	ClusterID string
	// Epoch is the replication key epoch the batch is sealed with.
	Epoch uint32
	// First and Last are the WAL index range covered, inclusive, First <= Last.
	// Entries without a replicated op still count in the range.
	First, Last uint64
	// Entries hold only the replicated ops of each entry, in strictly increasing
	// index order within [First, Last]; an entry with no op may be omitted.
	Entries []*wal.Entry
	// Guard is nil or GuardSize bytes: the primary's merkle root once its index
	// had applied exactly the WAL up to Last. A secondary that applied the
	// batch compares its own root with it. It is in the header, so the
	// signature and the GCM associated data cover it. A version 1 batch has none.
	Guard []byte
	// Generation is the primary's generation of the replication set
	// (docs/replication.md, "Generations"): in the header, covered like the
	// guard; 0 in batches of versions 1 and 2.
	Generation uint64
	// DREntries hold the ops only DR secondaries receive (local keys), in
	// the DR section, sealed under the DR key: OpenBatch leaves them out,
	// OpenBatchDR merges them into Entries.
	DREntries []*wal.Entry
}

// SealBatch encodes, frames, encrypts and signs b (see the package doc for
// the layout): ops are framed as stored DEFLATE blocks, sealed with AES-256-GCM under key (32
// bytes) with a random nonce and the header and cluster id as associated data,
// and everything is signed with signer. b.DREntries must be empty: SealBatchDR
// seals them.
func SealBatch(b *Batch, key []byte, signer ed25519.PrivateKey) ([]byte, error) {
	if len(b.DREntries) > 0 {
		return nil, fmt.Errorf("seal batch %d-%d: DR entries need the DR key (SealBatchDR)", b.First, b.Last)
	}
	return SealBatchDR(b, key, nil, signer)
}

// SealBatchDR is SealBatch with the DR section: b.DREntries (the local ops
// only DR secondaries receive) framed and sealed under drKey, after the
// main section. Without DR entries there is no DR section and drKey may be
// nil.
func SealBatchDR(b *Batch, key, drKey []byte, signer ed25519.PrivateKey) ([]byte, error) {
	return sealBatchAs(batchVersion, b, key, drKey, signer, nil)
}

// SealBatchTagged is SealBatchDR with a tag for each of tags' secondaries
// (tag.go): each of them trusts the batch on its tag, without checking the
// signature.
func SealBatchTagged(b *Batch, key, drKey []byte, signer ed25519.PrivateKey, tags []TagKey) ([]byte, error) {
	return sealBatchAs(batchVersion, b, key, drKey, signer, tags)
}

// sealBatchAs seals b in the layout of version (3 to 5: 3 and 4 differ in
// the signature only; 5 adds tags).
func sealBatchAs(version byte, b *Batch, key, drKey []byte, signer ed25519.PrivateKey, tags []TagKey) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("seal batch: %w", err)
	}
	if len(signer) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("seal batch: signing key of %d bytes, want %d", len(signer), ed25519.PrivateKeySize)
	}
	if len(b.Guard) != 0 && len(b.Guard) != GuardSize {
		return nil, fmt.Errorf("seal batch %d-%d: guard of %d bytes, want 0 or %d", b.First, b.Last, len(b.Guard), GuardSize)
	}
	pbuf := plainBufs.Get().(*[]byte)
	defer plainBufs.Put(pbuf)
	plain, err := appendBatchOps(*pbuf, &Batch{First: b.First, Last: b.Last, Entries: b.Entries})
	if err != nil {
		return nil, fmt.Errorf("seal batch %d-%d: %w", b.First, b.Last, err)
	}
	*pbuf = plain
	var dplain []byte
	drLen := 0
	if len(b.DREntries) > 0 {
		if err := checkKey(drKey); err != nil {
			return nil, fmt.Errorf("seal batch: DR key: %w", err)
		}
		dbuf := plainBufs.Get().(*[]byte)
		defer plainBufs.Put(dbuf)
		if dplain, err = appendBatchOps(*dbuf, &Batch{First: b.First, Last: b.Last, Entries: b.DREntries}); err != nil {
			return nil, fmt.Errorf("seal batch %d-%d: %w", b.First, b.Last, err)
		}
		*dbuf = dplain
		drLen = nonceLen + storedLen(len(dplain)) + tagLen
	}
	hlen := batchHeaderLen + genLen + drLenLen + 1 + len(b.Guard)
	msg := make([]byte, hlen, hlen+nonceLen+storedLen(len(plain))+tagLen+drLen+len(tags)*tagLen5+tagCountLen+sigLen)
	msg[0] = version
	binary.BigEndian.PutUint32(msg[1:5], b.Epoch)
	binary.BigEndian.PutUint64(msg[5:13], b.First)
	binary.BigEndian.PutUint64(msg[13:21], b.Last)
	binary.BigEndian.PutUint64(msg[21:29], b.Generation)
	binary.BigEndian.PutUint32(msg[29:33], uint32(drLen))
	msg[33] = byte(len(b.Guard))
	copy(msg[34:hlen], b.Guard)
	header := msg[:hlen]
	if msg, err = sealSection(msg, key, batchAAD(b.ClusterID, header), plain); err != nil {
		return nil, err
	}
	if dplain != nil {
		if msg, err = sealSection(msg, drKey, drAAD(b.ClusterID, header), dplain); err != nil {
			return nil, err
		}
	}
	tagsLen := 0
	var sections [sha256.Size]byte
	if version >= batchVersion {
		sections = sha256.Sum256(msg)
		n := len(msg)
		if msg, err = appendTags(msg, sections[:], tags); err != nil {
			return nil, err
		}
		tagsLen = len(msg) - n
	}
	sig, err := signBatch(signer, msg, sections[:], tagsLen)
	if err != nil {
		return nil, err
	}
	return append(msg, sig...), nil
}

// plainBufs recycles the buffers a batch's ops are encoded into before they
// are framed and encrypted into the message: up to a megabyte each.
var plainBufs = sync.Pool{New: func() any { return new([]byte) }}

// sealSection appends a random nonce and AES-256-GCM(key, stored DEFLATE
// blocks of plain, aad) to msg: the blocks are framed in msg and encrypted
// where they lie.
func sealSection(msg, key, aad, plain []byte) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	n := len(msg)
	msg = append(msg, make([]byte, nonceLen)...)
	if _, err := rand.Read(msg[n:]); err != nil {
		return nil, err
	}
	at := n + nonceLen
	msg = appendStored(msg, plain)
	return aead.Seal(msg[:at], msg[n:at], msg[at:], aad), nil
}

// drAAD is "coffer-wal-dr" | cluster id | header: the DR section's AAD,
// apart from the main section's.
func drAAD(clusterID string, header []byte) []byte {
	aad := make([]byte, 0, len(drAADLabel)+len(clusterID)+len(header))
	aad = append(aad, drAADLabel...)
	aad = append(aad, clusterID...)
	return append(aad, header...)
}

// PeekBatch reads the header of a batch without verifying anything, so the
// receiver can pick the key of the epoch and skip a batch it already applied.
// Trust nothing it returns until OpenBatch succeeds.
func PeekBatch(msg []byte) (epoch uint32, first, last uint64, err error) {
	h, err := peekBatch(msg)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("peek batch: %w", err)
	}
	return h.epoch, h.first, h.last, nil
}

// PeekGeneration reads a batch's generation without verifying anything (0
// for versions 1 and 2). Trust it only once OpenBatch succeeds.
func PeekGeneration(msg []byte) (uint64, error) {
	h, err := peekBatch(msg)
	if err != nil {
		return 0, fmt.Errorf("peek batch: %w", err)
	}
	return h.gen, nil
}

// batchHeader is a parsed header; len is its length in bytes (the AAD's
// header part), guard aliases the message.
type batchHeader struct {
	epoch       uint32
	first, last uint64
	gen         uint64
	drLen       int
	tagsLen     int // version 5: the tag block's, before the signature
	guard       []byte
	len         int
}

func peekBatch(msg []byte) (batchHeader, error) {
	var h batchHeader
	if len(msg) == 0 {
		return h, fmt.Errorf("%w: empty message", ErrCorrupt)
	}
	if msg[0] < batchVersion1 || msg[0] > batchVersion {
		return h, fmt.Errorf("%w: batch version %d", ErrUnknownVersion, msg[0])
	}
	if len(msg) < batchMinLen {
		return h, fmt.Errorf("%w: %d bytes is shorter than the minimum %d", ErrCorrupt, len(msg), batchMinLen)
	}
	h.epoch = binary.BigEndian.Uint32(msg[1:5])
	h.first = binary.BigEndian.Uint64(msg[5:13])
	h.last = binary.BigEndian.Uint64(msg[13:21])
	h.len = batchHeaderLen
	if msg[0] >= batchVersion3 {
		if len(msg) < batchMinLen+genLen+drLenLen+1 {
			return h, fmt.Errorf("%w: %d bytes is shorter than the minimum %d", ErrCorrupt, len(msg), batchMinLen+genLen+drLenLen+1)
		}
		h.gen = binary.BigEndian.Uint64(msg[21:29])
		h.drLen = int(binary.BigEndian.Uint32(msg[29:33]))
		h.len += genLen + drLenLen
		if h.drLen != 0 && (h.drLen < nonceLen+tagLen || h.drLen > len(msg)-batchMinLen-genLen-drLenLen-1) {
			return h, fmt.Errorf("%w: DR section of %d bytes", ErrCorrupt, h.drLen)
		}
	}
	if msg[0] >= batchVersion2 {
		at := h.len
		switch g := int(msg[at]); {
		case g != 0 && g != GuardSize:
			return h, fmt.Errorf("%w: guard of %d bytes", ErrCorrupt, g)
		case len(msg) < batchMinLen+(at-batchHeaderLen)+1+g:
			return h, fmt.Errorf("%w: %d bytes is shorter than the minimum %d", ErrCorrupt, len(msg), batchMinLen+(at-batchHeaderLen)+1+g)
		case g > 0:
			h.guard = msg[at+1 : at+1+g]
		}
		h.len += 1 + len(h.guard)
	}
	if msg[0] >= batchVersion {
		// The sections must fit between the header and the tags.
		if h.tagsLen = tagBlockLen(msg[:len(msg)-sigLen], h.len+nonceLen+tagLen+h.drLen); h.tagsLen < 0 {
			return h, fmt.Errorf("%w: no room for the tags of a version %d batch of %d bytes", ErrCorrupt, msg[0], len(msg))
		}
	}
	if h.first > h.last {
		return h, fmt.Errorf("%w: first index %d after last %d", ErrCorrupt, h.first, h.last)
	}
	return h, nil
}

// OpenBatch verifies the signature against pub first, then decrypts with key
// and clusterID as associated data, then inflates (at most MaxBatchPayload
// bytes) and decodes. It returns ErrBadSignature, ErrDecrypt, ErrCorrupt or
// ErrUnknownVersion (wrapped) and never a partly decoded batch. The result does
// not alias msg.
func OpenBatch(msg []byte, clusterID string, key []byte, pub ed25519.PublicKey) (*Batch, error) {
	return openBatch(msg, clusterID, key, nil, pub, nil, MaxBatchPayload)
}

// OpenBatchTagged is OpenBatch (drKey nil) or OpenBatchDR that trusts a
// version 5 batch on tag's tag when it holds one that verifies, and checks
// the signature otherwise (tag.go).
func OpenBatchTagged(msg []byte, clusterID string, key, drKey []byte, pub ed25519.PublicKey, tag *TagKey) (*Batch, error) {
	if drKey != nil {
		if err := checkKey(drKey); err != nil {
			return nil, fmt.Errorf("open batch: DR key: %w", err)
		}
	}
	return openBatch(msg, clusterID, key, drKey, pub, tag, MaxBatchPayload)
}

// OpenBatchDR is OpenBatch for a DR secondary: it also opens the DR section
// (when there is one) with drKey and merges its entries into Entries.
func OpenBatchDR(msg []byte, clusterID string, key, drKey []byte, pub ed25519.PublicKey) (*Batch, error) {
	if err := checkKey(drKey); err != nil {
		return nil, fmt.Errorf("open batch: DR key: %w", err)
	}
	return openBatch(msg, clusterID, key, drKey, pub, nil, MaxBatchPayload)
}

func openBatch(msg []byte, clusterID string, key, drKey []byte, pub ed25519.PublicKey, tag *TagKey, maxPlain int) (*Batch, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("open batch: %w", err)
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("open batch: signing public key of %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	h, err := peekBatch(msg)
	if err != nil {
		return nil, fmt.Errorf("open batch: %w", err)
	}
	first, last := h.first, h.last
	body := msg[:len(msg)-sigLen]
	if !authentic(pub, tag, body, h.tagsLen, msg[len(body):]) {
		return nil, fmt.Errorf("open batch %d-%d: %w", first, last, ErrBadSignature)
	}
	body = body[:len(body)-h.tagsLen] // header and sections
	main := body[h.len : len(body)-h.drLen]
	if len(main) < nonceLen+tagLen {
		return nil, fmt.Errorf("open batch %d-%d: %w: main section of %d bytes", first, last, ErrCorrupt, len(main))
	}
	plain, err := openInflate(main, key, batchAAD(clusterID, body[:h.len]), maxPlain)
	if err != nil {
		return nil, fmt.Errorf("open batch %d-%d: %w", first, last, err)
	}
	b := &Batch{ClusterID: clusterID, Epoch: h.epoch, First: first, Last: last, Generation: h.gen}
	if h.guard != nil {
		b.Guard = bytes.Clone(h.guard)
	}
	if b.Entries, err = decodeBatchOps(plain, first, last); err != nil {
		return nil, fmt.Errorf("open batch %d-%d: %w", first, last, err)
	}
	if drKey == nil || h.drLen == 0 {
		return b, nil
	}
	dplain, err := openInflate(body[len(body)-h.drLen:], drKey, drAAD(clusterID, body[:h.len]), maxPlain)
	if err != nil {
		return nil, fmt.Errorf("open batch %d-%d: DR section: %w", first, last, err)
	}
	dr, err := decodeBatchOps(dplain, first, last)
	if err != nil {
		return nil, fmt.Errorf("open batch %d-%d: DR section: %w", first, last, err)
	}
	b.Entries = mergeEntries(b.Entries, dr)
	return b, nil
}

// openInflate opens nonce | GCM(key, aad) and inflates what it holds (at
// most max bytes). The result is the caller's: a stream of stored blocks
// (what SealBatch writes) is taken apart where it was decrypted, any other
// is inflated.
func openInflate(sec, key, aad []byte, max int) ([]byte, error) {
	if len(sec) < nonceLen+tagLen {
		return nil, fmt.Errorf("%w: a section of %d bytes", ErrCorrupt, len(sec))
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	z, err := aead.Open(make([]byte, 0, len(sec)-nonceLen-tagLen), sec[:nonceLen], sec[nonceLen:], aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	out, ok, err := unstore(z, max)
	if ok || err != nil {
		return out, err
	}
	return inflate(z, max)
}

// mergeEntries merges two index-ordered entry lists; an index in both gets
// one entry with a's ops, then b's.
func mergeEntries(a, b []*wal.Entry) []*wal.Entry {
	out := make([]*wal.Entry, 0, len(a)+len(b))
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || (len(a) > 0 && a[0].Index < b[0].Index):
			out, a = append(out, a[0]), a[1:]
		case len(a) == 0 || b[0].Index < a[0].Index:
			out, b = append(out, b[0]), b[1:]
		default:
			e := *a[0]
			e.Ops = append(append([]wal.Op(nil), a[0].Ops...), b[0].Ops...)
			out, a, b = append(out, &e), a[1:], b[1:]
		}
	}
	return out
}

// batchSigOpts selects Ed25519ph (RFC 8032 HashEdDSA, SHA-512) with the
// context "coffer-wal": versions 1 to 3. Pure Ed25519 hashes the message
// twice to sign; a prehashed one once. The context separates batch
// signatures from token signatures made with the same key.
var batchSigOpts = &ed25519.Options{Hash: crypto.SHA512, Context: batchSigContext}

// batchSigV4 is version 4's: Ed25519ctx (RFC 8032, context
// "coffer-wal-v4") of SHA-256(body). It hashes the body once, with SHA-256,
// which runs at 1,970 MB/s on this machine's SHA extensions against
// SHA-512's 750; Ed25519ctx's flag and context keep it apart from every
// other signature of the key.
var batchSigV4 = &ed25519.Options{Context: batchSigContextV4}

// batchSigV5 is version 5's: Ed25519ctx (context "coffer-wal-v5") of
// SHA-256(SHA-256(header and sections) | tag block), so that the tags
// authenticate the same digest the signature covers.
var batchSigV5 = &ed25519.Options{Context: batchSigContextV5}

// signBatch signs body (everything before the signature) by the scheme of
// its version; a version 5 body ends with a tag block of tagsLen bytes,
// and sections is SHA-256 of what comes before it. SealBatch writes
// version 5; the tests seal older ones.
func signBatch(signer ed25519.PrivateKey, body, sections []byte, tagsLen int) ([]byte, error) {
	digest, opts := sigDigest(body, sections, tagsLen)
	return signer.Sign(nil, digest, opts)
}

// sigDigest is what body's signature signs, and how.
func sigDigest(body, sections []byte, tagsLen int) ([]byte, *ed25519.Options) {
	switch {
	case body[0] >= batchVersion:
		h := sha256.New()
		h.Write(sections)
		h.Write(body[len(body)-tagsLen:])
		return h.Sum(nil), batchSigV5
	case body[0] == batchVersion4:
		d := sha256.Sum256(body)
		return d[:], batchSigV4
	}
	d := sha512.Sum512(body)
	return d[:], batchSigOpts
}

// authentic reports whether body (everything before sig) comes from the
// primary: by tag's tag when body is a version 5 batch holding one that
// verifies, else by its signature.
func authentic(pub ed25519.PublicKey, tag *TagKey, body []byte, tagsLen int, sig []byte) bool {
	var sections []byte
	if body[0] >= batchVersion {
		d := sha256.Sum256(body[:len(body)-tagsLen])
		sections = d[:]
		if tag != nil && tag.tagged(body[len(body)-tagsLen:], sections) {
			return true
		}
	}
	digest, opts := sigDigest(body, sections, tagsLen)
	return ed25519.VerifyWithOptions(pub, digest, sig, opts) == nil
}

// flateReaders recycles decompressors (each holds a 32 KiB window) for
// batches whose ops are not all stored blocks: an older primary's, which
// compressed them.
var flateReaders = sync.Pool{New: func() any { return flate.NewReader(bytes.NewReader(nil)) }}

// readAllInto is io.ReadAll into buf's spare capacity.
func readAllInto(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// batchAAD is "coffer-wal" | cluster id | header. The label and the header have
// fixed lengths, so the cluster id in the middle is unambiguous.
func batchAAD(clusterID string, header []byte) []byte {
	aad := make([]byte, 0, len(batchAADLabel)+len(clusterID)+len(header))
	aad = append(aad, batchAADLabel...)
	aad = append(aad, clusterID...)
	return append(aad, header...)
}

// inflate decompresses z, failing with ErrCorrupt past max bytes of output.
func inflate(z []byte, max int) ([]byte, error) {
	br := bytes.NewReader(z)
	// br is an io.ByteReader: flate reads no byte past the stream. The
	// readers are pooled: each holds a 32 KiB window, more than a small
	// batch itself.
	zr := flateReaders.Get().(io.ReadCloser)
	if err := zr.(flate.Resetter).Reset(br, nil); err != nil {
		return nil, fmt.Errorf("%w: inflate: %v", ErrCorrupt, err)
	}
	defer flateReaders.Put(zr)
	out := make([]byte, 0, len(z)+len(z)/8+64)
	var err error
	out, err = readAllInto(out, io.LimitReader(zr, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("%w: inflate: %v", ErrCorrupt, err)
	}
	if len(out) > max {
		return nil, fmt.Errorf("%w: ops inflate past %d bytes", ErrCorrupt, max)
	}
	// A stream with junk after its final block is not one SealBatch wrote.
	if br.Len() != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the compressed ops", ErrCorrupt, br.Len())
	}
	return out, nil
}

// encodeBatchOps validates b and returns its uncompressed ops:
//
//	uvarint entry count, then per entry: index(8) | time(8) | uvarint op count | ops
func encodeBatchOps(b *Batch) ([]byte, error) { return appendBatchOps(nil, b) }

// appendBatchOps is encodeBatchOps into buf's spare capacity (grown when
// short).
func appendBatchOps(buf []byte, b *Batch) ([]byte, error) {
	if b.First > b.Last {
		return nil, fmt.Errorf("first index %d after last %d", b.First, b.Last)
	}
	size := binary.MaxVarintLen64
	prev := uint64(0)
	for i, e := range b.Entries {
		if e == nil {
			return nil, fmt.Errorf("entry %d is nil", i)
		}
		if e.Index < b.First || e.Index > b.Last {
			return nil, fmt.Errorf("entry index %d outside the batch range", e.Index)
		}
		if i > 0 && e.Index <= prev {
			return nil, fmt.Errorf("entry index %d does not follow %d", e.Index, prev)
		}
		prev = e.Index
		size += 16 + binary.MaxVarintLen64
		for j := range e.Ops {
			op := &e.Ops[j]
			if op.Kind != storage.PutOperation && op.Kind != storage.DeleteOperation {
				return nil, fmt.Errorf("entry %d op %d: unknown kind %d", e.Index, j, op.Kind)
			}
			if !validClass(op.Class) {
				return nil, fmt.Errorf("entry %d op %d: unknown class %d", e.Index, j, op.Class)
			}
			if err := storage.ValidateKey(op.Key); err != nil {
				return nil, fmt.Errorf("entry %d op %d: %w", e.Index, j, err)
			}
			size += 2 + 2*binary.MaxVarintLen64 + len(op.Key) + len(op.Value)
			if size > MaxBatchPayload {
				return nil, fmt.Errorf("ops exceed %d bytes: split the batch", MaxBatchPayload)
			}
		}
	}
	buf = slices.Grow(buf[:0], size)
	buf = binary.AppendUvarint(buf, uint64(len(b.Entries)))
	for _, e := range b.Entries {
		buf = binary.BigEndian.AppendUint64(buf, e.Index)
		buf = binary.BigEndian.AppendUint64(buf, uint64(e.Time))
		buf = binary.AppendUvarint(buf, uint64(len(e.Ops)))
		for j := range e.Ops {
			buf = wal.AppendOp(buf, &e.Ops[j])
		}
	}
	if len(buf) > MaxBatchPayload {
		return nil, fmt.Errorf("ops of %d bytes exceed %d: split the batch", len(buf), MaxBatchPayload)
	}
	return buf, nil
}

// decodeBatchOps parses the ops of a batch covering [first, last]. Allocation
// is bounded by a small multiple of len(p): counts are checked against the bytes
// left before anything is allocated.
func decodeBatchOps(p []byte, first, last uint64) ([]*wal.Entry, error) {
	count, p, err := readUvarint(p)
	if err != nil {
		return nil, fmt.Errorf("%w: entry count: %v", ErrCorrupt, err)
	}
	if count > uint64(len(p)/batchEntryMinLen) {
		return nil, fmt.Errorf("%w: entry count %d does not fit in %d bytes", ErrCorrupt, count, len(p))
	}
	if count > last-first+1 && last-first+1 != 0 {
		return nil, fmt.Errorf("%w: %d entries in a range of %d", ErrCorrupt, count, last-first+1)
	}
	var entries []*wal.Entry
	if count > 0 {
		entries = make([]*wal.Entry, count)
	}
	for i := range entries {
		if len(p) < batchEntryMinLen {
			return nil, fmt.Errorf("%w: entry %d truncated", ErrCorrupt, i)
		}
		e := &wal.Entry{Index: binary.BigEndian.Uint64(p[0:8]), Time: int64(binary.BigEndian.Uint64(p[8:16]))}
		if e.Index < first || e.Index > last {
			return nil, fmt.Errorf("%w: entry index %d outside the batch range", ErrCorrupt, e.Index)
		}
		if i > 0 && e.Index <= entries[i-1].Index {
			return nil, fmt.Errorf("%w: entry index %d does not follow %d", ErrCorrupt, e.Index, entries[i-1].Index)
		}
		var n uint64
		if n, p, err = readUvarint(p[16:]); err != nil {
			return nil, fmt.Errorf("%w: entry %d op count: %v", ErrCorrupt, e.Index, err)
		}
		if n > uint64(len(p)/opMinLen) {
			return nil, fmt.Errorf("%w: entry %d op count %d does not fit in %d bytes", ErrCorrupt, e.Index, n, len(p))
		}
		if n > 0 {
			e.Ops = make([]wal.Op, n)
		}
		for j := range e.Ops {
			if p, err = wal.DecodeOpShared(p, &e.Ops[j]); err != nil { // plain is this batch's own
				return nil, fmt.Errorf("%w: entry %d op %d: %v", ErrCorrupt, e.Index, j, err)
			}
		}
		entries[i] = e
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after the last entry", ErrCorrupt, len(p))
	}
	return entries, nil
}

func validClass(c wal.Class) bool { return c >= wal.Replicated && c <= wal.Ignored }

// readUvarint reads a uvarint in its shortest form, so encodings are canonical.
func readUvarint(p []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(p)
	if n <= 0 {
		return 0, nil, errors.New("bad uvarint")
	}
	if n != len(binary.AppendUvarint(nil, v)) {
		return 0, nil, errors.New("uvarint not in shortest form")
	}
	return v, p[n:], nil
}

func checkKey(key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("key of %d bytes, want %d", len(key), KeySize)
	}
	return nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
