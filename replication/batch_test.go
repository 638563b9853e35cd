package replication

import (
	"bytes"
	"compress/flate"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
)

func TestBatchRoundTrip(t *testing.T) {
	for name, b := range map[string]*Batch{
		"ops":          testBatch(),
		"no entries":   {ClusterID: testClusterID, Epoch: 1, First: 5, Last: 9},
		"single":       {ClusterID: "x", First: 7, Last: 7, Entries: []*wal.Entry{{Index: 7, Ops: []wal.Op{del("k")}}}},
		"entry no ops": {ClusterID: "x", First: 1, Last: 2, Entries: []*wal.Entry{{Index: 2, Time: 5}}},
		"whole range":  {ClusterID: "", First: 0, Last: ^uint64(0)},
		"guard only":   {ClusterID: "x", First: 3, Last: 3, Guard: make([]byte, GuardSize)},
	} {
		t.Run(name, func(t *testing.T) {
			msg, err := SealBatch(b, testKey, testSigner)
			if err != nil {
				t.Fatal(err)
			}
			epoch, first, last, err := PeekBatch(msg)
			if err != nil || epoch != b.Epoch || first != b.First || last != b.Last {
				t.Fatalf("PeekBatch = %d %d %d %v", epoch, first, last, err)
			}
			got, err := OpenBatch(msg, b.ClusterID, testKey, testPub)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, b) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, b)
			}
		})
	}
}

// TestBatchOpsGolden pins the uncompressed ops encoding: it is part of the
// wire format.
func TestBatchOpsGolden(t *testing.T) {
	b := &Batch{First: 1, Last: 2, Entries: []*wal.Entry{{Index: 2, Time: 3, Ops: []wal.Op{put("a", "xy"), del("b")}}}}
	plain, err := encodeBatchOps(b)
	if err != nil {
		t.Fatal(err)
	}
	const want = "01" + "0000000000000002" + "0000000000000003" + "02" + "0101" + "0161" + "027879" + "0201" + "0162" + "00"
	if got := hex.EncodeToString(plain); got != want {
		t.Fatalf("ops encoding changed:\n got %s\nwant %s", got, want)
	}
	entries, err := decodeBatchOps(plain, 1, 2)
	if err != nil || !reflect.DeepEqual(entries, b.Entries) {
		t.Fatalf("decode = %+v, %v", entries, err)
	}
}

func TestBatchTamperEveryByte(t *testing.T) {
	msg, err := SealBatch(testBatch(), testKey, testSigner)
	if err != nil {
		t.Fatal(err)
	}
	for i := range msg {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(msg)
			bad[i] ^= bit
			if b, err := OpenBatch(bad, testClusterID, testKey, testPub); err == nil || b != nil {
				t.Fatalf("byte %d bit %#x flipped: batch %v, err %v", i, bit, b, err)
			}
		}
	}
	for n := range len(msg) {
		if b, err := OpenBatch(msg[:n], testClusterID, testKey, testPub); err == nil || b != nil {
			t.Fatalf("truncated to %d: batch %v, err %v", n, b, err)
		}
	}
	// A byte more moves where the tag count is read: the tags no longer
	// fit, or the signature covers other bytes.
	if _, err := OpenBatch(append(bytes.Clone(msg), 0), testClusterID, testKey, testPub); !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrCorrupt) {
		t.Fatalf("trailing byte: %v, want ErrBadSignature or ErrCorrupt", err)
	}
}

