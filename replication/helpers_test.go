package replication

import (
	"bytes"
	"compress/flate"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
)

// Fixed test material: deterministic so fuzz seeds and golden vectors hold.
var (
	testClusterID = "c0ffee00-1111-2222-3333-444455556666"
	testKey       = bytes.Repeat([]byte{0x42}, KeySize)
	otherKey      = bytes.Repeat([]byte{0x43}, KeySize)
	testSigner    = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	otherSigner   = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, ed25519.SeedSize))
	testPub       = testSigner.Public().(ed25519.PublicKey)
	testNow       = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	testSecret    = bytes.Repeat([]byte{0x5e}, ActivationSecretSize)
)

func put(key, value string) wal.Op {
	return wal.Op{Kind: storage.PutOperation, Class: wal.Replicated, Key: key, Value: []byte(value)}
}

func del(key string) wal.Op {
	return wal.Op{Kind: storage.DeleteOperation, Class: wal.Replicated, Key: key}
}

func testBatch() *Batch {
	return &Batch{
		ClusterID: testClusterID,
		Epoch:     3,
		First:     10,
		Last:      20,
		Entries: []*wal.Entry{
			{Index: 10, Time: 1_700_000_000_000_000_000, Ops: []wal.Op{put("logical/abc/data", "ciphertext-1"), del("logical/abc/old")}},
			{Index: 12, Time: 1_700_000_000_000_000_001, Ops: []wal.Op{put("core/mounts", "")}},
			{Index: 20, Time: -1, Ops: []wal.Op{{Kind: storage.PutOperation, Class: wal.Local, Key: "sys/token/x", Value: []byte{0, 1, 2}}}},
		},
		Guard:      bytes.Repeat([]byte{0x6a}, GuardSize),
		Generation: 7,
	}
}

// sealRaw builds a version 1 batch message around arbitrary compressed bytes
// z, signed and sealed like SealBatch does, to reach the decoder behind the
// crypto.
func sealRaw(t testing.TB, epoch uint32, first, last uint64, z []byte) []byte {
	t.Helper()
	return sealRawHeader(t, batchV1Header(epoch, first, last), z)
}

// batchV1Header is a version 1 header.
func batchV1Header(epoch uint32, first, last uint64) []byte {
	h := make([]byte, batchHeaderLen)
	h[0] = batchVersion1
	binary.BigEndian.PutUint32(h[1:5], epoch)
	binary.BigEndian.PutUint64(h[5:13], first)
	binary.BigEndian.PutUint64(h[13:21], last)
	return h
}

// sealRawHeader seals z under an arbitrary header, which is also the AAD's
// header part, and signs it with testSigner.
func sealRawHeader(t testing.TB, header, z []byte) []byte {
	t.Helper()
	aead, err := newGCM(testKey)
	if err != nil {
		t.Fatal(err)
	}
	msg := append(bytes.Clone(header), make([]byte, nonceLen)...)
	msg = aead.Seal(msg, msg[len(header):], z, batchAAD(testClusterID, header))
	if header[0] >= batchVersion {
		msg = append(msg, 0, 0) // no tags
	}
	return signTest(t, msg)
}

// signTest signs body (a batch without its signature) with testSigner by
// the scheme of its version, and appends the signature.
func signTest(t testing.TB, body []byte) []byte {
	t.Helper()
	var sections []byte
	tl := 0
	if body[0] >= batchVersion {
		if tl = tagBlockLen(body, 0); tl < 0 {
			t.Fatalf("no tag block in a version %d batch", body[0])
		}
		d := sha256.Sum256(body[:len(body)-tl])
		sections = d[:]
	}
	sig, err := signBatch(testSigner, body, sections, tl)
	if err != nil {
		t.Fatal(err)
	}
	return append(body, sig...)
}

func deflate(t testing.TB, plain []byte) []byte {
	t.Helper()
	var z bytes.Buffer
	zw, _ := flate.NewWriter(&z, flate.BestSpeed)
	zw.Write(plain)
	zw.Close()
	return z.Bytes()
}
