package rootgen

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
)

// vaultVector is base64(token XOR otp) without padding for the token
// "hvs.0123456789abcdefghijklmn" and the OTP "ABCDEFGHIJKLMNOPQRSTUVWXYZab",
// computed apart from this code (Python's base64 and ^, padding removed).
const vaultVector = "KTQwanV3dXt9f317dXcuMjI2NjIyPj4yMjYMDA"

func TestEncodeDecode(t *testing.T) {
	const token, otp = "hvs.0123456789abcdefghijklmn", "ABCDEFGHIJKLMNOPQRSTUVWXYZab"
	enc, err := Encode(token, otp)
	if err != nil || enc != vaultVector {
		t.Fatalf("Encode: %q %v, want %q", enc, err, vaultVector)
	}
	for _, in := range []string{vaultVector, vaultVector + "==", " " + vaultVector + "\n"} {
		if got, err := Decode(in, otp); err != nil || got != token {
			t.Fatalf("Decode(%q): %q %v", in, got, err)
		}
	}
	bad := []struct {
		name, encoded, otp string
		want               error
	}{
		{"another OTP's length", vaultVector, otp + "x", ErrTokenLength},
		{"empty", "", "", ErrTokenLength},
		{"not base64", "!!!!", otp, nil},
	}
	for _, b := range bad {
		_, err := Decode(b.encoded, b.otp)
		if err == nil || (b.want != nil && !errors.Is(err, b.want)) {
			t.Errorf("Decode %s: %v, want an error (%v)", b.name, err, b.want)
		}
	}
	for _, b := range [][2]string{{"", ""}, {"abc", "ab"}, {"ab", "abc"}} {
		if _, err := Encode(b[0], b[1]); !errors.Is(err, ErrTokenLength) {
			t.Errorf("Encode(%q, %q): %v, want ErrTokenLength", b[0], b[1], err)
		}
	}
}

func TestNewOTP(t *testing.T) {
	for _, n := range []int{1, 28, 100} {
		otp, err := NewOTP(rand.Reader, n)
		if err != nil || len(otp) != n || strings.Trim(otp, OTPAlphabet) != "" {
			t.Fatalf("NewOTP(%d) = %q, %v", n, otp, err)
		}
	}
	// Bytes 248 and above are rejected, the rest map modulo 62.
	r := bytes.NewReader([]byte{248, 255, 0, 61, 62, 247, 0, 0, 0})
	otp, err := NewOTP(r, 4)
	if err != nil || otp != "0z0z" {
		t.Fatalf("NewOTP from known bytes: %q %v, want 0z0z", otp, err)
	}
	if _, err := NewOTP(bytes.NewReader(nil), 4); !errors.Is(err, io.EOF) {
		t.Fatalf("NewOTP from an empty reader: %v, want EOF", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(vaultVector, "ABCDEFGHIJKLMNOPQRSTUVWXYZab")
	f.Add("", "")
	f.Add("====", "ab")
	f.Fuzz(func(t *testing.T, encoded, otp string) {
		tok, err := Decode(encoded, otp)
		if err != nil {
			return
		}
		again, err := Encode(tok, otp)
		if err != nil {
			t.Fatalf("Decode gave %q, which does not encode back: %v", tok, err)
		}
		if back, _ := Decode(again, otp); back != tok {
			t.Fatalf("round trip %q -> %q", tok, back)
		}
	})
}