func TestBatchRejects(t *testing.T) {
	msg, err := SealBatch(testBatch(), testKey, testSigner)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := SealBatch(testBatch(), testKey, otherSigner)
	if err != nil {
		t.Fatal(err)
	}
	next := bytes.Clone(msg)
	next[0] = batchVersion + 1
	for _, tc := range []struct {
		name    string
		msg     []byte
		cluster string
		key     []byte
		want    error
	}{
		{"wrong cluster", msg, "another-cluster", testKey, ErrDecrypt},
		{"wrong key", msg, testClusterID, otherKey, ErrDecrypt},
		{"another signer", foreign, testClusterID, testKey, ErrBadSignature},
		{"unknown version", next, testClusterID, testKey, ErrUnknownVersion},
		{"empty", nil, testClusterID, testKey, ErrCorrupt},
		{"short", msg[:batchMinLen-1], testClusterID, testKey, ErrCorrupt},
	} {
		b, err := OpenBatch(tc.msg, tc.cluster, tc.key, testPub)
		if !errors.Is(err, tc.want) || b != nil {
			t.Errorf("%s: %v, %v; want %v", tc.name, b, err, tc.want)
		}
	}
	// A pure Ed25519 signature by the right key (as on a token) is refused: batch
	// signatures are Ed25519ph with their own context.
	pure := append(bytes.Clone(msg[:len(msg)-sigLen]), ed25519.Sign(testSigner, msg[:len(msg)-sigLen])...)
	if _, err := OpenBatch(pure, testClusterID, testKey, testPub); !errors.Is(err, ErrBadSignature) {
		t.Errorf("pure Ed25519 signature: %v", err)
	}
	if _, err := OpenBatch(msg, testClusterID, testKey[:16], testPub); err == nil {
		t.Error("short key accepted")
	}
	if _, err := OpenBatch(msg, testClusterID, testKey, testPub[:31]); err == nil {
		t.Error("short public key accepted")
	}
}

func TestSealBatchValidates(t *testing.T) {
	bad := []*Batch{
		{First: 5, Last: 4},
		{First: 1, Last: 5, Entries: []*wal.Entry{{Index: 6}}},
		{First: 1, Last: 5, Entries: []*wal.Entry{{Index: 0}}},
		{First: 1, Last: 5, Entries: []*wal.Entry{{Index: 3}, {Index: 3}}},
		{First: 1, Last: 5, Entries: []*wal.Entry{{Index: 3}, {Index: 2}}},
		{First: 1, Last: 5, Entries: []*wal.Entry{nil}},
		{First: 1, Last: 5, Entries: []*wal.Entry{{Index: 1, Ops: []wal.Op{put("", "v")}}}},
		{First: 1, Last: 5, Entries: []*wal.Entry{{Index: 1, Ops: []wal.Op{put("a\x00b", "v")}}}},
		{First: 1, Last: 5, Entries: []*wal.Entry{{Index: 1, Ops: []wal.Op{{Kind: 3, Class: wal.Replicated, Key: "k"}}}}},
		{First: 1, Last: 5, Entries: []*wal.Entry{{Index: 1, Ops: []wal.Op{{Kind: storage.PutOperation, Class: 9, Key: "k"}}}}},
	}
	for i, b := range bad {
		if _, err := SealBatch(b, testKey, testSigner); err == nil {
			t.Errorf("batch %d sealed", i)
		}
	}
	if _, err := SealBatch(testBatch(), testKey[:31], testSigner); err == nil {
		t.Error("short key accepted")
	}
	if _, err := SealBatch(testBatch(), testKey, testSigner[:10]); err == nil {
		t.Error("short signing key accepted")
	}
	// A delete's value is not shipped, as in the WAL entry encoding.
	b := &Batch{First: 1, Last: 1, Entries: []*wal.Entry{{Index: 1, Ops: []wal.Op{{Kind: storage.DeleteOperation, Class: wal.Replicated, Key: "k", Value: []byte("x")}}}}}
	msg, err := SealBatch(b, testKey, testSigner)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenBatch(msg, "", testKey, testPub)
	if err != nil || got.Entries[0].Ops[0].Value != nil {
		t.Fatalf("delete value shipped: %+v %v", got, err)
	}
}

