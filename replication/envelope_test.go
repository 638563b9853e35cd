package replication

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRequestReplyRoundTrip(t *testing.T) {
	guard := NewReplayGuard(2 * time.Minute)
	msg, err := SealRequest("dc2", MethodHeartbeat, testKey, []byte(`{"v":1}`), testNow)
	if err != nil {
		t.Fatal(err)
	}
	id, method, err := PeekRequest(msg)
	if err != nil || id != "dc2" || method != MethodHeartbeat {
		t.Fatalf("PeekRequest = %q %q %v", id, method, err)
	}
	id, payload, nonce, err := OpenRequest(msg, MethodHeartbeat, testKey, guard, testNow.Add(time.Second))
	if err != nil || id != "dc2" || string(payload) != `{"v":1}` || len(nonce) != nonceLen {
		t.Fatalf("OpenRequest = %q %q %x %v", id, payload, nonce, err)
	}
	reply, err := SealReply(testKey, nonce, []byte("answer"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenReply(reply, msg, testKey, testPub)
	if err != nil || string(got) != "answer" {
		t.Fatalf("OpenReply = %q %v", got, err)
	}

	// Empty payloads come back empty, not nil.
	msg, _ = SealRequest("dc2", MethodSync, testKey, nil, testNow)
	if _, payload, _, err := OpenRequest(msg, MethodSync, testKey, guard, testNow); err != nil || payload == nil || len(payload) != 0 {
		t.Fatalf("empty payload: %v %v", payload, err)
	}
}

func TestReplyBoundToRequestNonce(t *testing.T) {
	guard := NewReplayGuard(time.Minute)
	req1, _ := SealRequest("dc2", MethodKey, testKey, []byte("1"), testNow)
	req2, _ := SealRequest("dc2", MethodKey, testKey, []byte("2"), testNow)
	_, _, n1, err := OpenRequest(req1, MethodKey, testKey, guard, testNow)
	if err != nil {
		t.Fatal(err)
	}
	_, _, n2, err := OpenRequest(req2, MethodKey, testKey, guard, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(n1, n2) {
		t.Fatal("two requests with one nonce")
	}
	reply1, _ := SealReply(testKey, n1, []byte("for 1"))
	if _, err := OpenReply(reply1, req2, testKey, testPub); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("reply to request 1 accepted for request 2: %v", err)
	}
	if _, err := OpenReply(reply1, req1, otherKey, testPub); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("reply opened with another key: %v", err)
	}
	for i := range reply1 {
		bad := bytes.Clone(reply1)
		bad[i] ^= 1
		if p, err := OpenReply(bad, req1, testKey, testPub); err == nil {
			t.Fatalf("byte %d flipped: reply %q accepted", i, p)
		}
	}
	// A request cannot pass for a reply, nor a reply for a request.
	if _, err := OpenReply(req1, req1, testKey, testPub); err == nil {
		t.Fatal("request accepted as a reply")
	}
	if _, _, _, err := OpenRequest(reply1, MethodKey, testKey, guard, testNow); err == nil {
		t.Fatal("reply accepted as a request")
	}
	if _, err := SealReply(testKey, n1[:5], nil); err == nil {
		t.Fatal("short request nonce accepted")
	}
}

func TestOpenRequestRejects(t *testing.T) {
	msg, _ := SealRequest("dc2", MethodSync, testKey, []byte("page"), testNow)
	v2 := bytes.Clone(msg)
	v2[0] = 2
	for _, tc := range []struct {
		name   string
		msg    []byte
		method string
		key    []byte
		now    time.Time
		want   error
	}{
		{"wrong method", msg, MethodKey, testKey, testNow, ErrWrongMethod},
		{"wrong key", msg, MethodSync, otherKey, testNow, ErrDecrypt},
		{"stale", msg, MethodSync, testKey, testNow.Add(2*time.Minute + time.Millisecond), ErrExpired},
		{"from the future", msg, MethodSync, testKey, testNow.Add(-2*time.Minute - time.Millisecond), ErrExpired},
		{"unknown version", v2, MethodSync, testKey, testNow, ErrUnknownVersion},
		{"empty", nil, MethodSync, testKey, testNow, ErrCorrupt},
	} {
		guard := NewReplayGuard(2 * time.Minute)
		if _, p, _, err := OpenRequest(tc.msg, tc.method, tc.key, guard, tc.now); !errors.Is(err, tc.want) || p != nil {
			t.Errorf("%s: %q %v, want %v", tc.name, p, err, tc.want)
		}
	}
	for i := range msg {
		bad := bytes.Clone(msg)
		bad[i] ^= 0x20
		guard := NewReplayGuard(2 * time.Minute)
		if _, p, _, err := OpenRequest(bad, MethodSync, testKey, guard, testNow); err == nil {
			t.Fatalf("byte %d flipped: %q accepted", i, p)
		}
	}
	for n := range len(msg) {
		if _, _, _, err := OpenRequest(msg[:n], MethodSync, testKey, NewReplayGuard(0), testNow); err == nil {
			t.Fatalf("truncated to %d accepted", n)
		}
	}
	if _, _, _, err := OpenRequest(msg, MethodSync, testKey, nil, testNow); err == nil {
		t.Error("nil guard accepted")
	}
	for _, id := range []string{"", string(make([]byte, 256))} {
		if _, err := SealRequest(id, MethodSync, testKey, nil, testNow); err == nil {
			t.Errorf("id of %d bytes sealed", len(id))
		}
	}
}

// TestRequestLongNames covers 255-byte ids and methods (a length byte of 255
// once wrapped to 0 in the parser: found by FuzzPeekRequest).
func TestRequestLongNames(t *testing.T) {
	long := strings.Repeat("s", 255)
	msg, err := SealRequest(long, long, testKey, []byte("p"), testNow)
	if err != nil {
		t.Fatal(err)
	}
	id, method, err := PeekRequest(msg)
	if err != nil || id != long || method != long {
		t.Fatalf("PeekRequest: %v", err)
	}
	if _, p, _, err := OpenRequest(msg, long, testKey, NewReplayGuard(0), testNow); err != nil || string(p) != "p" {
		t.Fatalf("OpenRequest: %q %v", p, err)
	}
	for _, bad := range [][]byte{{1, 255}, {1, 255, 'a'}, {1, 1, 'a', 255}} {
		if _, _, err := PeekRequest(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%x: %v", bad, err)
		}
	}
}

func TestReplayGuard(t *testing.T) {
	guard := NewReplayGuard(2 * time.Minute)
	msg, _ := SealRequest("dc2", MethodSync, testKey, []byte("x"), testNow)
	if _, _, _, err := OpenRequest(msg, MethodSync, testKey, guard, testNow); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := OpenRequest(msg, MethodSync, testKey, guard, testNow.Add(time.Minute)); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v, want ErrReplay", err)
	}
	// At the edge of the window it is still refused; past it, the timestamp is.
	if _, _, _, err := OpenRequest(msg, MethodSync, testKey, guard, testNow.Add(2*time.Minute)); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay at the edge: %v, want ErrReplay", err)
	}
	if _, _, _, err := OpenRequest(msg, MethodSync, testKey, guard, testNow.Add(3*time.Minute)); !errors.Is(err, ErrExpired) {
		t.Fatalf("late replay: %v, want ErrExpired", err)
	}
	// The same nonce from another secondary id is another request (its own key).
	r, _ := parseRequest(msg)
	nonce := r.nonce
	if err := guard.check("dc3", nonce, testNow.UnixMilli(), testNow); err != nil {
		t.Fatalf("nonce of dc2 refused for dc3: %v", err)
	}
	if err := guard.check("dc3", nonce, testNow.UnixMilli(), testNow); !errors.Is(err, ErrReplay) {
		t.Fatalf("second dc3 delivery: %v", err)
	}
}

