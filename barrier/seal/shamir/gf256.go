package shamir

// Arithmetic in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1. Addition and
// subtraction are XOR. Nothing here branches on or indexes by its operands.

// mul returns a·b. It runs the same eight rounds for every input: each round
// adds a when b's low bit is set (through a mask, not a branch), then
// multiplies a by x and reduces it when its top bit was set (again a mask).
func mul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= a & -(b & 1)
		a = a<<1 ^ 0x1b&-(a>>7)
		b >>= 1
	}
	return p
}

// inv returns a⁻¹ for a != 0, as a^254 (a^255 = 1 in the multiplicative
// group of order 255), and 0 for a = 0. The square-and-multiply chain is
// fixed: a^254 = a^2 · a^4 · a^8 · a^16 · a^32 · a^64 · a^128.
func inv(a byte) byte {
	sq := mul(a, a)
	r := sq
	for range 6 {
		sq = mul(sq, sq)
		r = mul(r, sq)
	}
	return r
}