// TestBatchDecodeRejects feeds authenticated but malformed plaintexts: only a
// buggy or hostile primary can produce them.
func TestBatchDecodeRejects(t *testing.T) {
	entry := func(index uint64, ops ...byte) []byte {
		p := binary.BigEndian.AppendUint64(nil, index)
		p = binary.BigEndian.AppendUint64(p, 0)
		return append(p, ops...)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for name, plain := range map[string][]byte{
		"empty":             {},
		"count too big":     {5},
		"non-minimal count": {0x80, 0x00},
		"trailing":          {0, 1},
		"index below first": cat([]byte{1}, entry(9, 0)),
		"index above last":  cat([]byte{1}, entry(21, 0)),
		"not increasing":    cat([]byte{2}, entry(12, 0), entry(12, 0)),
		"bad kind":          cat([]byte{1}, entry(12, 1, 3, 1, 1, 'k', 0)),
		"bad class":         cat([]byte{1}, entry(12, 1, 1, 0, 1, 'k', 0)),
		"empty key":         cat([]byte{1}, entry(12, 1, 1, 1, 0, 0)),
		"nul key":           cat([]byte{1}, entry(12, 1, 1, 1, 1, 0, 0)),
		"delete with value": cat([]byte{1}, entry(12, 1, 2, 1, 1, 'k', 1, 'v')),
		"value too long":    cat([]byte{1}, entry(12, 1, 1, 1, 1, 'k', 9, 'v')),
		"op count too big":  cat([]byte{1}, entry(12, 9, 1, 1, 1, 'k', 0)),
		"too many entries":  cat([]byte{3}, entry(10, 0), entry(11, 0), entry(12, 0)),
	} {
		first, last := uint64(10), uint64(20)
		if name == "too many entries" {
			last = 11
		}
		msg := sealRaw(t, 1, first, last, deflate(t, plain))
		if b, err := OpenBatch(msg, testClusterID, testKey, testPub); !errors.Is(err, ErrCorrupt) || b != nil {
			t.Errorf("%s: %v, %v; want ErrCorrupt", name, b, err)
		}
	}
	// Junk after the final flate block.
	z := append(deflate(t, []byte{0}), 0xff)
	if _, err := OpenBatch(sealRaw(t, 1, 10, 20, z), testClusterID, testKey, testPub); !errors.Is(err, ErrCorrupt) {
		t.Errorf("junk after flate stream: %v", err)
	}
	if _, err := OpenBatch(sealRaw(t, 1, 10, 20, []byte("not flate")), testClusterID, testKey, testPub); !errors.Is(err, ErrCorrupt) {
		t.Errorf("not flate: %v", err)
	}
}

// TestBatchZipBomb: a signed, sealed batch whose ops inflate past
// MaxBatchPayload fails with ErrCorrupt instead of exhausting memory.
func TestBatchZipBomb(t *testing.T) {
	if testing.Short() {
		t.Skip("inflates 64 MiB")
	}
	var z bytes.Buffer
	zw, _ := flate.NewWriter(&z, flate.BestCompression)
	if _, err := io.CopyN(zw, zeroReader{}, MaxBatchPayload+1); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	msg := sealRaw(t, 1, 1, 1, z.Bytes())
	t.Logf("bomb: %d bytes inflating to %d", len(msg), MaxBatchPayload+1)
	if _, err := OpenBatch(msg, testClusterID, testKey, testPub); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bomb: %v, want ErrCorrupt", err)
	}
	// The same with the bound lowered, cheaply.
	if _, err := openBatch(sealRaw(t, 1, 1, 1, deflate(t, make([]byte, 1025))), testClusterID, testKey, nil, testPub, nil, 1024); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("small bound: %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestBatchHostileCountsAllocateLittle: counts claiming billions of entries or
// ops are refused before anything is allocated for them.
func TestBatchHostileCountsAllocateLittle(t *testing.T) {
	huge := binary.AppendUvarint(nil, 1<<60)
	entry := binary.BigEndian.AppendUint64(nil, 10)
	entry = binary.BigEndian.AppendUint64(entry, 0)
	inputs := [][]byte{
		append(bytes.Clone(huge), make([]byte, 64)...),
		append(append([]byte{1}, entry...), append(bytes.Clone(huge), make([]byte, 64)...)...),
	}
	for i, in := range inputs {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := decodeBatchOps(in, 0, ^uint64(0)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("input %d: %v", i, err)
		}
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > 64<<10 {
			t.Errorf("input %d allocated %d bytes", i, d)
		}
	}
}

// TestBatchVersion1StillOpens: a version 1 batch (no guard field) from a
// primary not yet upgraded opens, without a guard.
func TestBatchVersion1StillOpens(t *testing.T) {
	want := testBatch()
	want.Guard, want.Generation = nil, 0
	plain, err := encodeBatchOps(want)
	if err != nil {
		t.Fatal(err)
	}
	msg := sealRaw(t, want.Epoch, want.First, want.Last, deflate(t, plain))
	if msg[0] != 1 {
		t.Fatalf("version %d", msg[0])
	}
	epoch, first, last, err := PeekBatch(msg)
	if err != nil || epoch != want.Epoch || first != want.First || last != want.Last {
		t.Fatalf("PeekBatch = %d %d %d %v", epoch, first, last, err)
	}
	got, err := OpenBatch(msg, testClusterID, testKey, testPub)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("version 1:\n got %+v\nwant %+v", got, want)
	}
}

// TestBatchGuardIsAuthenticated: the guard sits in the header, under the
// signature and in the GCM associated data. Replacing, dropping or adding a
// guard fails the signature; re-signed by the primary's key (which a
// secondary holding only the replication key cannot do) it still fails GCM.
func TestBatchGuardIsAuthenticated(t *testing.T) {
	b := testBatch()
	msg, err := SealBatch(b, testKey, testSigner)
	if err != nil {
		t.Fatal(err)
	}
	g0 := batchHeaderLen + genLen + drLenLen // where the guard length sits
	if msg[0] != batchVersion || msg[g0] != GuardSize || !bytes.Equal(msg[g0+1:g0+1+GuardSize], b.Guard) {
		t.Fatalf("header % x does not carry the guard", msg[:g0+1+GuardSize])
	}
	hlen := g0 + 1 + GuardSize
	rest := msg[hlen : len(msg)-sigLen] // nonce and GCM output
	resign := func(header []byte) []byte {
		return signTest(t, append(bytes.Clone(header), rest...))
	}
	other := bytes.Clone(msg[:hlen])
	other[hlen-1] ^= 1
	dropped := append(bytes.Clone(msg[:g0]), 0)
	gen := bytes.Clone(msg[:hlen])
	gen[g0-drLenLen-1] ^= 1 // the generation's last byte
	for name, tc := range map[string]struct {
		msg  []byte
		want error
	}{
		"guard altered":            {append(append(bytes.Clone(other), rest...), msg[len(msg)-sigLen:]...), ErrBadSignature},
		"guard dropped":            {append(append(bytes.Clone(dropped), rest...), msg[len(msg)-sigLen:]...), ErrBadSignature},
		"guard altered, re-signed": {resign(other), ErrDecrypt},
		"guard dropped, re-signed": {resign(dropped), ErrDecrypt},
		"generation altered":       {append(append(bytes.Clone(gen), rest...), msg[len(msg)-sigLen:]...), ErrBadSignature},
		"generation re-signed":     {resign(gen), ErrDecrypt},
	} {
		got, err := OpenBatch(tc.msg, testClusterID, testKey, testPub)
		if !errors.Is(err, tc.want) || got != nil {
			t.Errorf("%s: %v, %v; want %v", name, got, err, tc.want)
		}
	}
	// A guard of another length is refused by the sealer and the opener.
	bad := testBatch()
	bad.Guard = bad.Guard[:31]
	if _, err := SealBatch(bad, testKey, testSigner); err == nil {
		t.Error("sealed a 31-byte guard")
	}
	short := append(bytes.Clone(msg[:g0]), 31)
	short = append(short, make([]byte, 31)...)
	if _, err := OpenBatch(sealRawHeader(t, append(short, 0), []byte{}), testClusterID, testKey, testPub); !errors.Is(err, ErrCorrupt) {
		t.Errorf("31-byte guard: %v, want ErrCorrupt", err)
	}
}

// TestBatchDRSection: the local ops travel in the DR section, sealed under
// the DR key: OpenBatch (a performance secondary, with the replication key
// only) gets the replicated ops and nothing of the section; OpenBatchDR
// merges both, an index in both sections into one entry; the wrong DR key
// or an altered section fails, and the section is under the signature.
func TestBatchDRSection(t *testing.T) {
	drKey := bytes.Repeat([]byte{0xd2}, KeySize)
	b := testBatch()
	b.Entries = b.Entries[:2] // 10 and 12: replicated
	b.DREntries = []*wal.Entry{
		{Index: 12, Time: 1, Ops: []wal.Op{{Kind: storage.PutOperation, Class: wal.Local, Key: "sys/token/id/abc", Value: []byte("tok")}}},
		{Index: 15, Time: 2, Ops: []wal.Op{{Kind: storage.PutOperation, Class: wal.Local, Key: "sys/expire/x", Value: []byte("lease")}}},
	}
	if _, err := SealBatch(b, testKey, testSigner); err == nil {
		t.Fatal("SealBatch sealed DR entries without the DR key")
	}
	msg, err := SealBatchDR(b, testKey, drKey, testSigner)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(msg, []byte("sys/token/id/abc")) || bytes.Contains(msg, []byte("lease")) {
		t.Fatal("the DR section is in clear")
	}
	perf, err := OpenBatch(msg, testClusterID, testKey, testPub)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range perf.Entries {
		for _, op := range e.Ops {
			if op.Class == wal.Local {
				t.Fatalf("a performance secondary opened a local op: %+v", op)
			}
		}
	}
	dr, err := OpenBatchDR(msg, testClusterID, testKey, drKey, testPub)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range dr.Entries {
		for _, op := range e.Ops {
			got = append(got, fmt.Sprintf("%d:%s", e.Index, op.Key))
		}
	}
	want := "10:logical/abc/data 10:logical/abc/old 12:core/mounts 12:sys/token/id/abc 15:sys/expire/x"
	if strings.Join(got, " ") != want {
		t.Fatalf("DR entries %q, want %q", strings.Join(got, " "), want)
	}
	if _, err := OpenBatchDR(msg, testClusterID, testKey, bytes.Repeat([]byte{1}, KeySize), testPub); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong DR key: %v", err)
	}
	altered := bytes.Clone(msg)
	altered[len(altered)-sigLen-1] ^= 1 // the DR section's tag
	if _, err := OpenBatchDR(altered, testClusterID, testKey, drKey, testPub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("altered DR section: %v", err)
	}
	// Without DR entries: no section, and OpenBatchDR opens it all the same.
	b.DREntries = nil
	plain, err := SealBatchDR(b, testKey, drKey, testSigner)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := OpenBatchDR(plain, testClusterID, testKey, drKey, testPub); err != nil || len(got.Entries) != 2 {
		t.Fatalf("no DR section: %v, %+v", err, got)
	}
}

