package replication

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// activation is one secondary's side of an activation: its key and request.
type activation struct {
	priv *ecdh.PrivateKey
	req  []byte
}

func newActivation(t *testing.T, c *TokenClaims) *activation {
	t.Helper()
	priv, err := NewActivationKey()
	if err != nil {
		t.Fatal(err)
	}
	req, err := SealActivateRequest(c, priv.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return &activation{priv: priv, req: req}
}

// answer is what the primary does with a verified request: seal the bundle
// to the request's key and sign the reply for the request's digest.
func answer(t *testing.T, req []byte, signer ed25519.PrivateKey) []byte {
	t.Helper()
	r, err := ParseActivateRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(testClusterID, testSecret); err != nil {
		t.Fatal(err)
	}
	sealed, err := SealBundle(testBundle(), r.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	reply, err := SignActivateReply(signer, r.Digest, sealed)
	if err != nil {
		t.Fatal(err)
	}
	return reply
}

func TestActivateRoundTrip(t *testing.T) {
	tok, err := SignToken(testClaims(), testSigner)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseToken(tok, testNow)
	if err != nil {
		t.Fatal(err)
	}
	a := newActivation(t, c)
	// Neither the token nor its secret is on the bus, in any encoding.
	for _, secret := range []string{tok, strings.Split(tok, ".")[1], string(testSecret), b64.EncodeToString(testSecret)} {
		if bytes.Contains(a.req, []byte(secret)) {
			t.Fatal("the activation request carries the token or its secret")
		}
	}
	r, err := ParseActivateRequest(a.req)
	if err != nil {
		t.Fatal(err)
	}
	if r.SecondaryID != "dc2" || r.TokenID != c.ID || !r.PublicKey.Equal(a.priv.PublicKey()) || len(r.Nonce) != 32 {
		t.Fatalf("parsed %+v", r)
	}
	if err := r.Verify(testClusterID, testSecret); err != nil {
		t.Fatal(err)
	}
	reply := answer(t, a.req, testSigner)
	sealed, err := OpenActivateReply(reply, a.req, c.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenBundle(sealed, a.priv)
	if err != nil || !reflect.DeepEqual(b, testBundle()) {
		t.Fatalf("bundle %+v, %v", b, err)
	}
	// Two requests of one token differ (fresh nonce and key).
	if b := newActivation(t, c); bytes.Equal(b.req[len(b.req)-96:], a.req[len(a.req)-96:]) {
		t.Fatal("two requests share key, nonce and MAC")
	}
}

// TestActivateRequestLayout checks the bytes against the package doc, with
// the MAC recomputed here from the documented recipe.
func TestActivateRequestLayout(t *testing.T) {
	a := newActivation(t, testClaims())
	m := a.req
	id, jti := "dc2", testClaims().ID
	at := 0
	expect := func(what string, want []byte) {
		t.Helper()
		if !bytes.Equal(m[at:at+len(want)], want) {
			t.Fatalf("%s at %d: %x, want %x", what, at, m[at:at+len(want)], want)
		}
		at += len(want)
	}
	expect("version", []byte{2})
	expect("id", append([]byte{byte(len(id))}, id...))
	expect("jti", append([]byte{byte(len(jti))}, jti...))
	expect("public key", a.priv.PublicKey().Bytes())
	at += 32 // nonce
	key, err := hkdf.Key(sha256.New, testSecret, nil, "coffer-activate-v2 mac", 32)
	if err != nil {
		t.Fatal(err)
	}
	h := hmac.New(sha256.New, key)
	h.Write([]byte("coffer-activate-v2"))
	h.Write([]byte{byte(len(testClusterID))})
	h.Write([]byte(testClusterID))
	h.Write(m[:at])
	expect("mac", h.Sum(nil))
	if at != len(m) {
		t.Fatalf("%d trailing bytes", len(m)-at)
	}
}

func TestActivateRequestMAC(t *testing.T) {
	a := newActivation(t, testClaims())
	r, _ := ParseActivateRequest(a.req)
	otherSecret := bytes.Repeat([]byte{0x5f}, ActivationSecretSize)
	if err := r.Verify(testClusterID, otherSecret); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("another token's secret: %v", err)
	}
	if err := r.Verify("another-primary", testSecret); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("another primary: %v", err)
	}
	if err := r.Verify(testClusterID, testSecret[:5]); err == nil || errors.Is(err, ErrBadMAC) {
		t.Fatalf("short secret: %v", err)
	}
	// Every byte matters: a stranger cannot swap in its own key or nonce.
	for i := range a.req {
		bad := bytes.Clone(a.req)
		bad[i] ^= 1
		r, err := ParseActivateRequest(bad)
		if err == nil {
			err = r.Verify(testClusterID, testSecret)
		}
		if err == nil {
			t.Fatalf("byte %d flipped: verified", i)
		}
	}
	stranger, _ := NewActivationKey()
	swapped := bytes.Clone(a.req)
	copy(swapped[1+1+3+1+len(testClaims().ID):], stranger.PublicKey().Bytes())
	if r, err := ParseActivateRequest(swapped); err != nil || !errors.Is(r.Verify(testClusterID, testSecret), ErrBadMAC) {
		t.Fatalf("public key swapped: %v", err)
	}
}

func TestParseActivateRequestRejects(t *testing.T) {
	a := newActivation(t, testClaims())
	for name, tc := range map[string]struct {
		msg  []byte
		want error
	}{
		"empty":       {nil, ErrCorrupt},
		"version 1":   {[]byte(`{"v":1,"token":"a.b.c","public_key":"..."}`), ErrCorrupt},
		"version 3":   {append([]byte{3}, a.req[1:]...), ErrUnknownVersion},
		"version 0":   {append([]byte{0}, a.req[1:]...), ErrCorrupt},
		"truncated":   {a.req[:len(a.req)-1], ErrCorrupt},
		"trailing":    {append(bytes.Clone(a.req), 0), ErrCorrupt},
		"empty id":    {[]byte{2, 0, 1, 'j'}, ErrCorrupt},
		"id too long": {[]byte{2, 200, 'x'}, ErrCorrupt},
	} {
		if _, err := ParseActivateRequest(tc.msg); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if !IsLegacyActivateRequest([]byte(`{"v":1}`)) || IsLegacyActivateRequest(a.req) {
		t.Error("IsLegacyActivateRequest")
	}
	if got := string(LegacyActivateRefusal("upgrade")); got != `{"v":1,"error":"upgrade","code":"token_invalid"}` {
		t.Errorf("legacy refusal %s", got)
	}
	if _, err := SealActivateRequest(testClaims(), nil); err == nil {
		t.Error("no public key accepted")
	}
	noSecret := testClaims()
	noSecret.PublicKey, noSecret.Secret = testPub, nil
	if _, err := SealActivateRequest(noSecret, a.priv.PublicKey()); err == nil {
		t.Error("claims without a secret accepted")
	}
}

// TestActivateReplyBinding: the reply is the primary's, for this request,
// for this key; a man in the middle can change none of it.
func TestActivateReplyBinding(t *testing.T) {
	c := testClaims()
	c.PublicKey = testPub
	victim := newActivation(t, c)
	reply := answer(t, victim.req, testSigner)

	// The hijack of finding 1: a stranger obtained a bundle sealed to its own
	// key, opened it, and re-seals it to the victim's key under the victim's
	// request digest, signing with a key of its own.
	thief := newActivation(t, c)
	stolen, err := OpenBundle(mustOpenReply(t, answer(t, thief.req, testSigner), thief.req), thief.priv)
	if err != nil {
		t.Fatal(err)
	}
	resealed, err := SealBundle(stolen, victim.priv.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := SignActivateReply(otherSigner, Digest(victim.req), resealed)
	if _, err := OpenActivateReply(forged, victim.req, testPub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("bundle re-sealed by a man in the middle: %v, want ErrBadSignature", err)
	}
	// ... or keeps the primary's signature of the real reply around it.
	spliced := append(append(bytes.Clone(reply[:signedHeaderLen]), resealed...), reply[len(reply)-64:]...)
	if _, err := OpenActivateReply(spliced, victim.req, testPub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("re-sealed bundle under the primary's signature: %v", err)
	}
	// The primary's real answer to another request (another nonce and key).
	if _, err := OpenActivateReply(answer(t, thief.req, testSigner), victim.req, testPub); !errors.Is(err, ErrOtherRequest) {
		t.Fatalf("reply to another request: %v, want ErrOtherRequest", err)
	}
	// A signed refusal for another request: not an answer to this one.
	refusal, _ := SignActivateRefusal(testSigner, Digest(thief.req), &RPCError{Code: CodeTokenUsed, Msg: "used"})
	if _, err := OpenActivateReply(refusal, victim.req, testPub); !errors.Is(err, ErrOtherRequest) {
		t.Fatalf("refusal of another request: %v", err)
	}
	// A refusal for this request is authenticated.
	refusal, _ = SignActivateRefusal(testSigner, Digest(victim.req), &RPCError{Code: CodeTokenUsed, Msg: "used"})
	_, err = OpenActivateReply(refusal, victim.req, testPub)
	var e *RPCError
	if !errors.As(err, &e) || !e.Authenticated || e.Code != CodeTokenUsed {
		t.Fatalf("signed refusal: %#v", err)
	}
	// Unsigned refusals (version 1 JSON) and garbage are not.
	for _, bad := range [][]byte{[]byte(`{"v":1,"code":"token_used","error":"used"}`), {2, 1}, nil} {
		if _, err := OpenActivateReply(bad, victim.req, testPub); err == nil || errors.As(err, &e) {
			t.Fatalf("%q accepted: %v", bad, err)
		}
	}
	for i := range reply {
		bad := bytes.Clone(reply)
		bad[i] ^= 1
		if _, err := OpenActivateReply(bad, victim.req, testPub); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
	// A token signature or a batch signature cannot sign a reply: Ed25519ctx
	// with its own context.
	plain := append(bytes.Clone(reply[:len(reply)-64]), ed25519.Sign(testSigner, reply[:len(reply)-64])...)
	if _, err := OpenActivateReply(plain, victim.req, testPub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("plain Ed25519 signature accepted: %v", err)
	}
}

func mustOpenReply(t *testing.T, reply, req []byte) []byte {
	t.Helper()
	sealed, err := OpenActivateReply(reply, req, testPub)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}
