package replication

import (
	"bytes"
	"compress/flate"
	"crypto/ecdh"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Every decoder is fuzzed: no panic, no allocation out of proportion to the
// input (counts are checked against the bytes left before allocating), and
// whatever decodes re-encodes to an equal value.

func FuzzPeekBatch(f *testing.F) {
	msg, _ := SealBatch(testBatch(), testKey, testSigner)
	f.Add(msg)
	f.Add([]byte{1})
	f.Add([]byte{2})
	noGuard := testBatch()
	noGuard.Guard = nil
	msg, _ = SealBatch(noGuard, testKey, testSigner)
	f.Add(msg)
	f.Fuzz(func(t *testing.T, msg []byte) {
		_, first, last, err := PeekBatch(msg)
		if err == nil && first > last {
			t.Fatalf("first %d > last %d accepted", first, last)
		}
	})
}

func FuzzOpenBatch(f *testing.F) {
	msg, _ := SealBatch(testBatch(), testKey, testSigner)
	f.Add(msg)
	f.Add(msg[:batchMinLen])
	f.Add(msg[:batchMinLen+1+GuardSize])
	noGuard := testBatch()
	noGuard.Guard = nil
	msg, _ = SealBatch(noGuard, testKey, testSigner)
	f.Add(msg)
	plain, _ := encodeBatchOps(noGuard)
	var z bytes.Buffer
	zw, _ := flate.NewWriter(&z, flate.BestSpeed)
	zw.Write(plain)
	zw.Close()
	f.Add(sealRaw(f, noGuard.Epoch, noGuard.First, noGuard.Last, z.Bytes())) // version 1
	f.Fuzz(func(t *testing.T, msg []byte) {
		b, err := OpenBatch(msg, testClusterID, testKey, testPub)
		if (err == nil) != (b != nil) {
			t.Fatalf("batch %v with error %v", b, err)
		}
		if b != nil && len(b.Guard) != 0 && len(b.Guard) != GuardSize {
			t.Fatalf("guard of %d bytes accepted", len(b.Guard))
		}
	})
}

// FuzzBatchPayload reaches the inflater and ops decoder behind the signature
// and GCM: the fuzzer's bytes are sealed and signed as a primary would, once
// as the compressed stream itself and once compressed properly.
func FuzzBatchPayload(f *testing.F) {
	plain, _ := encodeBatchOps(testBatch())
	f.Add(plain, uint64(10), uint64(20))
	f.Add([]byte{0}, uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, first, last uint64) {
		if first > last {
			first, last = last, first
		}
		for _, z := range [][]byte{data, deflate(t, data)} {
			b, err := openBatch(sealRaw(t, 1, first, last, z), testClusterID, testKey, nil, testPub, nil, 1<<20)
			if err != nil {
				continue
			}
			b2 := *b
			re, err := encodeBatchOps(&b2)
			if err != nil {
				t.Fatalf("decoded batch does not re-encode: %v", err)
			}
			back, err := decodeBatchOps(re, first, last)
			if err != nil || !reflect.DeepEqual(back, b.Entries) {
				t.Fatalf("re-decode differs: %v", err)
			}
		}
		// A plaintext that decodes is canonical.
		if entries, err := decodeBatchOps(data, first, last); err == nil {
			re, err := encodeBatchOps(&Batch{First: first, Last: last, Entries: entries})
			if err != nil || !bytes.Equal(re, data) {
				t.Fatalf("non-canonical plaintext accepted: %x -> %x (%v)", data, re, err)
			}
		}
	})
}

func FuzzPeekRequest(f *testing.F) {
	msg, _ := SealRequest("dc2", MethodSync, testKey, []byte("{}"), testNow)
	f.Add(msg)
	f.Fuzz(func(t *testing.T, msg []byte) {
		id, method, err := PeekRequest(msg)
		if err == nil && (id == "" || method == "") {
			t.Fatalf("empty id %q or method %q accepted", id, method)
		}
	})
}

func FuzzOpenRequest(f *testing.F) {
	msg, _ := SealRequest("dc2", MethodSync, testKey, []byte("{}"), testNow)
	f.Add(msg, int64(0))
	f.Add(msg, int64(time.Hour))
	f.Fuzz(func(t *testing.T, msg []byte, skew int64) {
		guard := NewReplayGuard(time.Minute)
		id, payload, nonce, err := OpenRequest(msg, MethodSync, testKey, guard, testNow.Add(time.Duration(skew)))
		if err != nil {
			return
		}
		if id == "" || payload == nil || len(nonce) != nonceLen {
			t.Fatalf("accepted request: id %q payload %v nonce %x", id, payload, nonce)
		}
		if _, _, _, err := OpenRequest(msg, MethodSync, testKey, guard, testNow.Add(time.Duration(skew))); err == nil {
			t.Fatal("replay accepted")
		}
	})
}

func FuzzOpenReply(f *testing.F) {
	// A fixed request: the seeds below are recorded by one process and run by
	// others, which must answer the same request.
	req, _ := sealRequest("dc2", MethodHeartbeat, testKey, []byte("{}"), testNow, bytes.Repeat([]byte{3}, nonceLen))
	r, _ := parseRequest(req)
	ok, _ := SealReply(testKey, r.nonce, []byte("x"))
	sealedErr, _ := SealErrorReply(testKey, r.nonce, &RPCError{Code: CodeUnavailable})
	signedErr, _ := SignErrorReply(testSigner, req, &RPCError{Code: CodeRevoked, Msg: "revoked"})
	f.Add(ok)
	f.Add(sealedErr)
	f.Add(signedErr)
	f.Add(PlainErrorReply(&RPCError{Code: CodeUnknownSecondary, Msg: "who?"}))
	f.Fuzz(func(t *testing.T, msg []byte) {
		payload, err := OpenReply(msg, req, testKey, testPub)
		if err == nil && payload == nil {
			t.Fatal("nil payload without error")
		}
		var e *RPCError
		if errors.As(err, &e) && e.Authenticated && msg[1] == replySignedError && !bytes.Equal(msg, signedErr) {
			t.Fatalf("a signed error the primary did not sign was accepted: %x", msg)
		}
	})
}

