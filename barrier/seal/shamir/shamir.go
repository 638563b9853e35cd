package shamir

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// MaxParts is the largest number of shares: x ranges over the 255 non-zero
// elements of GF(2^8).
const MaxParts = 255

// Split divides secret into parts shares, any threshold of which rebuild it
// with Combine. Each share is len(secret)+1 bytes: y bytes then the x
// coordinate (see the package doc). It needs 2 <= threshold <= parts <= 255
// and a non-empty secret. The secret is not retained.
func Split(secret []byte, parts, threshold int) ([][]byte, error) {
	switch {
	case len(secret) == 0:
		return nil, errors.New("shamir: cannot split an empty secret")
	case threshold < 2:
		return nil, fmt.Errorf("shamir: threshold is %d, must be at least 2", threshold)
	case parts < threshold:
		return nil, fmt.Errorf("shamir: parts (%d) cannot be less than threshold (%d)", parts, threshold)
	case parts > MaxParts:
		return nil, fmt.Errorf("shamir: parts is %d, cannot exceed %d", parts, MaxParts)
	}
	xs, err := randomCoordinates(parts)
	if err != nil {
		return nil, err
	}
	// coeffs holds, for each byte of the secret, the threshold-1 random
	// coefficients of degree 1 to threshold-1 of its polynomial.
	deg := threshold - 1
	coeffs := make([]byte, len(secret)*deg)
	defer clear(coeffs)
	if _, err := rand.Read(coeffs); err != nil {
		return nil, fmt.Errorf("shamir: read random coefficients: %w", err)
	}
	shares := make([][]byte, parts)
	for i, x := range xs {
		share := make([]byte, len(secret)+1)
		for j, s := range secret {
			c := coeffs[j*deg : (j+1)*deg]
			// Horner: ((c[d-1]·x + c[d-2])·x + ... + c[0])·x + s.
			y := c[deg-1]
			for k := deg - 2; k >= 0; k-- {
				y = mul(y, x) ^ c[k]
			}
			share[j] = mul(y, x) ^ s
		}
		share[len(secret)] = x
		shares[i] = share
	}
	return shares, nil
}

// randomCoordinates returns n distinct x coordinates in 1..255: the first n
// of a uniformly random permutation (Fisher-Yates with crypto/rand).
func randomCoordinates(n int) ([]byte, error) {
	var all [MaxParts]byte
	for i := range all {
		all[i] = byte(i + 1)
	}
	for i := len(all) - 1; i > 0; i-- {
		j, err := randomIndex(i + 1)
		if err != nil {
			return nil, err
		}
		all[i], all[j] = all[j], all[i]
	}
	return append([]byte(nil), all[:n]...), nil
}

// randomIndex returns a uniform integer in [0, n) for 1 <= n <= 256, by
// rejecting the bytes above the largest multiple of n.
func randomIndex(n int) (int, error) {
	limit := 256 - 256%n
	var b [1]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("shamir: read random coordinates: %w", err)
		}
		if int(b[0]) < limit {
			return int(b[0]) % n, nil
		}
	}
}

// Combine rebuilds the secret from shares made by Split: at least two, all of
// the same length (at least 2 bytes), with distinct non-zero x coordinates.
// Given at least the threshold of one split it returns that secret; given
// fewer, or shares of different splits, it returns a wrong value without an
// error. Errors name shares by their 1-based position.
func Combine(shares [][]byte) ([]byte, error) {
	if len(shares) < 2 {
		return nil, fmt.Errorf("shamir: %d share(s) given, at least 2 are needed", len(shares))
	}
	size := len(shares[0])
	if size < 2 {
		return nil, fmt.Errorf("shamir: share 1 is %d byte(s), a share is at least 2 bytes", size)
	}
	if len(shares) > MaxParts {
		return nil, fmt.Errorf("shamir: %d shares given, a split has at most %d", len(shares), MaxParts)
	}
	var seen [256]int // x -> 1-based position of the share that has it
	xs := make([]byte, len(shares))
	for i, s := range shares {
		if len(s) != size {
			return nil, fmt.Errorf("shamir: share %d is %d bytes and share 1 is %d: all shares must have the same length", i+1, len(s), size)
		}
		x := s[size-1]
		if x == 0 {
			return nil, fmt.Errorf("shamir: share %d has x coordinate 0, which no share has", i+1)
		}
		if p := seen[x]; p != 0 {
			return nil, fmt.Errorf("shamir: shares %d and %d have the same x coordinate (%d): give distinct shares", p, i+1, x)
		}
		seen[x] = i + 1
		xs[i] = x
	}
	// Lagrange basis at 0: l_i = Π_{j≠i} x_j / (x_i - x_j); the secret is
	// Σ l_i·y_i. The basis depends only on the (public) x coordinates.
	basis := make([]byte, len(xs))
	for i, xi := range xs {
		num, den := byte(1), byte(1)
		for j, xj := range xs {
			if j != i {
				num = mul(num, xj)
				den = mul(den, xi^xj)
			}
		}
		basis[i] = mul(num, inv(den))
	}
	secret := make([]byte, size-1)
	for i, s := range shares {
		l := basis[i]
		for k := range secret {
			secret[k] ^= mul(l, s[k])
		}
	}
	return secret, nil
}