// Version 3 (Ed25519ph over SHA-512) and 4 (Ed25519ctx over SHA-256)
// batches still open; each version's signature verifies under its own
// scheme only, so a batch cannot be passed off under another one's.
func TestBatchVersion3StillOpens(t *testing.T) {
	msgs := map[byte][]byte{}
	for _, v := range []byte{batchVersion3, batchVersion4} {
		m, err := sealBatchAs(v, testBatch(), testKey, nil, testSigner, nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs[v] = m
	}
	v5, err := SealBatch(testBatch(), testKey, testSigner)
	if err != nil {
		t.Fatal(err)
	}
	if v5[0] != batchVersion || batchVersion != 5 {
		t.Fatalf("SealBatch writes version %d, want 5", v5[0])
	}
	msgs[batchVersion] = v5
	want := testBatch()
	for v, msg := range msgs {
		got, err := OpenBatch(msg, testClusterID, testKey, testPub)
		if err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
		if msg[0] != v || !reflect.DeepEqual(got.Entries, want.Entries) || got.Generation != want.Generation || !bytes.Equal(got.Guard, want.Guard) {
			t.Fatalf("version %d:\n got %+v\nwant %+v", v, got, want)
		}
	}
	// Each body signed by another version's scheme: refused.
	schemes := map[byte]func(body []byte) ([]byte, *ed25519.Options){
		batchVersion3: func(body []byte) ([]byte, *ed25519.Options) { d := sha512.Sum512(body); return d[:], batchSigOpts },
		batchVersion4: func(body []byte) ([]byte, *ed25519.Options) { d := sha256.Sum256(body); return d[:], batchSigV4 },
		batchVersion: func(body []byte) ([]byte, *ed25519.Options) {
			tl := max(tagBlockLen(body, 0), 0)
			d := sha256.Sum256(body[:len(body)-tl])
			return sigDigest(append([]byte{batchVersion}, body[1:]...), d[:], tl)
		},
	}
	for v, msg := range msgs {
		body := msg[:len(msg)-sigLen]
		for sv, scheme := range schemes {
			if sv == v {
				continue
			}
			digest, opts := scheme(body)
			sig, err := testSigner.Sign(nil, digest, opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := OpenBatch(append(bytes.Clone(body), sig...), testClusterID, testKey, testPub); err == nil {
				t.Fatalf("version %d signed by version %d's scheme: opened", v, sv)
			}
		}
	}
}
