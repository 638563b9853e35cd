package replication

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func testClaims() *TokenClaims {
	return &TokenClaims{
		Issuer:   testClusterID,
		Subject:  "dc2",
		ID:       "3f1c0b7a9d2e4c6b",
		IssuedAt: testNow.Unix(),
		Expires:  testNow.Add(30 * time.Minute).Unix(),
		APIAddr:  "http://127.0.0.1:8200",
		BusURL:   "nats://127.0.0.1:4222",
		Secret:   testSecret,
		// SealActivateRequest checks the claims as ParseToken returns them.
		PublicKey: testPub,
	}
}

func TestTokenRoundTrip(t *testing.T) {
	c := testClaims()
	tok, err := SignToken(c, testSigner)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseToken(" "+tok+"\n", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || !bytes.Equal(got.Secret, testSecret) || string(got.PublicKey) != string(testPub) || got.Subject != "dc2" || got.Expires != c.Expires || got.BusURL != c.BusURL {
		t.Fatalf("claims = %+v", got)
	}
	if err := VerifyTokenKey(got, testPub); err != nil {
		t.Fatal(err)
	}
	// The header is exactly the documented one.
	h, _ := b64.DecodeString(strings.Split(tok, ".")[0])
	if string(h) != `{"alg":"EdDSA","typ":"JWT","v":2}` {
		t.Fatalf("header %s", h)
	}
}

// TestTokenGolden pins the token encoding: Ed25519 is deterministic.
func TestTokenGolden(t *testing.T) {
	tok, err := SignToken(testClaims(), testSigner)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := b64.DecodeString(strings.Split(tok, ".")[1])
	const want = `{"iss":"c0ffee00-1111-2222-3333-444455556666","sub":"dc2","jti":"3f1c0b7a9d2e4c6b","iat":1748779200,"exp":1748781000,"api":"http://127.0.0.1:8200","bus":"nats://127.0.0.1:4222","pub":"iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=","sec":"Xl5eXl5eXl5eXl5eXl5eXl5eXl5eXl5eXl5eXl5eXl4=","v":2}`
	if string(p) != want {
		t.Fatalf("claims JSON changed:\n got %s\nwant %s", p, want)
	}
}

func TestTokenExpired(t *testing.T) {
	c := testClaims()
	tok, _ := SignToken(c, testSigner)
	for _, now := range []time.Time{time.Unix(c.Expires, 0), time.Unix(c.Expires, 0).Add(time.Hour)} {
		if _, err := ParseToken(tok, now); !errors.Is(err, ErrTokenExpired) || errors.Is(err, ErrTokenMalformed) {
			t.Fatalf("at %s: %v, want ErrTokenExpired", now, err)
		}
	}
	if _, err := ParseToken(tok, time.Unix(c.Expires, 0).Add(-time.Nanosecond)); err != nil {
		t.Fatalf("just before expiry: %v", err)
	}
}

func TestTokenGarbage(t *testing.T) {
	good, _ := SignToken(testClaims(), testSigner)
	parts := strings.Split(good, ".")
	enc := func(v any) string { b, _ := json.Marshal(v); return b64.EncodeToString(b) }
	sign := func(h, p string) string {
		return h + "." + p + "." + b64.EncodeToString(ed25519.Sign(testSigner, []byte(h+"."+p)))
	}
	noSub := testClaims()
	noSub.Subject = ""
	noSub.PublicKey, noSub.Version = testPub, 2
	noSec := testClaims()
	noSec.Secret = nil
	noSec.PublicKey, noSec.Version = testPub, 2
	for name, tok := range map[string]string{
		"empty":             "",
		"word":              "garbage",
		"two parts":         parts[0] + "." + parts[1],
		"four parts":        good + ".x",
		"bad base64":        parts[0] + ".!!!." + parts[2],
		"padded base64":     parts[0] + "=." + parts[1] + "." + parts[2],
		"header not json":   b64.EncodeToString([]byte("{")) + "." + parts[1] + "." + parts[2],
		"alg none":          sign(enc(map[string]any{"alg": "none", "typ": "JWT", "v": 2}), parts[1]),
		"alg HS256":         sign(enc(map[string]any{"alg": "HS256", "typ": "JWT", "v": 2}), parts[1]),
		"claims not json":   sign(parts[0], b64.EncodeToString([]byte("[]"))),
		"missing sub":       sign(parts[0], enc(noSub)),
		"missing secret":    sign(parts[0], enc(noSec)),
		"short signature":   parts[0] + "." + parts[1] + "." + b64.EncodeToString([]byte("sig")),
		"too long":          strings.Repeat("a", MaxTokenLen+1),
		"truncated in copy": good[:len(good)-10],
	} {
		if _, err := ParseToken(tok, testNow); !errors.Is(err, ErrTokenMalformed) {
			t.Errorf("%s: %v, want ErrTokenMalformed", name, err)
		}
	}
	if _, err := ParseToken(sign(enc(map[string]any{"alg": "EdDSA", "typ": "JWT", "v": 3}), parts[1]), testNow); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("header v3: %v", err)
	}
	// A version 1 token (no secret: its activation put it on the bus) is
	// refused with what to do.
	v1 := testClaims()
	v1.Secret, v1.PublicKey, v1.Version = nil, testPub, 1
	_, err := ParseToken(sign(enc(map[string]any{"alg": "EdDSA", "typ": "JWT", "v": 1}), enc(v1)), testNow)
	if !errors.Is(err, ErrTokenMalformed) || !strings.Contains(err.Error(), "version 1 token") || !strings.Contains(err.Error(), "generate a new token") {
		t.Errorf("version 1 token: %v", err)
	}
}