func TestReplayGuardPrunes(t *testing.T) {
	guard := NewReplayGuard(time.Second)
	now := testNow
	for i := range 10_000 {
		now = now.Add(10 * time.Millisecond)
		nonce := []byte{byte(i), byte(i >> 8), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		if err := guard.check("dc2", nonce, now.UnixMilli(), now); err != nil {
			t.Fatal(err)
		}
	}
	// About 2 s of requests at 100/s are live; pruning keeps the map near that.
	if n := guard.Len(); n > 2*replayPruneMin+400 {
		t.Fatalf("guard holds %d nonces", n)
	}
}

func TestReplayGuardConcurrent(t *testing.T) {
	guard := NewReplayGuard(time.Minute)
	msg, _ := SealRequest("dc2", MethodSync, testKey, []byte("x"), testNow)
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, _, _, err := OpenRequest(msg, MethodSync, testKey, guard, testNow); err == nil {
				ok.Add(1)
			} else if !errors.Is(err, ErrReplay) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d of 16 concurrent deliveries accepted, want 1", ok.Load())
	}
}

func TestErrorReplies(t *testing.T) {
	req, _ := SealRequest("dc2", MethodHeartbeat, testKey, []byte("{}"), testNow)
	other, _ := SealRequest("dc2", MethodHeartbeat, testKey, []byte("{}"), testNow)
	r, _ := parseRequest(req)
	sealed, err := SealErrorReply(testKey, r.nonce, &RPCError{Code: CodeUnavailable, Msg: "storage down"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenReply(sealed, req, testKey, testPub)
	var e *RPCError
	if !errors.As(err, &e) || e.Code != CodeUnavailable || !e.Authenticated || e.Permanent() || IsRevoked(err) {
		t.Fatalf("sealed error: %#v", err)
	}
	if _, err := OpenReply(sealed, other, testKey, testPub); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("sealed error for another request: %v", err)
	}

	plain := PlainErrorReply(&RPCError{Code: CodeUnknownSecondary, Msg: "no secondary dc9"})
	_, err = OpenReply(plain, req, testKey, testPub)
	if !errors.As(err, &e) || e.Code != CodeUnknownSecondary || e.Authenticated || IsRevoked(err) {
		t.Fatalf("plain error: %#v (a forged revocation must not count)", err)
	}
	if want := "replication: primary refused the request (unknown_secondary): no secondary dc9 [unauthenticated reply]"; err.Error() != want {
		t.Fatalf("message %q, want %q", err.Error(), want)
	}
	for _, code := range []string{CodeExpired, CodeReplay, CodeUnavailable, CodeInternal, "from_the_future"} {
		if (&RPCError{Code: code}).Permanent() {
			t.Errorf("%s is permanent", code)
		}
	}
	for _, bad := range [][]byte{
		{replyVersion, replyPlainError},
		append([]byte{replyVersion, replyPlainError}, `{"v":1,"error":"no code"}`...),
		append([]byte{replyVersion, replyPlainError}, `{"v":0,"code":"x"}`...),
		{replyVersion, 9},
		{replyVersion},
		{0, replyOK},
	} {
		if _, err := OpenReply(bad, req, testKey, testPub); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%q: %v, want ErrCorrupt", bad, err)
		}
	}
	if _, err := OpenReply(append([]byte{replyVersion, replyPlainError}, `{"v":2,"code":"x"}`...), req, testKey, testPub); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("v2 error: %v", err)
	}
	if _, err := OpenReply([]byte{2, replyOK}, req, testKey, testPub); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("reply version 2: %v", err)
	}
}

