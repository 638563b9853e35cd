package audit

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"
)

// BenchmarkBrokerKVWrite measures what auditing adds to a typical KV v2 write:
// the request and the response line, through the Broker, to one file device.
func BenchmarkBrokerKVWrite(b *testing.B) {
	br := NewBroker(zerolog.Nop())
	d, err := NewFile("file/", map[string]string{OptionFilePath: filepath.Join(b.TempDir(), "audit.log")}, testSalt)
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Register("file/", d, false); err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	in := kvWrite()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := br.LogRequest(ctx, in); err != nil {
			b.Fatal(err)
		}
		if err := br.LogResponse(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBrokerKVWriteParallel is the same under concurrent requests: the
// lines are formatted in parallel and written one at a time.
func BenchmarkBrokerKVWriteParallel(b *testing.B) {
	br := NewBroker(zerolog.Nop())
	d, err := NewFile("file/", map[string]string{OptionFilePath: filepath.Join(b.TempDir(), "audit.log")}, testSalt)
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Register("file/", d, false); err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		in := kvWrite()
		ctx := context.Background()
		for pb.Next() {
			if err := br.LogRequest(ctx, in); err != nil {
				b.Error(err)
				return
			}
			if err := br.LogResponse(ctx, in); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkHashString is one HMAC as sys/audit-hash computes it.
func BenchmarkHashString(b *testing.B) {
	h := newHasher(testSalt)
	b.ReportAllocs()
	for b.Loop() {
		_ = h.hash(secretValue)
	}
}
