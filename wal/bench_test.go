package wal

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/rs/zerolog"
)

// BenchmarkWALWrite measures writes/s through the WAL on bolt with fsync on,
// for 1, 16 and 64 concurrent writers, with group commit (MaxBatch default)
// and with one storage transaction per write (MaxBatch 1). Each write is one
// put of a 1 KiB value. It also reports the mean writes per storage transaction.
func BenchmarkWALWrite(b *testing.B) {
	value := make([]byte, 1024)
	for i := range value {
		value[i] = byte(i * 7)
	}
	for _, writers := range []int{1, 16, 64} {
		for _, mode := range []struct {
			name     string
			maxBatch int
		}{{"group", 0}, {"single", 1}} {
			b.Run(fmt.Sprintf("writers=%d/%s", writers, mode.name), func(b *testing.B) {
				be := openBolt(b, filepath.Join(b.TempDir(), "bench.db"), false)
				defer be.Close()
				l, err := Open(context.Background(), be, Options{MaxBatch: mode.maxBatch}, zerolog.Nop())
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				ctx := context.Background()
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for w := 0; w < writers; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							n := next.Add(1)
							if n > int64(b.N) {
								return
							}
							op := &storage.TxnOp{Operation: storage.PutOperation,
								Entry: &storage.Entry{Key: fmt.Sprintf("logical/bench/%012d", n), Value: value}}
							if _, err := l.Write(ctx, []*storage.TxnOp{op}); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
				if st := l.Stats(); st.Batches > 0 {
					b.ReportMetric(float64(st.Writes)/float64(st.Batches), "writes/txn")
				}
			})
		}
	}
}

// BenchmarkEncodeEntry measures encoding one put of a 1 KiB value.
func BenchmarkEncodeEntry(b *testing.B) {
	e := &Entry{Index: 1, Time: 1, Ops: []Op{{Kind: storage.PutOperation, Class: Replicated, Key: "logical/0f1e2d3c/secret/app", Value: make([]byte, 1024)}}}
	b.ReportAllocs()
	for b.Loop() {
		_ = EncodeEntry(e)
	}
}

// BenchmarkDecodeEntry measures decoding it back.
func BenchmarkDecodeEntry(b *testing.B) {
	buf := EncodeEntry(&Entry{Index: 1, Time: 1, Ops: []Op{{Kind: storage.PutOperation, Class: Replicated, Key: "logical/0f1e2d3c/secret/app", Value: make([]byte, 1024)}}})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEntry(buf); err != nil {
			b.Fatal(err)
		}
	}
}
