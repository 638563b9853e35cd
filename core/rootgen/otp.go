package rootgen

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
)

// OTPAlphabet is the alphabet of the OTPs NewOTP draws (Vault's base62).
const OTPAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// NewOTP draws n characters uniformly from OTPAlphabet, reading random bytes
// from r (crypto/rand.Reader outside tests).
func NewOTP(r io.Reader, n int) (string, error) {
	const limit = 256 - 256%len(OTPAlphabet) // reject above it to keep the draw uniform
	var sb strings.Builder
	buf := make([]byte, n+n/2)
	for sb.Len() < n {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("draw a one-time password: %w", err)
		}
		for _, c := range buf {
			if int(c) >= limit {
				continue
			}
			sb.WriteByte(OTPAlphabet[int(c)%len(OTPAlphabet)])
			if sb.Len() == n {
				break
			}
		}
	}
	return sb.String(), nil
}

// Encode XORs token with otp byte by byte and returns the result in
// unpadded standard base64, Vault's encoded_token.
func Encode(token, otp string) (string, error) {
	if token == "" || len(token) != len(otp) {
		return "", fmt.Errorf("%w: token %d bytes, otp %d", ErrTokenLength, len(token), len(otp))
	}
	return base64.RawStdEncoding.EncodeToString(xor([]byte(token), otp)), nil
}

// Decode undoes Encode: encoded (padded or not, surrounding space ignored)
// XORed with otp.
func Decode(encoded, otp string) (string, error) {
	encoded = strings.TrimRight(strings.TrimSpace(encoded), "=")
	raw, err := base64.RawStdEncoding.DecodeString(encoded)
	if err != nil {
		return "", errors.New("the encoded token is not base64: copy it whole, as the last update printed it")
	}
	if len(raw) == 0 || len(raw) != len(otp) {
		return "", fmt.Errorf("%w: the encoded token holds %d bytes, the otp %d: give the OTP of the attempt that printed this token", ErrTokenLength, len(raw), len(otp))
	}
	return string(xor(raw, otp)), nil
}

// xor returns b XOR otp; they have the same length.
func xor(b []byte, otp string) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[i] = b[i] ^ otp[i]
	}
	return out
}