func TestTokenBadSignature(t *testing.T) {
	good, _ := SignToken(testClaims(), testSigner)
	parts := strings.Split(good, ".")
	// Claims changed after signing.
	c := testClaims()
	c.Subject, c.PublicKey, c.Version = "dc3", testPub, 2
	p, _ := json.Marshal(c)
	if _, err := ParseToken(parts[0]+"."+b64.EncodeToString(p)+"."+parts[2], testNow); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("altered claims: %v", err)
	}
	// Claims re-pointed at another key, keeping the signature.
	c = testClaims()
	c.PublicKey, c.Version = otherSigner.Public().(ed25519.PublicKey), 2
	p, _ = json.Marshal(c)
	if _, err := ParseToken(parts[0]+"."+b64.EncodeToString(p)+"."+parts[2], testNow); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("swapped key: %v", err)
	}
	// Every byte of the signature matters.
	sig, _ := b64.DecodeString(parts[2])
	for i := range sig {
		sig[i] ^= 1
		if _, err := ParseToken(parts[0]+"."+parts[1]+"."+b64.EncodeToString(sig), testNow); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("signature byte %d: %v", i, err)
		}
		sig[i] ^= 1
	}
}

func TestTokenOfAnotherPrimary(t *testing.T) {
	c := testClaims()
	c.PublicKey = nil // SignToken fills in otherSigner's
	tok, err := SignToken(c, otherSigner)
	if err != nil {
		t.Fatal(err)
	}
	c, err = ParseToken(tok, testNow) // intact: the secondary cannot tell
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyTokenKey(c, testPub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("VerifyTokenKey: %v, want ErrBadSignature", err)
	}
	if err := VerifyTokenKey(c, nil); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("VerifyTokenKey(nil): %v", err)
	}
}

func TestSignTokenValidates(t *testing.T) {
	for name, mutate := range map[string]func(*TokenClaims){
		"no iss":    func(c *TokenClaims) { c.Issuer = "" },
		"no sub":    func(c *TokenClaims) { c.Subject = "" },
		"no jti":    func(c *TokenClaims) { c.ID = "" },
		"no exp":    func(c *TokenClaims) { c.Expires = 0 },
		"no secret": func(c *TokenClaims) { c.Secret = nil },
		"short sec": func(c *TokenClaims) { c.Secret = c.Secret[:16] },
		"long jti":  func(c *TokenClaims) { c.ID = strings.Repeat("j", 256) },
		"other pub": func(c *TokenClaims) { c.PublicKey = otherSigner.Public().(ed25519.PublicKey) },
	} {
		c := testClaims()
		mutate(c)
		if _, err := SignToken(c, testSigner); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
	if _, err := SignToken(testClaims(), testSigner[:5]); err == nil {
		t.Error("short key accepted")
	}
}
