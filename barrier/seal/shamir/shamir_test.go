package shamir

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

type vector struct {
	Name      string   `json:"name"`
	Secret    string   `json:"secret"`
	Parts     int      `json:"parts"`
	Threshold int      `json:"threshold"`
	Shares    []string `json:"shares"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	data, err := os.ReadFile("testdata/shamir_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Vectors []vector }
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	return f.Vectors
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// subsets calls fn with every k-element subset of shares, in order.
func subsets(shares [][]byte, k int, fn func([][]byte)) {
	idx := make([]int, k)
	for i := range idx {
		idx[i] = i
	}
	pick := make([][]byte, k)
	for {
		for i, j := range idx {
			pick[i] = shares[j]
		}
		fn(pick)
		i := k - 1
		for i >= 0 && idx[i] == len(shares)-k+i {
			i--
		}
		if i < 0 {
			return
		}
		idx[i]++
		for j := i + 1; j < k; j++ {
			idx[j] = idx[j-1] + 1
		}
	}
}

// TestVaultVectors: shares made by github.com/hashicorp/vault/shamir, which
// Coffer used before, recombine here from every threshold-sized subset, and
// (for secrets long enough that a chance match is negligible) no subset one
// share short yields the secret.
func TestVaultVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		secret := mustHex(t, v.Secret)
		shares := make([][]byte, len(v.Shares))
		for i, s := range v.Shares {
			shares[i] = mustHex(t, s)
			if len(shares[i]) != len(secret)+1 {
				t.Fatalf("%s: share %d is %d bytes, want %d", v.Name, i+1, len(shares[i]), len(secret)+1)
			}
		}
		if len(shares) != v.Parts {
			t.Fatalf("%s: %d shares, want %d", v.Name, len(shares), v.Parts)
		}
		n := 0
		subsets(shares, v.Threshold, func(sub [][]byte) {
			n++
			got, err := Combine(sub)
			if err != nil {
				t.Fatalf("%s: Combine: %v", v.Name, err)
			}
			if !bytes.Equal(got, secret) {
				t.Fatalf("%s: Combine = %x, want %x", v.Name, got, secret)
			}
		})
		// All shares, in reverse order.
		all := slices.Clone(shares)
		slices.Reverse(all)
		if got, err := Combine(all); err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("%s: Combine(all shares) = %x, %v", v.Name, got, err)
		}
		if len(secret) >= 16 && v.Threshold >= 3 {
			subsets(shares, v.Threshold-1, func(sub [][]byte) {
				if got, err := Combine(sub); err != nil || bytes.Equal(got, secret) {
					t.Fatalf("%s: %d shares (threshold %d) gave %x, %v", v.Name, len(sub), v.Threshold, got, err)
				}
			})
		}
		t.Logf("%s: %d subsets", v.Name, n)
	}
}

// TestProperty: for random secrets and (parts, threshold), random subsets of
// at least threshold shares rebuild the secret and subsets one share short do
// not.
func TestProperty(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x5ea1))
	iterations := 300
	if testing.Short() {
		iterations = 50
	}
	for it := range iterations {
		maxParts := 12
		if it%25 == 0 {
			maxParts = MaxParts
		}
		parts := 2 + rng.IntN(maxParts-1)
		threshold := 2 + rng.IntN(parts-1)
		secret := make([]byte, 1+rng.IntN(64))
		for i := range secret {
			secret[i] = byte(rng.Uint32())
		}
		shares, err := Split(secret, parts, threshold)
		if err != nil {
			t.Fatalf("Split(%d bytes, %d, %d): %v", len(secret), parts, threshold, err)
		}
		checkShares(t, shares, len(secret), parts)
		for range 4 {
			k := threshold + rng.IntN(parts-threshold+1)
			sub := pickRandom(rng, shares, k)
			got, err := Combine(sub)
			if err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("seed %d, %d of %d (threshold %d): Combine = %x, %v, want %x", seed, k, parts, threshold, got, err, secret)
			}
		}
		short := pickRandom(rng, shares, threshold-1)
		got, err := Combine(short)
		switch {
		case threshold == 2:
			if err == nil {
				t.Fatalf("Combine of one share: no error")
			}
		case err != nil:
			t.Fatalf("Combine of %d shares: %v", threshold-1, err)
		case len(secret) >= 16 && bytes.Equal(got, secret):
			t.Fatalf("seed %d: %d shares below threshold %d rebuilt the %d-byte secret", seed, threshold-1, threshold, len(secret))
		}
	}
}

func pickRandom(rng *rand.Rand, shares [][]byte, k int) [][]byte {
	perm := rng.Perm(len(shares))[:k]
	out := make([][]byte, k)
	for i, j := range perm {
		out[i] = shares[j]
	}
	return out
}

// checkShares checks the layout: parts shares of n+1 bytes, with distinct
// non-zero x coordinates in the last byte.
func checkShares(t *testing.T, shares [][]byte, n, parts int) {
	t.Helper()
	if len(shares) != parts {
		t.Fatalf("%d shares, want %d", len(shares), parts)
	}
	var seen [256]bool
	for i, s := range shares {
		if len(s) != n+1 {
			t.Fatalf("share %d is %d bytes, want %d", i+1, len(s), n+1)
		}
		x := s[n]
		if x == 0 || seen[x] {
			t.Fatalf("share %d: x = %d (zero or repeated)", i+1, x)
		}
		seen[x] = true
	}
}

// TestCoordinatesRandom: x coordinates are a random choice, not a fixed
// sequence; with all 255 parts they are a permutation of 1..255.
func TestCoordinatesRandom(t *testing.T) {
	firsts := map[byte]bool{}
	for range 500 {
		shares, err := Split([]byte{42}, 3, 2)
		if err != nil {
			t.Fatal(err)
		}
		checkShares(t, shares, 1, 3)
		firsts[shares[0][1]] = true
	}
	// 500 uniform draws from 255 values hit about 220 of them.
	if len(firsts) < 150 {
		t.Fatalf("the first share's x took only %d values in 500 splits", len(firsts))
	}
	a, _ := Split([]byte("0123456789abcdef"), MaxParts, 2)
	b, _ := Split([]byte("0123456789abcdef"), MaxParts, 2)
	checkShares(t, a, 16, MaxParts)
	xa, xb := make([]byte, MaxParts), make([]byte, MaxParts)
	for i := range a {
		xa[i], xb[i] = a[i][16], b[i][16]
	}
	if bytes.Equal(xa, xb) {
		t.Fatal("two splits used the same order of x coordinates")
	}
}

// TestSplitFresh: two splits of one secret share nothing, a share is never
// the secret, and Split keeps no reference to the secret.
func TestSplitFresh(t *testing.T) {
	secret := []byte("a 32-byte secret, for the test!!")
	orig := slices.Clone(secret)
	a, err := Split(secret, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Split(secret, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if bytes.Equal(a[i][:32], secret) {
			t.Fatalf("share %d carries the secret in clear", i+1)
		}
		for j := range b {
			if bytes.Equal(a[i], b[j]) {
				t.Fatalf("two splits gave the same share")
			}
		}
	}
	clear(secret)
	got, err := Combine(a[1:4])
	if err != nil || !bytes.Equal(got, orig) {
		t.Fatalf("Combine after the caller cleared its secret = %x, %v", got, err)
	}
	// Shares of different splits do not combine into the secret.
	// (Combine fails instead when b[2] has the x of a[0] or a[1].)
	if got, err := Combine([][]byte{a[0], a[1], b[2]}); err == nil && bytes.Equal(got, orig) {
		t.Fatal("shares of two splits rebuilt the secret")
	}
}

func TestSplitErrors(t *testing.T) {
	for _, c := range []struct {
		secret           []byte
		parts, threshold int
		want             string
	}{
		{nil, 3, 2, "empty secret"},
		{[]byte{}, 3, 2, "empty secret"},
		{[]byte{1}, 3, 1, "at least 2"},
		{[]byte{1}, 3, 0, "at least 2"},
		{[]byte{1}, 1, 1, "at least 2"},
		{[]byte{1}, 3, -1, "at least 2"},
		{[]byte{1}, 2, 3, "cannot be less than threshold"},
		{[]byte{1}, 0, 2, "cannot be less than threshold"},
		{[]byte{1}, 256, 2, "cannot exceed 255"},
		{[]byte{1}, 300, 256, "cannot exceed 255"},
	} {
		shares, err := Split(c.secret, c.parts, c.threshold)
		if err == nil || !strings.Contains(err.Error(), c.want) || shares != nil {
			t.Errorf("Split(%x, %d, %d) = %d shares, %v; want an error containing %q", c.secret, c.parts, c.threshold, len(shares), err, c.want)
		}
	}
	// The bounds themselves are accepted.
	for _, c := range []struct{ parts, threshold int }{{2, 2}, {255, 2}, {255, 255}} {
		if _, err := Split([]byte{7}, c.parts, c.threshold); err != nil {
			t.Errorf("Split(%d, %d): %v", c.parts, c.threshold, err)
		}
	}
}

func TestCombineErrors(t *testing.T) {
	ok := []byte{1, 2, 3}
	many := make([][]byte, 256)
	for i := range many {
		many[i] = []byte{0, byte(i)}
	}
	for _, c := range []struct {
		name   string
		shares [][]byte
		want   string
	}{
		{"none", nil, "at least 2"},
		{"one", [][]byte{ok}, "at least 2"},
		{"too short", [][]byte{{1}, {2}}, "at least 2 bytes"},
		{"empty", [][]byte{{}, {}}, "at least 2 bytes"},
		{"lengths differ", [][]byte{ok, {1, 2, 4}, {1, 5}}, "share 3 is 2 bytes"},
		{"longer", [][]byte{ok, {1, 2, 3, 4}}, "same length"},
		{"x zero", [][]byte{ok, {1, 2, 0}}, "share 2 has x coordinate 0"},
		{"same x", [][]byte{{9, 9, 7}, ok, {1, 2, 7}}, "shares 1 and 3 have the same x coordinate (7)"},
		{"same share", [][]byte{ok, ok}, "same x coordinate"},
		{"over 255", many, "at most 255"},
	} {
		got, err := Combine(c.shares)
		if err == nil || !strings.Contains(err.Error(), c.want) || got != nil {
			t.Errorf("%s: Combine = %x, %v; want an error containing %q", c.name, got, err, c.want)
		}
	}
}

func BenchmarkSplit32of5x3(b *testing.B) {
	secret := make([]byte, 32)
	for range b.N {
		if _, err := Split(secret, 5, 3); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCombine32x3(b *testing.B) {
	shares, _ := Split(make([]byte, 32), 5, 3)
	for range b.N {
		if _, err := Combine(shares[:3]); err != nil {
			b.Fatal(err)
		}
	}
}
