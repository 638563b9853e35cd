// Package shamir is Coffer's Shamir secret sharing over GF(2^8): Split cuts a
// secret into parts shares of which any threshold rebuild it with Combine,
// while fewer reveal nothing about it.
//
// # Field
//
// GF(2^8) with AES's reduction polynomial x^8 + x^4 + x^3 + x + 1 (0x11b).
// Each byte of the secret is the constant term of its own random polynomial
// of degree threshold-1; all polynomials of one split are evaluated at the
// same x coordinates. Multiplication is a fixed sequence of shifts, masks and
// XORs (no table lookups, no branches on the operands) and inversion is
// a^254, so the time taken does not depend on the secret or the shares.
//
// # Share layout
//
// Shares are a disk and operator format: never change it.
//
//	+----------------------------------------------+---------------+
//	| y: one byte per byte of the secret (len(s))   | x: 1 byte     |
//	+----------------------------------------------+---------------+
//
// x is the share's coordinate, 1 to 255, distinct within a split and drawn at
// random (a random permutation of 1..255, cut to parts). The layout and the
// field are those of github.com/hashicorp/vault/shamir, which Coffer used
// before: shares it made combine here (testdata/shamir_vectors.json holds
// some, recorded from it).
//
// # Limits
//
// 2 <= threshold <= parts <= 255 and a non-empty secret. Combine needs at
// least two shares of the same length (at least 2 bytes), with distinct
// non-zero x. It cannot tell how many shares the threshold was: given fewer
// it returns a wrong secret, not an error, so callers check the result (the
// seal opens an authenticated blob with it).
package shamir