// TestSignedRevocation: "revoked" is signed by the primary and names the
// request; nothing else passes for it.
func TestSignedRevocation(t *testing.T) {
	req, _ := SealRequest("dc2", MethodHeartbeat, testKey, []byte("{}"), testNow)
	other, _ := SealRequest("dc2", MethodHeartbeat, testKey, []byte("{}"), testNow)
	revoked := &RPCError{Code: CodeRevoked, Msg: "secondary dc2 was revoked"}
	signed, err := SignErrorReply(testSigner, req, revoked)
	if err != nil {
		t.Fatal(err)
	}
	// The layout of the package doc: version 1 | kind 4 | SHA-256(request) | JSON | signature.
	body := `{"v":1,"code":"revoked","error":"secondary dc2 was revoked"}`
	if signed[0] != 1 || signed[1] != 4 || !bytes.Equal(signed[2:34], Digest(req)) ||
		string(signed[34:len(signed)-64]) != body ||
		ed25519.VerifyWithOptions(testPub, signed[:len(signed)-64], signed[len(signed)-64:], &ed25519.Options{Context: "coffer-rpc-refusal-v1"}) != nil {
		t.Fatalf("signed error layout: %x", signed)
	}
	_, err = OpenReply(signed, req, testKey, testPub)
	var e *RPCError
	if !errors.As(err, &e) || e.Code != CodeRevoked || !e.Authenticated || !IsRevoked(err) {
		t.Fatalf("signed revocation: %#v", err)
	}
	// Recorded on the bus and replayed as the answer to another request.
	if _, err := OpenReply(signed, other, testKey, testPub); !errors.Is(err, ErrOtherRequest) || IsRevoked(err) {
		t.Fatalf("signed revocation for another request: %v", err)
	}
	// Signed by a stranger's key.
	forged, _ := SignErrorReply(otherSigner, req, revoked)
	if _, err := OpenReply(forged, req, testKey, testPub); !errors.Is(err, ErrBadSignature) || IsRevoked(err) {
		t.Fatalf("revocation signed by another key: %v", err)
	}
	// Another body under the primary's signature of this one.
	swapped := append(bytes.Clone(signed[:34]), `{"v":1,"code":"unknown_secondary"}`...)
	swapped = append(swapped, signed[len(signed)-64:]...)
	if _, err := OpenReply(swapped, req, testKey, testPub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("body swapped under the signature: %v", err)
	}
	for i := range signed {
		bad := bytes.Clone(signed)
		bad[i] ^= 1
		if _, err := OpenReply(bad, req, testKey, testPub); IsRevoked(err) {
			t.Fatalf("byte %d flipped: still a revocation", i)
		}
	}
	// The signature of an activation reply for the same request does not pass
	// for a revocation (another Ed25519ctx context), nor the reverse.
	act, _ := SignActivateRefusal(testSigner, Digest(req), revoked)
	act[0], act[1] = replyVersion, replySignedError
	if _, err := OpenReply(act, req, testKey, testPub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("activation refusal as an RPC revocation: %v", err)
	}
	signed[0], signed[1] = activateVersion, activateKindRefusal
	if _, err := OpenActivateReply(signed, req, testPub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("RPC revocation as an activation refusal: %v", err)
	}
}

