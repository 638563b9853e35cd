package replication

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
)

func TestClaimSignedByTheSetKeyOnly(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	c := &Claim{Set: "set-1", Gen: 3, ClusterID: "c1", Instance: "i1", Shipped: 42, Renewed: 1000}
	msg, err := SignClaim(c, priv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenClaim(msg, pub)
	if err != nil || *got != *c {
		t.Fatalf("OpenClaim = %+v, %v; want %+v", got, err, c)
	}
	if _, err := OpenClaim(msg, otherPub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("another key: %v", err)
	}
	forged, _ := SignClaim(&Claim{Set: "set-1", Gen: 99, ClusterID: "evil", Instance: "x"}, otherPriv)
	if _, err := OpenClaim(forged, pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("a stranger's higher generation: %v", err)
	}
	for i := range msg {
		bad := append([]byte(nil), msg...)
		bad[i] ^= 0x40
		if _, err := OpenClaim(bad, pub); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
	if _, err := OpenClaim(nil, pub); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("empty: %v", err)
	}
	if GenerationBucket("a.b-c") != "COFFER_GEN_a_b_c" {
		t.Fatalf("bucket name %q", GenerationBucket("a.b-c"))
	}
}

func FuzzOpenClaim(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg, _ := SignClaim(&Claim{Set: "s", Gen: 1, ClusterID: "c", Instance: "i"}, priv)
	f.Add(msg)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := OpenClaim(data, pub)
		if err == nil && (c.Gen == 0 || c.Set == "") {
			t.Fatalf("accepted an invalid claim %+v", c)
		}
	})
}
