package shamir

import (
	"bytes"
	"slices"
	"testing"
)

// FuzzCombine cuts data into n shares of equal length: Combine must not
// panic, a success returns one byte less than a share, and the result does
// not depend on the order of the shares.
func FuzzCombine(f *testing.F) {
	s, _ := Split([]byte("seed secret"), 4, 3)
	f.Add(bytes.Join(s, nil), uint8(4))
	f.Add([]byte{1, 2, 3, 4}, uint8(2))
	f.Add([]byte{1, 0, 3, 0}, uint8(2))
	f.Add([]byte{1, 1, 1, 1, 1, 1}, uint8(3))
	f.Add([]byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, n uint8) {
		k := int(n)
		if k == 0 {
			k = 1
		}
		size := len(data) / k
		shares := make([][]byte, k)
		for i := range shares {
			shares[i] = data[i*size : (i+1)*size]
		}
		got, err := Combine(shares)
		if err != nil {
			return
		}
		if len(got) != size-1 {
			t.Fatalf("Combine returned %d bytes from %d-byte shares", len(got), size)
		}
		rev := slices.Clone(shares)
		slices.Reverse(rev)
		again, err := Combine(rev)
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("reversed shares: %x, %v; want %x", again, err, got)
		}
	})
}

// FuzzSplitCombine: whatever Split accepts, its first and last threshold
// shares rebuild the secret.
func FuzzSplitCombine(f *testing.F) {
	f.Add([]byte{0}, uint8(2), uint8(2))
	f.Add([]byte("0123456789abcdef0123456789abcdef"), uint8(5), uint8(3))
	f.Add([]byte{0xff, 0x00}, uint8(255), uint8(255))
	f.Add([]byte{}, uint8(3), uint8(2))
	f.Add([]byte{1}, uint8(3), uint8(1))
	f.Fuzz(func(t *testing.T, secret []byte, parts, threshold uint8) {
		shares, err := Split(secret, int(parts), int(threshold))
		if err != nil {
			if len(secret) > 0 && threshold >= 2 && parts >= threshold {
				t.Fatalf("Split(%d bytes, %d, %d): %v", len(secret), parts, threshold, err)
			}
			return
		}
		for _, sub := range [][][]byte{shares[:threshold], shares[int(parts)-int(threshold):]} {
			got, err := Combine(sub)
			if err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("Combine = %x, %v; want %x", got, err, secret)
			}
		}
	})
}