func TestErrorCode(t *testing.T) {
	guard := NewReplayGuard(time.Minute)
	msg, _ := SealRequest("dc2", MethodSync, testKey, nil, testNow)
	_, _, _, errStale := OpenRequest(msg, MethodSync, testKey, guard, testNow.Add(time.Hour))
	_, errToken := ParseToken("garbage", testNow)
	for err, want := range map[error]string{
		errStale:                     CodeExpired,
		ErrReplay:                    CodeReplay,
		errToken:                     CodeTokenInvalid,
		ErrTokenExpired:              CodeTokenExpired,
		ErrBadSignature:              CodeTokenInvalid,
		ErrDecrypt:                   CodeBadRequest,
		ErrWrongMethod:               CodeBadRequest,
		&RPCError{Code: CodeRevoked}: CodeRevoked,
		errors.New("disk full"):      CodeInternal,
	} {
		if got := ErrorCode(err); got != want {
			t.Errorf("ErrorCode(%v) = %s, want %s", err, got, want)
		}
	}
}

// A reply of kind 5/6 carries the generation of the primary that sealed it,
// bound in the associated data: changing it fails, and it is read back.
func TestReplyCarriesTheGeneration(t *testing.T) {
	guard := NewReplayGuard(time.Minute)
	req, _ := SealRequest("dc2", MethodSync, testKey, []byte("x"), testNow)
	_, _, n, err := OpenRequest(req, MethodSync, testKey, guard, testNow)
	if err != nil {
		t.Fatal(err)
	}
	reply, err := SealReplyGen(testKey, n, 7, []byte("page"))
	if err != nil {
		t.Fatal(err)
	}
	p, gen, err := OpenReplyGen(reply, req, testKey, testPub)
	if err != nil || gen != 7 || string(p) != "page" {
		t.Fatalf("OpenReplyGen = %q %d %v", p, gen, err)
	}
	older := bytes.Clone(reply)
	older[9] = 6 // claim generation 6
	if _, _, err := OpenReplyGen(older, req, testKey, testPub); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("the generation changed in clear: %v", err)
	}
	for i := range reply {
		bad := bytes.Clone(reply)
		bad[i] ^= 1
		if _, _, err := OpenReplyGen(bad, req, testKey, testPub); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
	eReply, _ := SealErrorReplyGen(testKey, n, 7, &RPCError{Code: CodeUnavailable, Msg: "busy"})
	var re *RPCError
	if _, gen, err := OpenReplyGen(eReply, req, testKey, testPub); !errors.As(err, &re) || !re.Authenticated || gen != 7 {
		t.Fatalf("sealed error with generation: %v %d", err, gen)
	}
	plain, _ := SealReply(testKey, n, []byte("old"))
	if p, gen, err := OpenReplyGen(plain, req, testKey, testPub); err != nil || gen != 0 || string(p) != "old" {
		t.Fatalf("a kind 1 reply: %q %d %v", p, gen, err)
	}
}
