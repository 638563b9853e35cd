package replication

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"runtime"
	"testing"

	"github.com/cofferhq/coffer/wal"
)

// benchBatch is 256 entries of one 1 KiB put each. Values are random, like the
// ciphertext the barrier stores, so compression gains only on keys and framing.
func benchBatch() (*Batch, int64) {
	b := &Batch{ClusterID: testClusterID, Epoch: 1, First: 1, Last: 256}
	var size int64
	for i := range 256 {
		v := make([]byte, 1024)
		rand.Read(v)
		op := put(fmt.Sprintf("logical/8d3c41aa-0000-1111/data/app/key-%06d", i), "")
		op.Value = v
		b.Entries = append(b.Entries, &wal.Entry{Index: uint64(i + 1), Time: int64(i), Ops: []wal.Op{op}})
		size += int64(len(op.Key) + len(v))
	}
	return b, size
}

func BenchmarkSealBatch(b *testing.B) {
	batch, size := benchBatch()
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SealBatch(batch, testKey, testSigner); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenBatch(b *testing.B) {
	batch, size := benchBatch()
	msg, err := SealBatch(batch, testKey, testSigner)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := OpenBatch(msg, testClusterID, testKey, testPub); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(msg))/float64(size), "wire/raw")
}

// BenchmarkSealBatchOne is one entry of one 1 KiB put: a batch as the
// shipper cuts them under a moderate load (about one write per publish).
func BenchmarkSealBatchOne(b *testing.B) {
	full, _ := benchBatch()
	batch := &Batch{ClusterID: testClusterID, Epoch: 1, First: 1, Last: 1, Entries: full.Entries[:1]}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SealBatch(batch, testKey, testSigner); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenBatchOne opens such a batch (what a secondary pays per
// message while it keeps up).
func BenchmarkOpenBatchOne(b *testing.B) {
	full, _ := benchBatch()
	batch := &Batch{ClusterID: testClusterID, Epoch: 1, First: 1, Last: 1, Entries: full.Entries[:1]}
	msg, err := SealBatch(batch, testKey, testSigner)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := OpenBatch(msg, testClusterID, testKey, testPub); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenBatchOneTagged is BenchmarkOpenBatchOne for a secondary
// that finds its tag among two: it skips the signature.
func BenchmarkOpenBatchOneTagged(b *testing.B) {
	full, _ := benchBatch()
	batch := &Batch{ClusterID: testClusterID, Epoch: 1, First: 1, Last: 1, Entries: full.Entries[:1]}
	mine, err := NewTagKey("dc2", bytes.Repeat([]byte{2}, KeySize))
	if err != nil {
		b.Fatal(err)
	}
	other, _ := NewTagKey("dc3", bytes.Repeat([]byte{3}, KeySize))
	msg, err := SealBatchTagged(batch, testKey, nil, testSigner, []TagKey{other, mine})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := OpenBatchTagged(msg, testClusterID, testKey, nil, testPub, &mine); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealFilteredCopies measures the shipper's cost of a paths filter
// built as per-filter batches (docs/replication.md, "Paths filter"): the
// whole batch sealed once for the unfiltered secondaries, plus one copy per
// distinct filter with the ops of one denied mount (of four) removed before
// sealing. The figure beside BenchmarkSealBatch is the ratio the design
// decision rests on.
func BenchmarkSealFilteredCopies(b *testing.B) {
	full, size := benchBatch()
	for i, e := range full.Entries { // four mounts, a quarter of the keys each
		e.Ops[0].Key = fmt.Sprintf("logical/mount-%d/data/app/key-%06d", i%4, i)
	}
	filtered := func(denied int) *Batch {
		out := &Batch{ClusterID: full.ClusterID, Epoch: full.Epoch, First: full.First, Last: full.Last}
		prefix := fmt.Sprintf("logical/mount-%d/", denied)
		for _, e := range full.Entries {
			if len(e.Ops[0].Key) < len(prefix) || e.Ops[0].Key[:len(prefix)] != prefix {
				out.Entries = append(out.Entries, e)
			}
		}
		return out
	}
	for _, filters := range []int{0, 1, 2, 4} {
		b.Run(fmt.Sprintf("filters=%d", filters), func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := SealBatch(full, testKey, testSigner); err != nil {
					b.Fatal(err)
				}
				for f := range filters {
					if _, err := SealBatch(filtered(f), testKey, testSigner); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// Opening a batch allocates what it returns and little more: the section
// is decrypted into a pooled buffer and the values are slices of the
// inflated ops, not copies (3.4 times the batch's size before, 1.4 after).
func TestOpenBatchAllocatesAboutTheBatch(t *testing.T) {
	batch, size := benchBatch()
	msg, err := SealBatch(batch, testKey, testSigner)
	if err != nil {
		t.Fatal(err)
	}
	open := func() {
		if _, err := OpenBatch(msg, testClusterID, testKey, testPub); err != nil {
			t.Fatal(err)
		}
	}
	open() // the pools filled
	// Under -race sync.Pool drops a quarter of what it is given, each drop
	// a new buffer: more rounds, and a looser bound that the copies (3.4
	// times) still exceed.
	n, limit := 20, 2.0
	if raceEnabled {
		n, limit = 200, 2.6
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		open()
	}
	runtime.ReadMemStats(&after)
	if per := float64(after.TotalAlloc-before.TotalAlloc) / float64(n); per > limit*float64(size) {
		t.Fatalf("opening a batch of %d bytes allocates %.0f bytes (%.1f times)", size, per, per/float64(size))
	}
}