// fixedActivateRequest is an activation request with a fixed key and nonce:
// fuzz seeds are recorded by one process and run by others.
func fixedActivateRequest(f *testing.F) (*ecdh.PrivateKey, []byte) {
	priv, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{5}, 32))
	if err != nil {
		f.Fatal(err)
	}
	req, err := sealActivateRequest(testClaims(), priv.PublicKey(), bytes.Repeat([]byte{4}, activateNonceLen))
	if err != nil {
		f.Fatal(err)
	}
	return priv, req
}

func FuzzParseActivateRequest(f *testing.F) {
	_, req := fixedActivateRequest(f)
	f.Add(req)
	f.Add([]byte(`{"v":1,"token":"a.b.c"}`))
	f.Add([]byte{2, 0})
	f.Fuzz(func(t *testing.T, msg []byte) {
		r, err := ParseActivateRequest(msg)
		if err != nil {
			return
		}
		if r.SecondaryID == "" || r.TokenID == "" || len(r.Nonce) != activateNonceLen || !bytes.Equal(r.Digest, Digest(msg)) {
			t.Fatalf("accepted request %+v", r)
		}
		// Only the real request carries a MAC under the token's secret.
		if r.Verify(testClusterID, testSecret) == nil && !bytes.Equal(msg, req) {
			t.Fatalf("a request not built by SealActivateRequest verifies: %x", msg)
		}
	})
}

func FuzzOpenActivateReply(f *testing.F) {
	_, req := fixedActivateRequest(f)
	// A fixed body: SealBundle is randomized, and the seeds must be the same
	// bytes in every fuzzing process; OpenActivateReply does not open it.
	ok, _ := SignActivateReply(testSigner, Digest(req), bytes.Repeat([]byte{7}, 200))
	refusal, _ := SignActivateRefusal(testSigner, Digest(req), &RPCError{Code: CodeTokenUsed, Msg: "used"})
	f.Add(ok)
	f.Add(refusal)
	f.Add([]byte(`{"v":1,"code":"token_used"}`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		_, err := OpenActivateReply(msg, req, testPub)
		var e *RPCError
		authentic := err == nil || (errors.As(err, &e) && e.Authenticated)
		if authentic && !bytes.Equal(msg, ok) && !bytes.Equal(msg, refusal) {
			t.Fatalf("a reply the primary did not sign was accepted: %x", msg)
		}
	})
}

func FuzzParseToken(f *testing.F) {
	tok, _ := SignToken(testClaims(), testSigner)
	f.Add(tok)
	f.Add("a.b.c")
	f.Add(strings.Repeat(".", 10))
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := ParseToken(tok, testNow)
		if err != nil {
			return
		}
		// Whatever parses re-signs with the key it names only when that is ours.
		if VerifyTokenKey(c, testPub) == nil {
			again, err := SignToken(c, testSigner)
			if err != nil {
				t.Fatalf("parsed claims do not sign: %v", err)
			}
			if _, err := ParseToken(again, testNow); err != nil {
				t.Fatalf("re-signed token does not parse: %v", err)
			}
		}
	})
}

func FuzzOpenBundle(f *testing.F) {
	priv, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{5}, 32))
	if err != nil {
		f.Fatal(err)
	}
	msg, _ := SealBundle(testBundle(), priv.PublicKey())
	f.Add(msg)
	f.Fuzz(func(t *testing.T, msg []byte) {
		b, err := OpenBundle(msg, priv)
		if err == nil {
			if b.validate() != nil {
				t.Fatal("invalid bundle accepted")
			}
			if _, err := SealBundle(b, priv.PublicKey()); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzDecodeMessage(f *testing.F) {
	news := []func() Message{
		func() Message { return new(SyncRequest) },
		func() Message { return new(SyncReply) },
		func() Message { return new(HeartbeatRequest) },
		func() Message { return new(HeartbeatReply) },
		func() Message { return new(KeyRequest) },
		func() Message { return new(KeyReply) },
		func() Message { return new(FetchRequest) },
		func() Message { return new(FetchReply) },
	}
	for i, m := range []Message{
		&SyncRequest{After: "a"},
		&SyncReply{Entries: []KV{{"a", []byte("v")}}, Next: "a"},
		&HeartbeatRequest{LastRemoteWAL: 1},
		&HeartbeatReply{LastWAL: 1},
		&KeyRequest{Epoch: 1},
		&KeyReply{Key: testKey},
		&FetchRequest{Keys: []string{"logical/a", "core/mounts"}},
		&FetchReply{WALIndex: 9, Answered: 2, Entries: []KV{{"logical/a", []byte("v")}}, Absent: []string{"core/mounts"}},
	} {
		data, err := EncodeMessage(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), data)
	}
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		newMsg := news[int(kind)%len(news)]
		m := newMsg()
		if DecodeMessage(data, m) != nil {
			return
		}
		re, err := EncodeMessage(m)
		if err != nil {
			t.Fatalf("decoded %T does not encode: %v", m, err)
		}
		m2 := newMsg()
		if err := DecodeMessage(re, m2); err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("%T round trip: %v\n%+v\n%+v", m, err, m, m2)
		}
	})
}
