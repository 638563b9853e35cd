package shamir

import "testing"

// refMul is schoolbook carry-less multiplication then reduction modulo 0x11b,
// written independently of mul (and with branches: it is only a reference).
func refMul(a, b byte) byte {
	var p uint16
	for i := range 8 {
		if b&(1<<i) != 0 {
			p ^= uint16(a) << i
		}
	}
	for i := 15; i >= 8; i-- {
		if p&(1<<i) != 0 {
			p ^= 0x11b << (i - 8)
		}
	}
	return byte(p)
}

func TestMulExhaustive(t *testing.T) {
	for a := range 256 {
		for b := range 256 {
			if got, want := mul(byte(a), byte(b)), refMul(byte(a), byte(b)); got != want {
				t.Fatalf("mul(%#02x, %#02x) = %#02x, want %#02x", a, b, got, want)
			}
		}
	}
}

func TestMulKnownValues(t *testing.T) {
	// FIPS-197, section 4.2: {57}·{83} = {c1}, {57}·{13} = {fe}.
	for _, c := range []struct{ a, b, want byte }{
		{0x57, 0x83, 0xc1},
		{0x57, 0x13, 0xfe},
		{0x57, 0x02, 0xae},
		{0x80, 0x02, 0x1b},
		{0x00, 0xff, 0x00},
		{0x01, 0xa5, 0xa5},
	} {
		if got := mul(c.a, c.b); got != c.want {
			t.Errorf("mul(%#02x, %#02x) = %#02x, want %#02x", c.a, c.b, got, c.want)
		}
	}
}

func TestInvExhaustive(t *testing.T) {
	if inv(0) != 0 {
		t.Fatalf("inv(0) = %#02x, want 0", inv(0))
	}
	for a := 1; a < 256; a++ {
		if p := mul(byte(a), inv(byte(a))); p != 1 {
			t.Fatalf("%#02x · inv(%#02x) = %#02x, want 1", a, a, p)
		}
	}
	// FIPS-197, section 5.1.1 (the S-box's inverse step): {53}⁻¹ = {ca}.
	if got := inv(0x53); got != 0xca {
		t.Fatalf("inv(0x53) = %#02x, want 0xca", got)
	}
}

func BenchmarkMul(b *testing.B) {
	var acc byte
	for i := range b.N {
		acc ^= mul(byte(i), byte(i>>8))
	}
	_ = acc
}
