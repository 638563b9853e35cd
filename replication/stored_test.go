package replication

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// The hand-framed stream is standard DEFLATE: compress/flate's reader, what
// an older secondary inflates with, reads it back; unstore takes it apart in
// place to the same bytes.
func TestStoredBlocksAreDeflate(t *testing.T) {
	for _, n := range []int{0, 1, 1000, maxStored - 1, maxStored, maxStored + 1, 3*maxStored + 17} {
		plain := make([]byte, n)
		for i := range plain {
			plain[i] = byte(rand.IntN(256))
		}
		z := appendStored([]byte("prefix"), plain)[len("prefix"):]
		if len(z) != storedLen(n) {
			t.Fatalf("%d bytes: stream of %d, storedLen says %d", n, len(z), storedLen(n))
		}
		got, err := io.ReadAll(flate.NewReader(bytes.NewReader(z)))
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: compress/flate read %d bytes back, %v", n, len(got), err)
		}
		out, ok, err := unstore(bytes.Clone(z), n)
		if !ok || err != nil || !bytes.Equal(out, plain) {
			t.Fatalf("%d bytes: unstore = %d bytes, %v, %v", n, len(out), ok, err)
		}
		if _, _, err := unstore(bytes.Clone(z), n-1); n > 0 && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%d bytes past a bound of %d: %v, want ErrCorrupt", n, n-1, err)
		}
	}
}

// A compressed stream (an older primary's) is left as it is, for inflate.
func TestUnstoreLeavesACompressedStream(t *testing.T) {
	z := deflate(t, bytes.Repeat([]byte("coffer "), 1000))
	before := bytes.Clone(z)
	out, ok, err := unstore(z, 1<<20)
	if ok || err != nil || out != nil || !bytes.Equal(z, before) {
		t.Fatalf("unstore of a compressed stream = %v, %v, %v; changed %v", out, ok, err, !bytes.Equal(z, before))
	}
	got, err := inflate(z, 1<<20)
	if err != nil || !bytes.Equal(got, bytes.Repeat([]byte("coffer "), 1000)) {
		t.Fatalf("inflate after unstore: %v", err)
	}
}

// A malformed stream of stored blocks is refused, as inflate refuses it.
func TestUnstoreRefusesMalformedStreams(t *testing.T) {
	good := appendStored(nil, bytes.Repeat([]byte{7}, 2*maxStored))
	cases := map[string][]byte{
		"empty":                 {},
		"header cut short":      good[:3],
		"data cut short":        good[:100],
		"no final block":        good[:storedHeaderLen+maxStored],
		"bytes after the final": append(bytes.Clone(good), 0),
		"NLEN wrong": func() []byte {
			z := bytes.Clone(good)
			z[3] ^= 1
			return z
		}(),
	}
	for name, z := range cases {
		if _, ok, err := unstore(bytes.Clone(z), 1<<20); ok || !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: unstore = %v, %v; want ErrCorrupt", name, ok, err)
		}
		if _, err := inflate(bytes.Clone(z), 1<<20); err == nil {
			t.Errorf("%s: inflate accepts what unstore refuses", name)
		}
	}
}

// unstore and inflate agree on every stream: where unstore takes a stream,
// inflate reads the same bytes from it; where unstore refuses it, so does
// inflate.
func FuzzUnstore(f *testing.F) {
	f.Add(appendStored(nil, []byte("coffer")), 100)
	// Two blocks (small: the fuzzer slows to a crawl on inputs of 64 KiB).
	f.Add([]byte{0, 3, 0, 0xfc, 0xff, 'a', 'b', 'c', 1, 2, 0, 0xfd, 0xff, 'd', 'e'}, 100)
	f.Add([]byte{0, 1, 0, 0xfe, 0xff, 9, 1, 0, 0, 0xff, 0xff}, 10)
	f.Fuzz(func(t *testing.T, z []byte, max int) {
		if max < 0 || max > 1<<20 {
			max = 1 << 20
		}
		want, ierr := inflate(bytes.Clone(z), max)
		out, ok, err := unstore(bytes.Clone(z), max)
		switch {
		case ok && (ierr != nil || !bytes.Equal(out, want)):
			t.Fatalf("unstore took %x as %x; inflate: %x, %v", z, out, want, ierr)
		case err != nil && ierr == nil:
			t.Fatalf("unstore refused %x (%v), inflate read %x", z, err, want)
		}
	})
}
