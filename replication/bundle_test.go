package replication

import (
	"bytes"
	"crypto/ecdh"
	"errors"
	"reflect"
	"testing"
)

func testBundle() *Bundle {
	return &Bundle{
		PrimaryClusterID: testClusterID,
		SecondaryID:      "dc2",
		RootKey:          bytes.Repeat([]byte{9}, 32),
		ReplicationKey:   testKey,
		Epoch:            4,
		SigningPublicKey: testPub,
		RPCKey:           otherKey,
		Stream:           StreamName(testClusterID),
		Subject:          WALSubject(testClusterID),
		DevRootTokenID:   "root",
	}
}

func TestBundleRoundTrip(t *testing.T) {
	priv, err := NewActivationKey()
	if err != nil {
		t.Fatal(err)
	}
	msg, err := SealBundle(testBundle(), priv.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenBundle(msg, priv)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, testBundle()) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, testBundle())
	}
	// The public key travels in ActivateRequest as bytes.
	pub, err := ecdh.X25519().NewPublicKey(priv.PublicKey().Bytes())
	if err != nil || !pub.Equal(priv.PublicKey()) {
		t.Fatal(err)
	}
}

func TestBundleOtherRecipient(t *testing.T) {
	priv, _ := NewActivationKey()
	other, _ := NewActivationKey()
	msg, _ := SealBundle(testBundle(), priv.PublicKey())
	if b, err := OpenBundle(msg, other); !errors.Is(err, ErrDecrypt) || b != nil {
		t.Fatalf("opened by another key: %v %v", b, err)
	}
	for i := range msg {
		bad := bytes.Clone(msg)
		bad[i] ^= 1
		if b, err := OpenBundle(bad, priv); err == nil || b != nil {
			t.Fatalf("byte %d flipped: %v %v", i, b, err)
		}
	}
	for n := range len(msg) {
		if _, err := OpenBundle(msg[:n], priv); err == nil {
			t.Fatalf("truncated to %d accepted", n)
		}
	}
	v2 := bytes.Clone(msg)
	v2[0] = 2
	if _, err := OpenBundle(v2, priv); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("v2: %v", err)
	}
	// A low-order ephemeral point must not yield a key.
	zero := bytes.Clone(msg)
	clear(zero[1 : 1+x25519Len])
	if _, err := OpenBundle(zero, priv); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("zero point: %v", err)
	}
}

func TestSealBundleValidates(t *testing.T) {
	priv, _ := NewActivationKey()
	for name, mutate := range map[string]func(*Bundle){
		"no cluster":     func(b *Bundle) { b.PrimaryClusterID = "" },
		"no secondary":   func(b *Bundle) { b.SecondaryID = "" },
		"no root key":    func(b *Bundle) { b.RootKey = nil },
		"short repl key": func(b *Bundle) { b.ReplicationKey = b.ReplicationKey[:16] },
		"short rpc key":  func(b *Bundle) { b.RPCKey = nil },
		"short signing":  func(b *Bundle) { b.SigningPublicKey = b.SigningPublicKey[:8] },
		"no stream":      func(b *Bundle) { b.Stream = "" },
		"no subject":     func(b *Bundle) { b.Subject = "" },
	} {
		b := testBundle()
		mutate(b)
		if _, err := SealBundle(b, priv.PublicKey()); err == nil {
			t.Errorf("%s: sealed", name)
		}
	}
	if _, err := SealBundle(testBundle(), nil); err == nil {
		t.Error("nil recipient")
	}
	if _, err := OpenBundle([]byte{1}, nil); err == nil {
		t.Error("nil key")
	}
}
