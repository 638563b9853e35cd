package replication

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// tagKeys are three secondaries' tag keys, from RPC keys of their own.
func tagKeys(t *testing.T) (dc2, dc3, dc4 TagKey) {
	t.Helper()
	mk := func(id string, b byte) TagKey {
		k, err := NewTagKey(id, bytes.Repeat([]byte{b}, KeySize))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	return mk("dc2", 0x52), mk("dc3", 0x53), mk("dc4", 0x54)
}

func sealTagged(t *testing.T, b *Batch, signer []byte, tags ...TagKey) []byte {
	t.Helper()
	msg, err := SealBatchTagged(b, testKey, nil, signer, tags)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// A secondary whose tag verifies trusts the batch without its signature:
// a batch whose signature is broken opens with the tag, and is refused
// without it or with another secondary's key. This is what the tags are
// for (a quarter of a keeping-up secondary's CPU went to the signature).
func TestTaggedBatchTrustedOnItsTag(t *testing.T) {
	dc2, dc3, dc4 := tagKeys(t)
	msg := sealTagged(t, testBatch(), testSigner, dc2, dc3)
	for _, k := range []TagKey{dc2, dc3} {
		got, err := OpenBatchTagged(msg, testClusterID, testKey, nil, testPub, &k)
		if err != nil || !reflect.DeepEqual(got.Entries, testBatch().Entries) {
			t.Fatalf("tagged for %x: %v, %+v", k.ID, err, got)
		}
	}
	unsigned := bytes.Clone(msg)
	unsigned[len(unsigned)-1] ^= 1
	if _, err := OpenBatchTagged(unsigned, testClusterID, testKey, nil, testPub, &dc2); err != nil {
		t.Fatalf("a batch with dc2's tag and a broken signature, opened by dc2: %v; want it trusted on the tag", err)
	}
	for name, tag := range map[string]*TagKey{"no tag key": nil, "dc4, without a tag": &dc4} {
		if _, err := OpenBatchTagged(unsigned, testClusterID, testKey, nil, testPub, tag); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("%s: %v, want ErrBadSignature", name, err)
		}
		if _, err := OpenBatchTagged(msg, testClusterID, testKey, nil, testPub, tag); err != nil {
			t.Fatalf("%s, signature intact: %v", name, err)
		}
	}
	if _, err := OpenBatch(unsigned, testClusterID, testKey, testPub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("OpenBatch of a broken signature: %v", err)
	}
}

// A secondary holds the replication key, so it can seal any batch, and
// its own tag key: it still cannot make another secondary trust a batch
// the primary did not sign. A tag under its key with the victim's id, the
// victim's real tag copied from a genuine batch, tags stripped: each falls
// back to the signature, which fails.
func TestForgedTagsFallBackToTheSignature(t *testing.T) {
	victim, insider, _ := tagKeys(t)
	genuine := sealTagged(t, testBatch(), testSigner, victim, insider)
	forgedBatch := testBatch()
	forgedBatch.Entries[0].Ops[0].Value = []byte("forged")

	claimed := insider
	claimed.ID = victim.ID // the victim's id, the insider's key
	copied := func() []byte {
		// The forged body with the genuine batch's tag block.
		f := sealTagged(t, forgedBatch, otherSigner, victim, insider)
		h, err := peekBatch(genuine)
		if err != nil {
			t.Fatal(err)
		}
		body := f[:len(f)-sigLen-h.tagsLen]
		g := genuine[len(genuine)-sigLen-h.tagsLen:]
		return append(bytes.Clone(body), g...)
	}()
	stripped := func() []byte {
		h, _ := peekBatch(genuine)
		body := bytes.Clone(genuine[:len(genuine)-sigLen-h.tagsLen])
		return append(append(body, 0, 0), genuine[len(genuine)-sigLen:]...)
	}()
	for name, msg := range map[string][]byte{
		"tag under the insider's key, the victim's id": sealTagged(t, forgedBatch, otherSigner, claimed),
		"the victim's tag copied from a genuine batch": copied,
		"the insider's own tag only":                   sealTagged(t, forgedBatch, otherSigner, insider),
		"genuine, tags stripped":                       stripped,
	} {
		if b, err := OpenBatchTagged(msg, testClusterID, testKey, nil, testPub, &victim); !errors.Is(err, ErrBadSignature) || b != nil {
			t.Errorf("%s: %v, %v; want ErrBadSignature", name, b, err)
		}
	}
}

// Every byte of the header, the sections and the victim's own tag is
// authenticated by that tag: flipping one is refused. Another secondary's
// tag and the signature are not read when the tag verifies.
func TestTaggedBatchTamperEveryByte(t *testing.T) {
	dc2, dc3, _ := tagKeys(t)
	msg := sealTagged(t, testBatch(), testSigner, dc3, dc2)
	h, err := peekBatch(msg)
	if err != nil {
		t.Fatal(err)
	}
	sectionsEnd := len(msg) - sigLen - h.tagsLen
	other := [2]int{sectionsEnd, sectionsEnd + tagLen5}           // dc3's tag
	own := [2]int{sectionsEnd + tagLen5, sectionsEnd + 2*tagLen5} // dc2's tag
	count := [2]int{sectionsEnd + 2*tagLen5, len(msg) - sigLen}   // the tag count
	for i := range msg {
		bad := bytes.Clone(msg)
		bad[i] ^= 0x01
		b, err := OpenBatchTagged(bad, testClusterID, testKey, nil, testPub, &dc2)
		switch {
		case i >= other[0] && i < other[1], i >= len(msg)-sigLen:
			if err != nil {
				t.Fatalf("byte %d (another's tag or the signature) flipped: %v; want dc2's tag to verify", i, err)
			}
		case i < sectionsEnd, i >= own[0] && i < own[1], i >= count[0] && i < count[1]:
			if err == nil || b != nil {
				t.Fatalf("byte %d flipped: opened", i)
			}
		}
	}
}

// At most MaxBatchTags tags, and what they add stays within MaxTagBlock
// (the primary reserves it below the bus's max_payload).
func TestBatchTagsAreBounded(t *testing.T) {
	keys := make([]TagKey, MaxBatchTags+1)
	for i := range keys {
		k, err := NewTagKey(string(rune('a'+i%26))+string(rune('a'+i/26)), bytes.Repeat([]byte{byte(i)}, KeySize))
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	if _, err := SealBatchTagged(testBatch(), testKey, nil, testSigner, keys); err == nil {
		t.Fatalf("sealed %d tags", len(keys))
	}
	none, err := SealBatch(testBatch(), testKey, testSigner)
	if err != nil {
		t.Fatal(err)
	}
	full := sealTagged(t, testBatch(), testSigner, keys[:MaxBatchTags]...)
	if got := len(full) - len(none) + tagCountLen; got != MaxTagBlock {
		t.Fatalf("%d tags add %d bytes, want MaxTagBlock %d", MaxBatchTags, got, MaxTagBlock)
	}
}

func TestNewTagKey(t *testing.T) {
	rpc := bytes.Repeat([]byte{7}, KeySize)
	a, err := NewTagKey("dc2", rpc)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := NewTagKey("dc2", rpc); again != a {
		t.Fatal("the tag key of one secondary and RPC key changed")
	}
	if b, _ := NewTagKey("dc3", rpc); b.ID == a.ID || b.Key == a.Key {
		t.Fatalf("another id: id %x key %x; want another id and another key", b.ID, b.Key)
	}
	if c, _ := NewTagKey("dc2", bytes.Repeat([]byte{8}, KeySize)); c.Key == a.Key || c.ID != a.ID {
		t.Fatal("another RPC key: want another key, the same id")
	}
	if bytes.Equal(a.Key[:], rpc) {
		t.Fatal("the tag key is the RPC key itself")
	}
	if _, err := NewTagKey("dc2", rpc[:16]); err == nil {
		t.Fatal("a 16-byte RPC key was accepted")
	}
}
